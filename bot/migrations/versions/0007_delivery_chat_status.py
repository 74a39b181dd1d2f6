"""deliveries: index (chat_id, status) instead of (chat_id)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00

The fair claim (bot/services/deliveries.py) looks up the first due delivery of each chat in its
newest lane on every claim; with only (chat_id) that read every delivery the chat ever had. The
new index serves every lookup the old one did (its first column is chat_id), so it replaces it.
Index changes only: no table copy on SQLite.
"""

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_deliveries_chat_status', 'deliveries', ['chat_id', 'status'], unique=False)
    op.drop_index('ix_deliveries_chat_id', table_name='deliveries')


def downgrade() -> None:
    op.create_index('ix_deliveries_chat_id', 'deliveries', ['chat_id'], unique=False)
    op.drop_index('ix_deliveries_chat_status', table_name='deliveries')
