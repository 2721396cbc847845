"""payment step 608 as one server-side function on PostgreSQL (one round trip): the card
row's counter compare-and-set, the payment row's nonce compare-and-set, failure counters
reset and the audit row, in the caller's one transaction. SQLite gets no function: its
store runs the same statements in one short transaction (server/payment_store.py).

Revision ID: 0006_authorize_function
Revises: 0005_bank_key_algorithm
"""
from alembic import op


revision = '0006_authorize_function'
down_revision = '0005_bank_key_algorithm'
branch_labels = None
depends_on = None

# The statements are payment_store.AUTHORIZE_COUNTER, AUTHORIZE_NONCE,
# RESET_USER_FAILURES, RESET_CARD_FAILURES and AUDIT_AUTHORIZED as of this revision
# (a migration keeps its own copy: later edits of the module must not change it).
# SQLSTATE CS001: a compare-and-set matched nothing; the whole call is rolled back and
# the service reads a fresh snapshot to say which condition changed.
FUNCTION = """
CREATE OR REPLACE FUNCTION cs_authorize_payment(
    p_payment text, p_terminal integer, p_seq integer, p_card integer, p_serial text,
    p_user integer, p_reference text, p_counter bigint, p_signature bytea,
    p_max_jump bigint, p_now timestamp, p_detail text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    -- the card row: counter forward by at most p_max_jump, card not blocked, the
    -- certificate the card referenced still the user's active payment certificate,
    -- valid now, the user not blocked
    UPDATE cards SET last_counter = p_counter
     WHERE id = p_card AND last_counter < p_counter
       AND (last_counter >= p_counter - p_max_jump OR p_counter <= p_max_jump)
       AND blocked_at IS NULL
       AND EXISTS (SELECT 1 FROM certificates ce
                    WHERE ce.serial_hex = p_serial AND ce.card_id = p_card
                      AND ce.status = 'active' AND ce.sha256 = p_reference
                      AND ce.user_id = p_user AND ce.slot = 1
                      AND ce.not_before <= p_now AND ce.not_after > p_now)
       AND EXISTS (SELECT 1 FROM users u WHERE u.id = p_user AND u.blocked_at IS NULL);
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'CS001', MESSAGE = 'payment_race: card row';
    END IF;
    -- the payment row: the nonce once, by the terminal that claimed it, in time
    UPDATE payments SET state = 'authorized', nonce_used_at = p_now, authorized_at = p_now,
                        card_counter = p_counter, signature = p_signature, pending_batch = NULL
     WHERE id = p_payment AND state = 'sign_requested' AND nonce_used_at IS NULL
       AND terminal_client_id = p_terminal AND seq = p_seq
       AND expires_at > p_now AND nonce_expires_at > p_now;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'CS001', MESSAGE = 'payment_race: payment row';
    END IF;
    UPDATE users SET consecutive_failures = 0 WHERE id = p_user AND consecutive_failures <> 0;
    UPDATE cards SET consecutive_failures = 0 WHERE id = p_card AND consecutive_failures <> 0;
    INSERT INTO audit_events (at, action, outcome, client_id, card_id, payment_id,
                              certificate_serial_hex, detail)
    VALUES (p_now, 'payment.authorize', 'ok', p_terminal, p_card, p_payment, p_serial, p_detail);
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS cs_authorize_payment(text, integer, integer, "
                   "integer, text, integer, text, bigint, bytea, bigint, timestamp, text)")
