"""admin service: accounts, users, tokens, services, backends, rates, statements, audit

The tables of the FastAPI admin service (billing/orm.py). Nothing existing changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 04:00:36
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import billing.orm
import kernel.db


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('account',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('plan', sa.String(length=10), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created_at', kernel.db.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account'))
    )
    op.create_table('audit_entry',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', kernel.db.UtcDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry'))
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entry_account_at', ['account_id', 'at'], unique=False)

    op.create_table('account_product',
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('product', sa.String(length=20), nullable=False),
    sa.Column('enabled_at', kernel.db.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_account_product_account_id_account')),
    sa.PrimaryKeyConstraint('account_id', 'product', name=op.f('pk_account_product'))
    )
    op.create_table('adjustment',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('amount', billing.orm.MoneyText(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('service_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', kernel.db.UtcDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_adjustment_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adjustment'))
    )
    with op.batch_alter_table('adjustment', schema=None) as batch_op:
        batch_op.create_index('ix_adjustment_account_month', ['account_id', 'month'], unique=False)

    op.create_table('app_user',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('created_at', kernel.db.UtcDateTime(), nullable=False),
    sa.Column('removed_at', kernel.db.UtcDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_app_user_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('email', name=op.f('uq_app_user_email'))
    )
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_app_user_account_id'), ['account_id'], unique=False)

    op.create_table('rate_card_version',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('effective_month', sa.String(length=7), nullable=False),
    sa.Column('card', sa.JSON(), nullable=False),
    sa.Column('created_at', kernel.db.UtcDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_rate_card_version_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_card_version'))
    )
    with op.batch_alter_table('rate_card_version', schema=None) as batch_op:
        batch_op.create_index('ix_rate_card_version_lookup', ['account_id', 'effective_month'], unique=False)

    op.create_table('service',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=10), nullable=False),
    sa.Column('fanout_enabled', sa.Boolean(), nullable=False),
    sa.Column('directors', sa.Boolean(), nullable=False),
    sa.Column('shielding', sa.Boolean(), nullable=False),
    sa.Column('ngwaf', sa.Boolean(), nullable=False),
    sa.Column('created_at', kernel.db.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_service_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service'))
    )
    with op.batch_alter_table('service', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_account_id'), ['account_id'], unique=False)

    op.create_table('statement',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('billed_usage', sa.JSON(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('generated_at', kernel.db.UtcDateTime(), nullable=False),
    sa.Column('finalized_at', kernel.db.UtcDateTime(), nullable=True),
    sa.Column('finalized_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_statement_account_id_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statement')),
    sa.UniqueConstraint('account_id', 'month', name=op.f('uq_statement_account_id_month')),
    sa.UniqueConstraint('number', name=op.f('uq_statement_number'))
    )
    op.create_table('api_token',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('service_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', kernel.db.UtcDateTime(), nullable=False),
    sa.Column('revoked_at', kernel.db.UtcDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_api_token_account_id_account')),
    sa.ForeignKeyConstraint(['service_id'], ['service.id'], name=op.f('fk_api_token_service_id_service')),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_api_token_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_api_token_service_id'), ['service_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_api_token_user_id'), ['user_id'], unique=False)

    op.create_table('backend',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('service_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=255), nullable=False),
    sa.Column('use_tls', sa.Boolean(), nullable=False),
    sa.Column('override_host', sa.String(length=255), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('tls_status', sa.String(length=20), nullable=False),
    sa.Column('created_at', kernel.db.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['service.id'], name=op.f('fk_backend_service_id_service')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backend')),
    sa.UniqueConstraint('service_id', 'name', name=op.f('uq_backend_service_id_name'))
    )
    with op.batch_alter_table('backend', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backend_service_id'), ['service_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('backend', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_backend_service_id'))

    op.drop_table('backend')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_user_id'))
        batch_op.drop_index(batch_op.f('ix_api_token_service_id'))
        batch_op.drop_index(batch_op.f('ix_api_token_account_id'))

    op.drop_table('api_token')
    op.drop_table('statement')
    with op.batch_alter_table('service', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_account_id'))

    op.drop_table('service')
    with op.batch_alter_table('rate_card_version', schema=None) as batch_op:
        batch_op.drop_index('ix_rate_card_version_lookup')

    op.drop_table('rate_card_version')
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_app_user_account_id'))

    op.drop_table('app_user')
    with op.batch_alter_table('adjustment', schema=None) as batch_op:
        batch_op.drop_index('ix_adjustment_account_month')

    op.drop_table('adjustment')
    op.drop_table('account_product')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entry_account_at')

    op.drop_table('audit_entry')
    op.drop_table('account')
