"""exposure_outbox: served exposures committed with their locks, moved to the warehouse after

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 19:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('exposure_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
              nullable=False),
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_exposure_outbox_org_id', 'exposure_outbox', ['organization_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_exposure_outbox_org_id', table_name='exposure_outbox')
    op.drop_table('exposure_outbox')
