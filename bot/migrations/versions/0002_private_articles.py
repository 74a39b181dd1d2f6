"""private user-submitted articles; drop the unused app_state table

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 05:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # add_column and create_index run in place on SQLite too (no table copy), so the
    # ON DELETE CASCADE children of articles are never touched.
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('submitted_by_chat_id', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_articles_submitted_by_chat_id'), ['submitted_by_chat_id'], unique=False)
    # Nothing ever read or wrote app_state (the AppState model is gone with this revision).
    op.drop_table('app_state')


def downgrade() -> None:
    op.create_table('app_state',
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_app_state'))
    )
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_articles_submitted_by_chat_id'))
    if op.get_bind().dialect.name == "sqlite":
        # Not batch mode: it would copy and DROP the articles table, and with foreign keys on
        # (bot/db/engine.py) that DROP cascades to article_tags, summaries and deliveries.
        # SQLite >= 3.35 drops a plain column in place.
        import sqlite3

        if sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError("downgrading 0002 needs SQLite 3.35 or newer (ALTER TABLE DROP COLUMN)")
        op.execute("ALTER TABLE articles DROP COLUMN submitted_by_chat_id")
    else:
        op.drop_column('articles', 'submitted_by_chat_id')
