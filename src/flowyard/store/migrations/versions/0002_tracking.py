"""tracking: runs, metric points, latest metrics, params, tags

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('tracking_runs',
    sa.Column('uid', sa.String(length=36), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('experiment', sa.String(length=253), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('finished_at', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('uid')
    )
    op.create_index('ix_tracking_runs_experiment', 'tracking_runs', ['namespace', 'experiment', 'created_at'])
    op.create_table('metric_points',
    sa.Column('id', _BIGID, autoincrement=True, nullable=False),
    sa.Column('run_uid', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_uid'], ['tracking_runs.uid'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_metric_points_run_key_step', 'metric_points', ['run_uid', 'key', 'step'])
    op.create_table('latest_metrics',
    sa.Column('run_uid', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_uid'], ['tracking_runs.uid'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uid', 'key')
    )
    op.create_index('ix_latest_metrics_key_value', 'latest_metrics', ['key', 'value'])
    op.create_table('run_params',
    sa.Column('run_uid', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('num', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['run_uid'], ['tracking_runs.uid'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uid', 'key')
    )
    op.create_table('run_tags',
    sa.Column('run_uid', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_uid'], ['tracking_runs.uid'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uid', 'key')
    )
    op.create_table('tracking_keys',
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('experiment', sa.String(length=253), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.PrimaryKeyConstraint('namespace', 'experiment', 'kind', 'key')
    )


def downgrade() -> None:
    for name in ('tracking_keys', 'run_tags', 'run_params', 'latest_metrics', 'metric_points', 'tracking_runs'):
        op.drop_table(name)
