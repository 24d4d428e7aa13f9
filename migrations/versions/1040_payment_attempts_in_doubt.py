"""Payment attempts in doubt: their idempotency key, when they were settled, 'unknown' and 'processing'.

Revision ID: 1040
Revises: 1070
Create Date: 2026-12-06 22:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1040'
down_revision = '1070'
branch_labels = None
depends_on = None

OUTCOMES = "'succeeded', 'failed_retryable', 'failed_hard', 'requires_action', 'gateway_error'"
PAYMENT_STATUSES = "'pending', 'failed', 'requires_action', 'succeeded', 'not_required'"


def upgrade():
    with op.batch_alter_table('billing_payment_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(batch_op.f('ck_billing_payment_attempts_outcome'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_billing_payment_attempts_outcome'),
                                         f"outcome IN ({OUTCOMES}, 'unknown', 'processing')")
        batch_op.create_index('ix_billing_payment_attempts_in_doubt', ['outcome', 'created_at'])
    with op.batch_alter_table('billing_invoices', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_billing_invoices_payment_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_billing_invoices_payment_status'),
                                         f"payment_status IN ({PAYMENT_STATUSES}, 'processing')")


def downgrade():
    op.execute("UPDATE billing_payment_attempts SET outcome = 'gateway_error' "
               "WHERE outcome IN ('unknown', 'processing')")
    op.execute("UPDATE billing_invoices SET payment_status = 'pending' WHERE payment_status = 'processing'")
    with op.batch_alter_table('billing_invoices', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_billing_invoices_payment_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_billing_invoices_payment_status'),
                                         f"payment_status IN ({PAYMENT_STATUSES})")
    with op.batch_alter_table('billing_payment_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_billing_payment_attempts_in_doubt')
        batch_op.drop_constraint(batch_op.f('ck_billing_payment_attempts_outcome'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_billing_payment_attempts_outcome'),
                                         f"outcome IN ({OUTCOMES})")
        batch_op.drop_column('settled_at')
        batch_op.drop_column('idempotency_key')
