"""the stored CRL and its monotonic cRLNumber

Revision ID: 0003_published_crl
Revises: 0002_trust_enrollment
"""
from datetime import datetime

from alembic import op
import sqlalchemy as sa


revision = '0003_published_crl'
down_revision = '0002_trust_enrollment'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('published_crl',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.BigInteger(), nullable=False),
    sa.Column('revoked_count', sa.Integer(), nullable=False),
    sa.Column('this_update', sa.DateTime(), nullable=False),
    sa.Column('next_update', sa.DateTime(), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_published_crl'))
    )
    # The one row exists from the start, so publishers only ever UPDATE it under its lock
    # (two replicas cannot both insert the first); an empty der means none published yet.
    table = sa.table('published_crl', sa.column('id', sa.Integer()),
                     sa.column('number', sa.BigInteger()),
                     sa.column('revoked_count', sa.Integer()),
                     sa.column('this_update', sa.DateTime()),
                     sa.column('next_update', sa.DateTime()),
                     sa.column('der', sa.LargeBinary()))
    epoch = datetime(1970, 1, 1)
    op.execute(table.insert().values(id=1, number=0, revoked_count=0, this_update=epoch, next_update=epoch,
                                     der=b''))


def downgrade() -> None:
    op.drop_table('published_crl')
