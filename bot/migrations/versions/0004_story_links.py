"""story linking: MinHash LSH band index and the footer-edit outbox

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01 05:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('story_bands',
    sa.Column('id', _ID, nullable=False),
    sa.Column('band_hash', sa.BigInteger(), nullable=False),
    sa.Column('article_id', _ID, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], name=op.f('fk_story_bands_article_id_articles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_story_bands'))
    )
    op.create_index('ix_story_bands_band_hash_created_at', 'story_bands', ['band_hash', 'created_at'], unique=False)
    op.create_index(op.f('ix_story_bands_article_id'), 'story_bands', ['article_id'], unique=False)
    op.create_table('story_edits',
    sa.Column('story_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('story_id', name=op.f('pk_story_edits'))
    )
    op.create_index(op.f('ix_story_edits_due_at'), 'story_edits', ['due_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_story_edits_due_at'), table_name='story_edits')
    op.drop_table('story_edits')
    op.drop_index(op.f('ix_story_bands_article_id'), table_name='story_bands')
    op.drop_index('ix_story_bands_band_hash_created_at', table_name='story_bands')
    op.drop_table('story_bands')
