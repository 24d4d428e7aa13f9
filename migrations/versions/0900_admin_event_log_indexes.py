"""admin: indexes for the event log (by status) and an order's deliveries

Revision ID: 0900
Revises: 0700
Create Date: 2026-11-21 10:40:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0900'
down_revision = '0700'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_events_status_id', ['status', 'id'], unique=False)
        batch_op.create_index('ix_webhook_events_integration_order', ['integration_id', 'order_ref'], unique=False)
        # Deleting a delivery looks up the duplicates that point at it; without this, a full scan per row.
        batch_op.create_index('ix_webhook_events_duplicate_of_id', ['duplicate_of_id'], unique=False)


def downgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_events_duplicate_of_id')
        batch_op.drop_index('ix_webhook_events_integration_order')
        batch_op.drop_index('ix_webhook_events_status_id')
