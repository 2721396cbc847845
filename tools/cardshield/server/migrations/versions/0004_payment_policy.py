"""payment policy: the merchant's display name is the payee, per-client refusal window
(the card's attestation flag comes with 0002_trust_enrollment)

Revision ID: 0004_payment_policy
Revises: 0003_published_crl
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_payment_policy'
down_revision = '0003_published_crl'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_name', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('refusals', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('refusals_since', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_column('refusals_since')
        batch_op.drop_column('refusals')
        batch_op.drop_column('display_name')
