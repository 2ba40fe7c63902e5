"""initial schema

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('uid', sa.String(length=36), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=128), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('first_timestamp', sa.String(length=32), nullable=False),
    sa.Column('last_timestamp', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_object', ['namespace', 'kind', 'name'], unique=False)

    op.create_table('resources',
    sa.Column('uid', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('api_version', sa.String(length=128), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('resource_version', sa.Integer(), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('annotations', sa.JSON(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('status', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('uid'),
    sa.UniqueConstraint('kind', 'namespace', 'name', name='uq_resources_kind_ns_name')
    )
    op.create_table('users',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=128), nullable=False),
    sa.Column('admin', sa.Boolean(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('labels',
    sa.Column('uid', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=317), nullable=False),
    sa.Column('value', sa.String(length=63), nullable=False),
    sa.ForeignKeyConstraint(['uid'], ['resources.uid'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('uid', 'key')
    )
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.create_index('ix_labels_key_value', ['key', 'value'], unique=False)

    op.create_table('members',
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['user'], ['users.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('namespace', 'user')
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index('ix_members_user', ['user'], unique=False)

    op.create_table('sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('csrf', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user'], ['users.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=True),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('last_used_at', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['user'], ['users.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.create_index('ix_tokens_user', ['user'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_tokens_user')

    op.drop_table('tokens')
    op.drop_table('sessions')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_user')

    op.drop_table('members')
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_index('ix_labels_key_value')

    op.drop_table('labels')
    op.drop_table('users')
    op.drop_table('resources')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_object')

    op.drop_table('events')
