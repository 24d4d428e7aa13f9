"""Keap HTTP Post: integrations of kind 'keap' and their external_source setting.

Revision ID: 0700
Revises: 0300
Create Date: 2026-11-21 10:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0700'
down_revision = '0300'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_source', sa.String(length=100), nullable=True))
        batch_op.drop_constraint(batch_op.f('ck_integrations_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_integrations_kind'),
                                         "kind IN ('thrivecart', 'stripe', 'generic', 'keap')")


def downgrade():
    op.execute("DELETE FROM integrations WHERE kind = 'keap'")
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_integrations_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_integrations_kind'),
                                         "kind IN ('thrivecart', 'stripe', 'generic')")
        batch_op.drop_column('external_source')
