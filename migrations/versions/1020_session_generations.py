"""members.session_generation, owners.session_generation: signing out ends every copy of a session

Revision ID: 1020
Revises: 1010
Create Date: 2026-12-06 21:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1020'
down_revision = '1010'
branch_labels = None
depends_on = None


def upgrade():
    # Sessions saved before this revision carry no generation and count as generation 0: they keep working
    # until the account next signs out or changes its password.
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('owners', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('owners', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
