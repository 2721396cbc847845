"""An enrollment post is checked on a read snapshot, then written in one transaction that
re-checks by compare-and-set what may have changed in between (EnrollmentService): two
posts of the same answers, or a card revoked while a post was being checked, never give
two certificates or a certificate for a revoked card."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cardshield.server.enrollment import EnrollmentService, Post
from cardshield.server.errors import ApiError
from cardshield.server.models import Certificate, Enrollment
from cardshield.server.registry import revoke_card
from cardshield.server.testing.flows import Terminal


@pytest.fixture
def at_possession(ctx, http, tokens, make_card, bank):
    """An enrollment whose attestation batch the card answered: (terminal id, enrollment,
    the batch, the answers, the card)."""
    card = make_card()
    term = Terminal(http, tokens["terminal"], card, bank=bank)
    state = term.start("rita")
    state = term.post_enrollment(state["enrollment_id"], state["batch"])
    terminal_id = ctx.auth.identify("Bearer " + tokens["terminal"])[0]
    answers = [bytes.fromhex(r) for r in term.run(state["batch"])]
    return terminal_id, state["enrollment_id"], state["batch"], answers, card


def _certificates(ctx) -> list:
    with ctx.db.read_session() as s:
        return s.scalars(select(Certificate.status)).all()


def test_two_posts_checked_together_issue_one_certificate(ctx, at_possession):
    terminal_id, enrollment_id, batch, answers, _card = at_possession
    service = EnrollmentService(ctx)
    posts = [Post(terminal_id, enrollment_id, batch["seq"], answers) for _ in range(2)]
    checked = [service.check(post) for post in posts]  # both pass on the same snapshot
    first = service.write(posts[0], checked[0])
    assert first.state == "cert_sent"
    with pytest.raises(ApiError) as lost:
        service.write(posts[1], checked[1])
    assert lost.value.code == "stale_step"
    assert _certificates(ctx) == ["pending_store"]  # the loser's signed certificate never recorded nor sent
    with ctx.db.read_session() as s:
        e = s.get(Enrollment, enrollment_id)
        assert (e.state, e.certificate_serial_hex) == ("cert_sent", first.certificate_serial)


def test_a_card_revoked_while_its_post_is_checked_gets_no_certificate(ctx, at_possession):
    terminal_id, enrollment_id, batch, answers, card = at_possession
    service = EnrollmentService(ctx)
    post = Post(terminal_id, enrollment_id, batch["seq"], answers)
    checked = service.check(post)  # the registry said: active, unbound
    revoke_card(ctx, card.card_id.hex())  # the bank revokes the lost card meanwhile
    with pytest.raises(ApiError) as refused:
        service.write(post, checked)
    assert refused.value.code == "card_revoked"  # the registry's compare-and-set, at the write
    assert _certificates(ctx) == []
    with ctx.db.read_session() as s:
        assert s.get(Enrollment, enrollment_id).state == "failed"
        assert s.scalar(select(func.count()).select_from(Certificate)) == 0


def test_two_posts_checked_and_written_in_one_transaction_each_issue_one_certificate(
        ctx, at_possession):
    """PostgreSQL's path (check_and_write: the checks at the start of the write
    transaction): two posts of the same answers at the same time, each in its own
    transaction, give one certificate; the other post is refused."""
    from concurrent.futures import ThreadPoolExecutor
    terminal_id, enrollment_id, batch, answers, _card = at_possession
    service = EnrollmentService(ctx)

    def post():
        try:
            return service.check_and_write(Post(terminal_id, enrollment_id, batch["seq"], answers))
        except ApiError as refusal:
            return refusal
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: post(), range(2)))
    codes = sorted(o.code if isinstance(o, ApiError) else o.state for o in outcomes)
    assert codes == ["cert_sent", "stale_step"]
    assert _certificates(ctx) == ["pending_store"]


def test_a_card_revoked_during_a_one_transaction_post_gets_no_certificate(ctx, at_possession,
                                                                          monkeypatch):
    """check_and_write: the bank revokes the card after the post's checks read the registry
    (here: while the certificate is being signed); the write's compare-and-set refuses."""
    if ctx.db.is_sqlite:
        pytest.skip("on SQLite the checks run on their own snapshot (the tests above)")
    terminal_id, enrollment_id, batch, answers, card = at_possession
    issue = ctx.ca.issue

    def revoked_meanwhile(*args, **kwargs):
        revoke_card(ctx, card.card_id.hex())  # another transaction, committed
        return issue(*args, **kwargs)
    monkeypatch.setattr(ctx.ca, "issue", revoked_meanwhile)
    with pytest.raises(ApiError) as refused:
        EnrollmentService(ctx).check_and_write(Post(terminal_id, enrollment_id, batch["seq"], answers))
    assert refused.value.code == "card_revoked"
    assert _certificates(ctx) == []
    with ctx.db.read_session() as s:
        assert s.get(Enrollment, enrollment_id).state == "failed"


def test_a_post_that_loses_between_its_reads_is_stale_and_leaves_the_winner(ctx, at_possession,
                                                                            monkeypatch):
    """check_and_write at READ COMMITTED: the other post of the same answers commits after
    this one read the session but before it read the challenge. The loser must be told
    `stale_step`, not a fatal refusal that would fail the winner's session and revoke its
    certificate."""
    if ctx.db.is_sqlite:
        pytest.skip("on SQLite the checks read one snapshot; the writer serializes the writes")
    import threading

    from cardshield.server import enrollment
    terminal_id, enrollment_id, batch, answers, _card = at_possession
    service = EnrollmentService(ctx)
    key_der, won = enrollment._public_key_der, []

    def winner_commits_first(key):
        if not won:  # the loser's read-back key check: the winner's whole post runs now
            won.append(None)
            thread = threading.Thread(target=lambda: won.append(service.check_and_write(
                Post(terminal_id, enrollment_id, batch["seq"], answers))))
            thread.start()
            thread.join()
        return key_der(key)
    monkeypatch.setattr(enrollment, "_public_key_der", winner_commits_first)
    with pytest.raises(ApiError) as lost:
        service.check_and_write(Post(terminal_id, enrollment_id, batch["seq"], answers))
    assert lost.value.code == "stale_step"
    assert won[1].state == "cert_sent"
    assert _certificates(ctx) == ["pending_store"]
    with ctx.db.read_session() as s:
        assert s.get(Enrollment, enrollment_id).state == "cert_sent"
