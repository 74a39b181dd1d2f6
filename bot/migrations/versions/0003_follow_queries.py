"""follow queries (keywords, required words, exclusions); full-text search index over articles

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 06:00:00

Plain tag follows stay rows of `subscriptions` (unchanged: nothing a chat follows today moves
or is lost); follows with keywords or exclusions are rows of the new `follows` table.
Full-text search: an FTS5 table kept current by triggers on SQLite, a generated tsvector column
`articles.fts_document` with a GIN index on PostgreSQL (see bot/services/search.py); both are
built here for the rows already stored. Neither is in the ORM model (they are engine-specific):
tests/test_migrations.py leaves them out of the model comparison.
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# PostgreSQL: a stored generated column (kept current by PostgreSQL on every insert and update,
# computed here for existing rows) so ranking reads the vector instead of re-parsing each body.
PG_DOCUMENT = "to_tsvector('simple'::regconfig, title || ' ' || body)"
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE articles_fts USING fts5(title, body, content='articles', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN "
    "INSERT INTO articles_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN "
    "INSERT INTO articles_fts(articles_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER articles_fts_update AFTER UPDATE OF title, body ON articles BEGIN "
    "INSERT INTO articles_fts(articles_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); "
    "INSERT INTO articles_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "INSERT INTO articles_fts(articles_fts) VALUES ('rebuild')",
]


def upgrade() -> None:
    op.create_table('follows',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=1000), nullable=False),
    sa.Column('text', sa.String(length=1000), nullable=False),
    sa.Column('query', sa.JSON(), nullable=False),
    sa.Column('tag_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('word', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], name=op.f('fk_follows_chat_id_chats'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_follows_tag_id_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_follows')),
    sa.UniqueConstraint('chat_id', 'key', name='uq_follows_chat_key')
    )
    with op.batch_alter_table('follows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_follows_chat_id'), ['chat_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_follows_tag_id'), ['tag_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_follows_word'), ['word'], unique=False)
    # The fan-out claims the oldest article with fanned_out_at NULL; without this partial index
    # PostgreSQL walked the created_at index through every fanned-out article (121 ms at 100,000).
    op.create_index('ix_articles_unfanned', 'articles', ['created_at', 'id'], unique=False,
                    postgresql_where=sa.text('fanned_out_at IS NULL'), sqlite_where=sa.text('fanned_out_at IS NULL'))
    # Not batch mode: a plain ADD COLUMN runs in place, so SQLite never copies the outbox table.
    op.add_column('deliveries', sa.Column('follow_id', sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        op.execute(f"ALTER TABLE articles ADD COLUMN fts_document tsvector GENERATED ALWAYS AS ({PG_DOCUMENT}) STORED")
        op.execute("CREATE INDEX ix_articles_fts ON articles USING gin (fts_document)")


def downgrade() -> None:
    op.drop_index('ix_articles_unfanned', table_name='articles')
    if op.get_bind().dialect.name == "sqlite":
        for name in ("articles_fts_insert", "articles_fts_delete", "articles_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS articles_fts")
        op.execute("ALTER TABLE deliveries DROP COLUMN follow_id")  # SQLite >= 3.35, in place
    else:
        op.execute("DROP INDEX IF EXISTS ix_articles_fts")
        op.execute("ALTER TABLE articles DROP COLUMN IF EXISTS fts_document")
        op.drop_column('deliveries', 'follow_id')
    with op.batch_alter_table('follows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_follows_word'))
        batch_op.drop_index(batch_op.f('ix_follows_tag_id'))
        batch_op.drop_index(batch_op.f('ix_follows_chat_id'))
    op.drop_table('follows')
