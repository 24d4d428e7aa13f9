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
    with op.batch_alter_table('billing_plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_pause_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('access_during_pause', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_check_constraint(batch_op.f('ck_billing_plans_max_pause_days_positive'),
                                         'max_pause_days IS NULL OR max_pause_days > 0')
    with op.batch_alter_table('billing_mandates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('pause_until', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('billing_mandates', schema=None) as batch_op:
        batch_op.drop_column('pause_until')
        batch_op.drop_column('paused_at')
    with op.batch_alter_table('billing_plans', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_billing_plans_max_pause_days_positive'), type_='check')
        batch_op.drop_column('access_during_pause')
        batch_op.drop_column('max_pause_days')
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.drop_column('access_added_email')
        batch_op.drop_column('manage_subscriptions_url')
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_column('url')
