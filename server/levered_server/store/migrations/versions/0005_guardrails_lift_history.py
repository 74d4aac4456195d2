"""guardrails, lift_history, optimizations.auto_stop and stop_reason (extensions)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 22:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('optimizations') as batch:
        batch.add_column(sa.Column('auto_stop', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column('stop_reason', sa.JSON(), nullable=True))
    op.create_table('guardrails',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('optimization_id', sa.String(length=36), nullable=False),
    sa.Column('metric_id', sa.String(length=36), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('tolerance', sa.Float(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['metric_id'], ['metrics.id'], ),
    sa.ForeignKeyConstraint(['optimization_id'], ['optimizations.id'], ),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('optimization_id', 'metric_id', name='uq_guardrail_metric')
    )
    op.create_index('ix_guardrails_optimization_id', 'guardrails', ['optimization_id'])
    op.create_index('ix_guardrails_metric_id', 'guardrails', ['metric_id'])
    op.create_index('ix_guardrails_organization_id', 'guardrails', ['organization_id'])
    op.create_table('lift_history',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('optimization_id', sa.String(length=36), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('model_id', sa.String(length=36), nullable=False),
    sa.Column('model_version', sa.Integer(), nullable=False),
    sa.Column('trained_at', sa.DateTime(), nullable=False),
    sa.Column('observations', sa.Integer(), nullable=False),
    sa.Column('estimate', sa.JSON(), nullable=False),
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['optimization_id'], ['optimizations.id'], ),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('optimization_id', 'day', name='uq_lift_history_day')
    )
    op.create_index('ix_lift_history_organization_id', 'lift_history', ['organization_id'])


def downgrade() -> None:
    op.drop_index('ix_lift_history_organization_id', table_name='lift_history')
    op.drop_table('lift_history')
    op.drop_index('ix_guardrails_organization_id', table_name='guardrails')
    op.drop_index('ix_guardrails_metric_id', table_name='guardrails')
    op.drop_index('ix_guardrails_optimization_id', table_name='guardrails')
    op.drop_table('guardrails')
    with op.batch_alter_table('optimizations') as batch:
        batch.drop_column('stop_reason')
        batch.drop_column('auto_stop')
