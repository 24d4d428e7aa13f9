"""Secrets encrypted at rest: integrations' secret, previous_secret and api_key, webhook_endpoints' secret

Revision ID: 1010
Revises: 1040
Create Date: 2026-12-06 22:00:00

The values are encrypted with the running app's SECRET_KEY (encryption.py), so run it with the production
SECRET_KEY set. A value that is already a token under SECRET_KEY or a fallback is left as it is; the downgrade
decrypts them back to plain text.
"""
from alembic import op
import sqlalchemy as sa
from flask import current_app

import encryption

# revision identifiers, used by Alembic.
revision = '1010'
down_revision = '1040'
branch_labels = None
depends_on = None

COLUMNS = {
    'integrations': [('secret', True), ('previous_secret', True), ('api_key', True)],
    'webhook_endpoints': [('secret', False)],
}


def _rewrite(change) -> None:
    connection = op.get_bind()
    for table, columns in COLUMNS.items():
        for name, _ in columns:
            rows = connection.execute(sa.text(f'SELECT id, {name} FROM {table} WHERE {name} IS NOT NULL')).all()
            for row_id, value in rows:
                new = change(value)
                if new != value:
                    connection.execute(sa.text(f'UPDATE {table} SET {name} = :value WHERE id = :id'),
                                       {'value': new, 'id': row_id})


def upgrade():
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, nullable in columns:
                batch_op.alter_column(name, existing_type=sa.String(length=255), type_=sa.Text(),
                                      existing_nullable=nullable)
    config = current_app.config
    _rewrite(lambda value: value if encryption.is_encrypted(value, config) else encryption.encrypt(value, config))


def downgrade():
    config = current_app.config
    _rewrite(lambda value: encryption.decrypt(value, config) if encryption.is_encrypted(value, config) else value)
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, nullable in columns:
                batch_op.alter_column(name, existing_type=sa.Text(), type_=sa.String(length=255),
                                      existing_nullable=nullable)
