"""delivery modes: a chat's time zone and silent flag, follow snoozes, story mutes

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01 06:10:00

Only additions: the two `chats` columns are added in place (no table copy on SQLite, so the
ON DELETE CASCADE children of chats are never touched) and two new tables.
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not batch mode: on SQLite batch mode may copy and DROP `chats`, and with
    # foreign keys on that DROP cascades to subscriptions, follows and deliveries (all lost).
    op.add_column('chats', sa.Column('timezone', sa.String(length=64), nullable=True))
    op.add_column('chats', sa.Column('silent', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.add_column('chats', sa.Column('digest', sa.String(length=200), nullable=True))
    op.add_column('chats', sa.Column('quiet', sa.String(length=11), nullable=True))
    op.add_column('chats', sa.Column('daily_limit', sa.Integer(), nullable=True))
    op.add_column('deliveries', sa.Column('digest_id', sa.BigInteger(), nullable=True))
    op.add_column('deliveries', sa.Column('message_thread_id', sa.BigInteger(), nullable=True))
    op.create_index(op.f('ix_deliveries_digest_id'), 'deliveries', ['digest_id'], unique=False)
    op.create_table('digests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('pending', 'sending', 'sent', 'retry', 'parked', 'cancelled', name='deliverystatus',
                                native_enum=False, create_constraint=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('message_ids', sa.JSON(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], name=op.f('fk_digests_chat_id_chats'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_digests'))
    )
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_digests_chat_id'), ['chat_id'], unique=False)
        batch_op.create_index('ix_digests_status_due', ['status', 'due_at'], unique=False)
    op.create_table('snoozes',
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=1000), nullable=False),
    sa.Column('text', sa.String(length=1000), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], name=op.f('fk_snoozes_chat_id_chats'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('chat_id', 'key', name=op.f('pk_snoozes'))
    )
    op.create_table('follow_topics',
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=1000), nullable=False),
    sa.Column('thread_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], name=op.f('fk_follow_topics_chat_id_chats'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('chat_id', 'key', name=op.f('pk_follow_topics'))
    )
    op.create_table('story_mutes',
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('story_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], name=op.f('fk_story_mutes_chat_id_chats'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('chat_id', 'story_id', name=op.f('pk_story_mutes'))
    )


def downgrade() -> None:
    op.drop_table('follow_topics')
    op.drop_table('digests')
    op.drop_index(op.f('ix_deliveries_digest_id'), table_name='deliveries')
    op.drop_table('story_mutes')
    op.drop_table('snoozes')
    if op.get_bind().dialect.name == "sqlite":
        # Not batch mode: it would copy and DROP chats, and with foreign keys on that DROP
        # cascades to subscriptions, follows and deliveries. SQLite >= 3.35 drops columns in place.
        import sqlite3

        if sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError("downgrading 0006 needs SQLite 3.35 or newer (ALTER TABLE DROP COLUMN)")
        op.execute("ALTER TABLE deliveries DROP COLUMN message_thread_id")
        op.execute("ALTER TABLE deliveries DROP COLUMN digest_id")
        for name in ("daily_limit", "quiet", "digest", "silent"):
            op.execute(f"ALTER TABLE chats DROP COLUMN {name}")
        op.execute("ALTER TABLE chats DROP COLUMN timezone")
    else:
        op.drop_column('deliveries', 'message_thread_id')
        op.drop_column('deliveries', 'digest_id')
        for name in ("daily_limit", "quiet", "digest", "silent", "timezone"):
            op.drop_column('chats', name)
