"""bank key algorithm: the type of the bank's request key (8E) each card holds, RSA-2048
or EC P-256, recorded at enrollment from the card's FCI (NULL: a card enrolled before, RSA)

Revision ID: 0005_bank_key_algorithm
Revises: 0004_payment_policy
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_bank_key_algorithm'
down_revision = '0004_payment_policy'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('cards', 'enrollments'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('bank_key_algorithm', sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in ('enrollments', 'cards'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('bank_key_algorithm')
