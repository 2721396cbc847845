"""bank-authorized, attested enrollment: users created by the bank, activation codes,
the card registry, the attestation evidence on each enrolled key

Revision ID: 0002_trust_enrollment
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_trust_enrollment'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('activation_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=False),
    sa.Column('code_hmac', sa.String(length=64), nullable=False),
    sa.Column('replace', sa.Boolean(), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_client_id', sa.Integer(), nullable=True),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('locked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_client_id'], ['api_clients.id'], name=op.f('fk_activation_codes_created_by_client_id_api_clients')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_activation_codes_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activation_codes')),
    sa.UniqueConstraint('code_hmac', name=op.f('uq_activation_codes_code_hmac'))
    )
    with op.batch_alter_table('activation_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activation_codes_user_id'), ['user_id'], unique=False)

    op.create_table('registered_cards',
    sa.Column('card_id_hex', sa.String(length=32), nullable=False),
    sa.Column('attestation_certificate_der', sa.LargeBinary(), nullable=False),
    sa.Column('applet_version', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('bound_user_id', sa.Integer(), nullable=True),
    sa.Column('personalized_at', sa.DateTime(), nullable=True),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.Column('imported_by_client_id', sa.Integer(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['bound_user_id'], ['users.id'], name=op.f('fk_registered_cards_bound_user_id_users')),
    sa.ForeignKeyConstraint(['imported_by_client_id'], ['api_clients.id'], name=op.f('fk_registered_cards_imported_by_client_id_api_clients')),
    sa.PrimaryKeyConstraint('card_id_hex', name=op.f('pk_registered_cards'))
    )
    with op.batch_alter_table('registered_cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registered_cards_bound_user_id'), ['bound_user_id'], unique=False)

    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('registry_card_id', sa.String(length=32), nullable=True))
        # keys enrolled before attestation existed are unattested
        batch_op.add_column(sa.Column('attested', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('attested_policy', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('attestation', sa.LargeBinary(), nullable=True))
        batch_op.create_index(batch_op.f('ix_cards_registry_card_id'), ['registry_card_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_cards_registry_card_id_registered_cards'), 'registered_cards', ['registry_card_id'], ['card_id_hex'])

    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('activation_code_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('replace_authorized', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_foreign_key(batch_op.f('fk_enrollments_activation_code_id_activation_codes'), 'activation_codes', ['activation_code_id'], ['id'])

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by_client_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_users_created_by_client_id_api_clients'), 'api_clients', ['created_by_client_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_users_created_by_client_id_api_clients'), type_='foreignkey')
        batch_op.drop_column('created_by_client_id')

    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_enrollments_activation_code_id_activation_codes'), type_='foreignkey')
        batch_op.drop_column('replace_authorized')
        batch_op.drop_column('activation_code_id')

    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_cards_registry_card_id_registered_cards'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_cards_registry_card_id'))
        batch_op.drop_column('attestation')
        batch_op.drop_column('attested_policy')
        batch_op.drop_column('attested')
        batch_op.drop_column('registry_card_id')

    with op.batch_alter_table('registered_cards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registered_cards_bound_user_id'))

    op.drop_table('registered_cards')
    with op.batch_alter_table('activation_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_activation_codes_user_id'))

    op.drop_table('activation_codes')
