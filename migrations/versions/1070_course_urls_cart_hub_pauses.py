"""Member-facing issue 19: course URLs, a cart's subscription-management link and the "access added" email
setting on integrations, plans' pause settings and mandates' pause state.

Revision ID: 1070
Revises: 0800
Create Date: 2026-12-06 21:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1070'
down_revision = '0800'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('url', sa.String(length=500), nullable=True))
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('manage_subscriptions_url', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('access_added_email', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    # Plain ADD COLUMN, not a batch: on SQLite a batch rebuilds the table and would drop the triggers that keep
    # plans' and mandates' price and interval immutable (0300).
    op.add_column('billing_plans', sa.Column('max_pause_days', sa.Integer(), nullable=True))
    op.add_column('billing_plans', sa.Column('access_during_pause', sa.Boolean(), nullable=False,
                                             server_default=sa.false()))
    if op.get_bind().dialect.name != 'sqlite':  # SQLite cannot add a constraint to an existing table
        op.create_check_constraint(op.f('ck_billing_plans_max_pause_days_positive'), 'billing_plans',
                                   'max_pause_days IS NULL OR max_pause_days > 0')
    op.add_column('billing_mandates', sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('billing_mandates', sa.Column('pause_until', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    # DROP COLUMN in place (SQLite 3.35+), keeping the immutability triggers.
    op.drop_column('billing_mandates', 'pause_until')
    op.drop_column('billing_mandates', 'paused_at')
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint(op.f('ck_billing_plans_max_pause_days_positive'), 'billing_plans', type_='check')
    op.drop_column('billing_plans', 'access_during_pause')
    op.drop_column('billing_plans', 'max_pause_days')
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.drop_column('access_added_email')
        batch_op.drop_column('manage_subscriptions_url')
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_column('url')
