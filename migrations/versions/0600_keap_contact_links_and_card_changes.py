"""Keap: contacts remembered per member (keap_contact_links) and every card change (card_changes).

Revision ID: 0600
Revises: 0001
Create Date: 2026-11-21 09:24:15.611963

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0600'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('card_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('subscription_refs', sa.JSON(), nullable=False),
    sa.Column('account_ref', sa.String(length=100), nullable=True),
    sa.Column('old_payment_method_ref', sa.String(length=255), nullable=True),
    sa.Column('new_payment_method_ref', sa.String(length=255), nullable=False),
    sa.Column('old_brand', sa.String(length=40), nullable=True),
    sa.Column('old_last4', sa.String(length=4), nullable=True),
    sa.Column('new_brand', sa.String(length=40), nullable=True),
    sa.Column('new_last4', sa.String(length=4), nullable=True),
    sa.Column('new_exp_month', sa.Integer(), nullable=True),
    sa.Column('new_exp_year', sa.Integer(), nullable=True),
    sa.Column('changed_by', sa.String(length=20), nullable=False),
    sa.Column('changed_by_ref', sa.String(length=100), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("changed_by IN ('member', 'owner', 'invitation', 'system')", name=op.f('ck_card_changes_changed_by')),
    sa.CheckConstraint("source IN ('keap', 'own')", name=op.f('ck_card_changes_source')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_card_changes_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_changes'))
    )
    with op.batch_alter_table('card_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_changes_changed_at'), ['changed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_changes_member_id'), ['member_id'], unique=False)

    op.create_table('keap_contact_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.String(length=50), nullable=False),
    sa.Column('matched_by', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_keap_contact_links_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_keap_contact_links')),
    sa.UniqueConstraint('member_id', 'contact_id', name=op.f('uq_keap_contact_links_member_id_contact_id'))
    )
    with op.batch_alter_table('keap_contact_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_keap_contact_links_member_id'), ['member_id'], unique=False)



def downgrade():
    with op.batch_alter_table('keap_contact_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_keap_contact_links_member_id'))

    op.drop_table('keap_contact_links')
    with op.batch_alter_table('card_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_changes_member_id'))
        batch_op.drop_index(batch_op.f('ix_card_changes_changed_at'))

    op.drop_table('card_changes')
