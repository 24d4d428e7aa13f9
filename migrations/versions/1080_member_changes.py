"""member_changes: a member's profile edits (email, name, phone, external source), shown as their history

Revision ID: 1080
Revises: 1020
Create Date: 2026-12-06 21:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1080'
down_revision = '1020'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('member_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=40), nullable=False),
    sa.Column('old_value', sa.String(length=320), nullable=True),
    sa.Column('new_value', sa.String(length=320), nullable=True),
    sa.Column('changed_by', sa.String(length=40), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_changes_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_changes'))
    )
    with op.batch_alter_table('member_changes', schema=None) as batch_op:
        batch_op.create_index('ix_member_changes_member_id', ['member_id', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('member_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_member_changes_member_id')
    op.drop_table('member_changes')
