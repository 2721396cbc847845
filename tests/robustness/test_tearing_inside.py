"""Tearing INSIDE commands, on the strict virtual card (profile jcop4, docs/virtual-card.md):
for every state-changing command, the power is cut at each of its tear points in turn (every
persistent write the applet causes, and every transaction commit), and after each tear the
card must hold the old state or the new one, never a mixture, and still work: a payment
signature verifies.

A report per command (tear points, points covered, failures, seconds) is printed and written
to test-artifacts/tearing-inside.json. Every tear point is exercised (no sampling).

How one tear is made: the host control TEAR-AT N arms the power cut at point N of the next
command; the card answers that command with nothing (the reader's transmit returns no status
word, as when a card is pulled out), then comes back as after a power cycle: its open
transaction rolled back, RAM cleared. The points of a command are counted by a dry run first
(host control REPORT), and each tear is checked to have happened where it was armed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from smartcard import scard

from cardshield.card.apdu import CommandAPDU
from cardshield.card.client import CardError, CardShield
from cardshield.card.transport import Transport
from cardshield.protocol import Transaction, commands
from cardshield.protocol.bank_key import BankKeyType, encode_bank_public_key, generate_bank_key, sign_request
from cardshield.protocol.constants import Algorithm, CardFlags, Lifecycle, SlotPolicy
from cardshield.protocol.transaction import signed_transaction_data
from tearing_support import issued_card, reinsert_after_tear, short_apdus

pytestmark = [pytest.mark.card, pytest.mark.virtual_only, pytest.mark.slow]

PIN, PUK = "1234", "12345678"
PROFILE = "jcop4"
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "tearing-inside.json"


@dataclass
class TearReport:
    command: str
    tear_points: int = 0
    covered: int = 0
    # the most commit buffer (bytes, journal overhead included) one APDU's transaction used
    journal_peak: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{self.command}: {self.tear_points} tear points, {self.covered} covered, "
                f"{len(self.failures)} failures, journal peak {self.journal_peak} B, {self.seconds:.1f} s")


REPORTS: dict[str, TearReport] = {}


@pytest.fixture(scope="module")
def strict_card(tmp_path_factory, real_reader):
    if real_reader is not None:
        pytest.skip("tearing inside commands needs the strict virtual card")
    from cardshield.sim.applets import default_applets
    from cardshield.sim.stack import VirtualCardStack
    from perso.instance import keyed_instances

    applets = default_applets()
    with VirtualCardStack(tmp_path_factory.mktemp("tear-inside"), applets=applets + keyed_instances(applets),
                          profile=PROFILE) as stack:
        yield stack
    if REPORTS:
        ARTIFACT.parent.mkdir(exist_ok=True)
        ARTIFACT.write_text(json.dumps([asdict(r) for r in REPORTS.values()], indent=2))
        print("\n" + "\n".join(r.line() for r in REPORTS.values()))


@pytest.fixture(scope="module")
def server_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def card(strict_card, server_key):
    """An issued development card with keys in slots 1 and 2."""
    yield from issued_card(strict_card, server_key, PIN, PUK)


# -- the harness --------------------------------------------------------------------------

def send_all(card: CardShield, steps: list[CommandAPDU], report: TearReport | None = None) -> list[int]:
    """Send the steps; GET RESPONSE for a 61xx answer. Returns the tear points of each step
    (and notes the journal use in `report`)."""
    stack = _stack(card)
    points = []
    for step in steps:
        response = card.transport.exchange(step)
        host = stack.last_command()
        points.append(host.tear_points)
        if report is not None:
            report.journal_peak = max(report.journal_peak, host.journal_peak)
        while response.sw1 == 0x61:
            response = card.transport.exchange(CommandAPDU(0x00, 0xC0, 0, 0, ne=response.sw2 or 256))
        assert response.sw == 0x9000 or step.ins == 0x20, f"{step.trace()}: {response.sw:04X}"
    return points


_STACKS: dict[int, object] = {}


def _stack(card: CardShield):
    return _STACKS[id(card.transport)]


def torn_transmit(card: CardShield, step: CommandAPDU, point: int) -> None:
    """Arm the cut at `point`, send `step`: no answer comes and the card leaves the reader.
    Then put it back (power on again) and select the applet."""
    stack = _stack(card)
    stack.tear_at(point)
    hresult, response = scard.SCardTransmit(card.transport._card, card.transport.protocol, list(step.encode()))
    report = stack.last_command()
    assert report.torn and len(response) < 2, f"armed at point {point} of {step.trace()}, not torn: {report}"
    power_up(card)


def power_up(card: CardShield) -> None:
    """The card went out with the power: put it back (tearing_support.reinsert_after_tear)
    and select the applet."""
    reinsert_after_tear(_stack(card), card.transport)
    card.select()


def tear_everywhere(card: CardShield, name: str, prepare: Callable[[], object], steps: list[CommandAPDU],
                    check: Callable[[object], None], label: str = "") -> TearReport:
    """For each step and each of its tear points: prepare() the old state (its return value
    goes to check), send the steps before, tear the step at the point, check() old-or-new
    and that the card works. Failures are collected, not raised, so the report is whole;
    `label` names the command in them."""
    report = REPORTS.setdefault(name, TearReport(name))
    started = time.monotonic()
    prepare()
    counts = send_all(card, steps, report)
    report.tear_points += sum(counts)
    for index, count in enumerate(counts):
        for point in range(1, count + 1):
            context = prepare()
            send_all(card, steps[:index])
            where = f"{label + ' ' if label else ''}APDU {index + 1}/{len(steps)} {steps[index].trace()[:24]} " \
                    f"point {point}/{count}"
            try:
                torn_transmit(card, steps[index], point)
                check(context)
                report.covered += 1
            except (AssertionError, CardError) as failure:
                report.failures.append(f"{where}: {failure}")
    report.seconds += time.monotonic() - started
    return report


def pay(card: CardShield, slot: int = 1) -> int:
    """A payment signature that verifies; returns its counter."""
    card.select()
    card.verify_pin(PIN)
    tx = Transaction(amount=1999, currency="EUR", payee="Tearing shop", order_ref="t", nonce=os.urandom(16))
    result = card.sign_transaction(slot, tx)
    card.read_public_key(slot).verify(result.signature, signed_transaction_data(tx.tlvs(), result.counter),
                                      padding.PKCS1v15(), hashes.SHA256())
    return result.counter


def certificate(subject_key, issuer_key, serial: int, size_hint: int = 0) -> bytes:
    from test_tearing import certificate as make

    return make(subject_key, issuer_key, serial, size_hint)


def assert_clean(report: TearReport) -> None:
    assert report.covered == report.tear_points, report.line()
    assert not report.failures, report.line() + "\n" + "\n".join(report.failures)


@pytest.fixture(autouse=True)
def _register(request):
    if "card" in request.fixturenames:
        card = request.getfixturevalue("card")
        _STACKS[id(card.transport)] = request.getfixturevalue("strict_card")


# -- the commands -------------------------------------------------------------------------

def test_certificate_write(card, server_key):
    key = card.read_public_key(1)
    old = certificate(key, server_key, 1000, size_hint=600)
    new = certificate(key, server_key, 2000, size_hint=700)

    def prepare():
        card.select()
        card.verify_pin(PIN)
        card.write_certificate(1, old)

    def check(_):
        stored = card.read_certificate(1)
        assert stored in (old, new), "certificate is neither the old nor the new one"
        assert card.select().slots[1].certificate_length == len(stored)
        pay(card)

    steps = [commands.verify_pin(PIN).apdu(), *short_apdus(CommandAPDU(0x00, 0xDA, 0xC1, 0x01, new))]
    assert_clean(tear_everywhere(card, "PUT CERTIFICATE", prepare, steps, check))


def test_key_generation(card, server_key):
    def prepare():
        card.select()
        card.verify_pin(PIN)
        if not card.select().slots[2].has_key:
            card.verify_pin(PIN)
            card.generate_key(2)
        key = card.read_public_key(2)
        cert = certificate(key, server_key, 3000)
        card.verify_pin(PIN)
        card.write_certificate(2, cert)
        return key.public_numbers(), cert

    def check(context):
        old_key, old_cert = context
        slot = card.select().slots[2]
        stored = card.read_certificate(2)
        if slot.has_key:
            key = card.read_public_key(2)
            if key.public_numbers() == old_key:
                assert stored == old_cert, "old key but its certificate changed"
            else:
                assert stored is None, "new key paired with the old certificate"
            card.verify_pin(PIN)  # the pair is one: the private key deciphers for the public key
            assert card.decipher(key.encrypt(b"tear", padding.PKCS1v15())) == b"tear"
        else:
            assert stored is None and slot.certificate_length == 0, "empty slot still holds a certificate"
        pay(card)

    steps = [commands.verify_pin(PIN).apdu(), CommandAPDU(0x00, 0x47, 0x80, 0x02, ne=256)]
    assert_clean(tear_everywhere(card, "GENERATE KEY", prepare, steps, check))


def test_verify_wrong_pin_spends_the_try_before_the_answer(card):
    def prepare():
        card.select()
        card.verify_pin(PIN)
        return card.select().pin_tries

    def check(before):
        after = card.select().pin_tries
        assert after in (before, before - 1), f"tries {before} -> {after}"
        pay(card)

    report = tear_everywhere(card, "VERIFY (wrong PIN)", prepare,
                             [CommandAPDU(0x00, 0x20, 0x00, 0x81, b"0000")], check)
    assert_clean(report)
    assert report.tear_points >= 2  # before the try is spent, and with it spent before the comparison


def test_pin_change(card):
    other = "864209"

    def prepare():
        card.select()
        try:
            card.verify_pin(PIN)
        except CardError:
            card.change_pin(other, PIN)

    def check(_):
        works = []
        for pin in (PIN, other):
            try:
                card.verify_pin(pin)
                works.append(pin)
            except CardError:
                pass
        assert len(works) == 1, f"PINs that work after the tear: {len(works)}"
        if works == [other]:
            card.change_pin(other, PIN)
        pay(card)

    steps = [commands.change_pin(PIN, other).apdu()]
    assert_clean(tear_everywhere(card, "CHANGE REFERENCE DATA", prepare, steps, check))


def test_pin_unblock(card):
    new_pin = "5550"

    def prepare():
        card.select()
        for _ in range(card.select().pin_tries):
            card.transport.transmit(CommandAPDU(0x00, 0x20, 0x00, 0x81, b"0000"))
        fci = card.select()
        assert fci.pin_tries == 0
        return fci.puk_tries

    def check(puk_before):
        fci = card.select()
        if fci.pin_tries == 0:  # old state; the PUK try may be spent (before its comparison)
            assert fci.puk_tries in (puk_before, puk_before - 1), f"PUK tries {puk_before} -> {fci.puk_tries}"
            card.unblock_pin(PUK, PIN)
        else:
            assert (fci.pin_tries, fci.puk_tries) == (3, 10), f"unblocked with tries {fci.pin_tries}/{fci.puk_tries}"
            card.verify_pin(new_pin)
            card.change_pin(new_pin, PIN)
        pay(card)

    steps = [commands.unblock_pin(PUK, new_pin).apdu()]
    assert_clean(tear_everywhere(card, "RESET RETRY COUNTER", prepare, steps, check))


def test_sign_transaction(card):
    tx = Transaction(amount=7, currency="EUR", payee="p" * 40, order_ref="o", nonce=os.urandom(16))
    seen: list[int] = []

    def prepare():
        before = card.select().counter
        card.verify_pin(PIN)
        return before

    def check(before):
        after = card.select().counter
        assert after in (before, before + 1), f"counter {before} -> {after}"
        counter = pay(card)
        assert counter == after + 1 and counter not in seen, f"counter {counter} repeated or skipped"
        seen.append(counter)

    steps = short_apdus(commands.sign_transaction(1, tx).apdu())
    assert_clean(tear_everywhere(card, "SIGN TRANSACTION", prepare, steps, check))


# -- personalization: plain (development card) and secured (keyed instance) ---------------

@dataclass(frozen=True)
class PersoStep:
    """One personalization command and how the card shows it was applied."""

    name: str
    apdus: list[CommandAPDU]
    applied: Callable[[object], bool]


def perso_steps(server_key, wrap: Callable | None = None) -> list[PersoStep]:
    """PIN, PUK, server key (the bank's RSA-2048 or EC P-256 request key), slot 1
    configuration, (secured: attestation key,) ISSUE; `wrap(command, counter)` secures them."""
    key_type = BankKeyType.of_key(server_key)
    plain = [
        ("PIN", commands.personalize_pin(PIN), lambda s: bool(s.fci.flags & CardFlags.PIN_SET)),
        ("PUK", commands.personalize_puk(PUK), lambda s: bool(s.fci.flags & CardFlags.PUK_SET)),
        ("server key", commands.personalize_server_key(encode_bank_public_key(server_key.public_key())),
         lambda s: s.fci.server_key_algorithm == key_type.algorithm),
        ("slot 1", commands.personalize_slot(1, Algorithm.RSA_2048, SlotPolicy.PIN_PER_SIGNATURE),
         lambda s: s.fci.slots[1].policy == SlotPolicy.PIN_PER_SIGNATURE),
        ("ISSUE", commands.issue(), lambda s: s.fci.lifecycle == Lifecycle.ISSUED),
    ]
    if wrap:  # the attestation key (secured only): its mark and the counter move in one transaction
        plain.insert(4, ("attestation key", commands.personalize_attestation_key(), lambda s: s.counter >= 5))
    return [PersoStep(name, short_apdus((wrap(command, n + 1) if wrap else command).apdu()), applied)
            for n, (name, command, applied) in enumerate(plain)]


def tear_personalization(card: CardShield, stack, aid: bytes, steps: list[PersoStep], secured: bool,
                         server_key) -> TearReport:
    """Each step torn at each of its points, on a card given the steps before it: the card
    shows the steps before applied, the torn one applied or not (and, secured, the channel's
    counter says the same), the later ones not; resuming from there gives an issued card
    that pays and holds the server key whole (a request the bank signed is accepted, one
    signed by another key refused)."""
    from cardshield.perso.runner import read_card_state

    key_type = BankKeyType.of_key(server_key)
    name = (("secured" if secured else "plain") + " personalization"
            + ("" if key_type is BankKeyType.RSA_2048 else f", {key_type.label} bank key"))

    def fresh(upto: int) -> None:
        stack.pristine()
        card.transport.reconnect("reset")
        card.select()
        for step in steps[:upto]:
            send_all(card, step.apdus)

    def check(torn: int) -> None:
        state = read_card_state(card.transport, aid)
        shown = [step.applied(state) for step in steps]
        assert all(shown[:torn]) and not any(shown[torn + 1:]), f"steps shown applied: {shown}"
        if secured:  # the counter is remembered with the step, in one transaction
            assert state.counter == torn + shown[torn], f"counter {state.counter}, step applied: {shown[torn]}"
        for step in steps[torn + shown[torn]:]:
            send_all(card, step.apdus)
        card.select()
        card.verify_pin(PIN)
        card.generate_key(1)
        pay(card)
        # the server key is whole: its 8E is accepted, another key's of the same type refused
        tx = Transaction(amount=5, currency="EUR", payee="Tearing shop", order_ref="8E", nonce=os.urandom(16))
        card.verify_pin(PIN)
        card.sign_transaction(1, tx, sign_request(server_key, tx.tlvs()))
        forged = sign_request(generate_bank_key(key_type), tx.tlvs())
        card.verify_pin(PIN)
        refused = card.transmit(commands.sign_transaction(1, tx, forged))
        assert refused.sw == 0x6982, f"8E by another key: {refused.sw:04X}"
        if secured:  # the attestation key went in whole: ATTEST signs with it
            attest = CommandAPDU(0x80, 0x58, 0x00, 0x01, os.urandom(32), ne=256)
            assert card.transport.transmit(attest).sw == 0x9000, "ATTEST refused after the resumed personalization"

    for index, step in enumerate(steps):
        tear_everywhere(card, name, lambda index=index: fresh(index), step.apdus,
                        lambda _, index=index: check(index), label=step.name)
    return REPORTS[name]


@pytest.fixture
def plain_card(strict_card):
    transport = Transport(strict_card.info.reader, extended_length=False)
    transport.connect()
    _STACKS[id(transport)] = strict_card
    yield CardShield(transport)
    transport.close()


def test_plain_personalization(plain_card, strict_card, server_key):
    from cardshield.protocol.constants import APPLET_AID

    report = tear_personalization(plain_card, strict_card, APPLET_AID, perso_steps(server_key), False, server_key)
    assert_clean(report)


@pytest.mark.parametrize("bank_key_type", [BankKeyType.RSA_2048, BankKeyType.EC_P256], ids=lambda t: t.value)
def test_secured_personalization(strict_card, server_key, bank_key_type):
    """The issuer's path, with either bank key: the EC key's first load also allocates its
    key object (once, stored at once; docs/applet.md)."""
    from cardshield.perso import secure_messaging as sm
    from perso.instance import KEYED_AID, card_keys

    if bank_key_type is BankKeyType.EC_P256:
        server_key = generate_bank_key(bank_key_type)

    transport = Transport(strict_card.info.reader, extended_length=False)
    transport.connect()
    _STACKS[id(transport)] = strict_card
    card = CardShield(transport, aid=KEYED_AID)
    try:
        steps = perso_steps(server_key, wrap=lambda command, counter: sm.wrap(card_keys(), command, counter))
        assert_clean(tear_personalization(card, strict_card, KEYED_AID, steps, True, server_key))
    finally:
        card.transport.close()


def read_attestation_certificate(card: CardShield) -> bytes | None:
    """EF C1 0A whole, checked against its FCP (size and the SHA-256 the card keeps with it);
    None if the card holds none."""
    import hashlib

    from cardshield.protocol import parse_certificate_fcp

    selected = card.transport.transmit(commands.select_attestation_certificate(fcp=True).apdu())
    if selected.sw == 0x6A82:
        return None
    assert selected.sw == 0x9000, f"SELECT C1 0A: {selected.sw:04X}"
    fcp = parse_certificate_fcp(selected.data)
    content = b""
    while len(content) < fcp.size:
        answer = card.transport.transmit(commands.read_binary(len(content)).apdu())
        assert answer.sw == 0x9000 and answer.data, f"READ BINARY at {len(content)}: {answer.sw:04X}"
        content += answer.data
    assert fcp.sha256 == hashlib.sha256(content).digest(), "the certificate's SHA-256 is not its content's"
    return content


def test_attestation_certificate_write(strict_card, server_key):
    """PERSONALIZE P1=06 replacing the attestation certificate (old one written whole, the new
    one in secured parts), torn at every point of every part: the card holds the old
    certificate or the new one, never a mixture, its channel counter agrees, and resuming
    (the new certificate written again, ISSUE) gives a card that pays and whose ATTEST
    signature verifies with the key of the certificate it holds."""
    from cryptography import x509

    from cardshield.perso import secure_messaging as sm
    from cardshield.perso.runner import read_card_state
    from cardshield.protocol.attestation import attest_command, parse_attest_response
    from cardshield.protocol.keys import parse_public_key
    from perso.instance import KEYED_AID, card_keys

    transport = Transport(strict_card.info.reader, extended_length=False)
    transport.connect()
    _STACKS[id(transport)] = strict_card
    card = CardShield(transport, aid=KEYED_AID)
    ca = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    steps = perso_steps(server_key, wrap=lambda command, counter: sm.wrap(card_keys(), command, counter))
    before_key, key_step = steps[:4], steps[4]  # PIN, PUK, server key, slot 1 | attestation key (counter 5)
    report = REPORTS.setdefault("attestation certificate", TearReport("attestation certificate"))

    def secured(parts, first_counter: int) -> list[list[CommandAPDU]]:
        return [short_apdus(sm.wrap(card_keys(), part, first_counter + n).apdu()) for n, part in enumerate(parts)]

    def fresh():
        """A card personalized up to its attestation key, holding the old certificate; the
        new certificate's secured parts (counters after the old one's); the last counter used."""
        strict_card.pristine()
        card.transport.reconnect("reset")
        card.select()
        for step in before_key:
            send_all(card, step.apdus)
        answer = card.transport.transmit(key_step.apdus[0])
        assert answer.sw == 0x9000 and len(key_step.apdus) == 1, f"attestation key: {answer.sw:04X}"
        attestation_key = parse_public_key(answer.data[:-8])  # 7F49 || receipt
        old = certificate(attestation_key, ca, 1)  # 678 bytes; the new one 741: four parts each
        new = certificate(attestation_key, ca, 2, size_hint=40)
        old_parts = commands.personalize_attestation_certificate(old)
        for part in secured(old_parts, 6):
            send_all(card, part)
        new_counter = 6 + len(old_parts)
        return old, new, secured(commands.personalize_attestation_certificate(new), new_counter), new_counter - 1

    def check(old: bytes, new: bytes, part: int, parts: int, counter_before: int) -> None:
        """counter_before: the channel's counter before the torn part."""
        stored = read_attestation_certificate(card)
        assert stored in (old, new), "the attestation certificate is neither the old nor the new one"
        assert stored == old or part == parts - 1, "the certificate changed before its last part"
        counter = read_card_state(card.transport, KEYED_AID).counter
        assert counter in (counter_before, counter_before + 1), f"counter {counter_before} -> {counter}"
        if part == parts - 1:  # the swap and the counter move in one transaction
            assert counter == counter_before + (stored == new), f"counter {counter}, new certificate: {stored == new}"
        if stored != new:  # resume: the whole new certificate again (P2=00 restarts the write)
            for apdus in secured(commands.personalize_attestation_certificate(new), counter + 1):
                send_all(card, apdus)
                counter += 1
            assert read_attestation_certificate(card) == new
        send_all(card, secured([commands.issue()], counter + 1)[0])
        card.select()
        card.verify_pin(PIN)
        card.generate_key(1)
        pay(card)
        challenge = os.urandom(32)
        answer = card.transport.transmit(attest_command(1, challenge).apdu())
        assert answer.sw == 0x9000, f"ATTEST: {answer.sw:04X}"
        statement, signature = parse_attest_response(answer.data)
        assert statement.challenge == challenge
        certified = x509.load_der_x509_certificate(new).public_key()
        certified.verify(signature, statement.signed_data(), padding.PKCS1v15(), hashes.SHA256())

    started = time.monotonic()
    try:
        _, _, new_parts, counter = fresh()
        counts = [send_all(card, apdus, report) for apdus in new_parts]
        report.tear_points += sum(map(sum, counts))
        for part, piece_counts in enumerate(counts):
            for piece, count in enumerate(piece_counts):
                for point in range(1, count + 1):
                    old, new, new_parts, counter = fresh()
                    for apdus in new_parts[:part]:
                        send_all(card, apdus)
                    send_all(card, new_parts[part][:piece])
                    where = f"part {part + 1}/{len(new_parts)} APDU {piece + 1} point {point}/{count}"
                    try:
                        torn_transmit(card, new_parts[part][piece], point)
                        check(old, new, part, len(new_parts), counter + part)
                        report.covered += 1
                    except (AssertionError, CardError) as failure:
                        report.failures.append(f"{where}: {failure}")
    finally:
        report.seconds += time.monotonic() - started
        card.transport.close()
    assert len(counts) > 1, "the new certificate must take several parts"
    assert_clean(report)


# -- the control itself -------------------------------------------------------------------

def test_an_armed_tear_beyond_the_command_is_reported_not_carried_over(plain_card, strict_card):
    strict_card.pristine()
    plain_card.transport.reconnect("reset")
    strict_card.tear_at(99)
    plain_card.select()  # SELECT writes nothing persistent: the tear point is never reached
    report = strict_card.last_command()
    assert not report.torn and report.armed_but_not_reached
    plain_card.personalize_pin(PIN)  # the next command runs whole: an armed tear lasts one command
    report = strict_card.last_command()
    assert report.tear_points > 0 and not report.torn and not report.armed_but_not_reached


def test_tear_control_errors_name_the_fix(strict_card, card_stack):
    from cardshield.sim.control import ControlError, send_control

    with pytest.raises(ControlError, match=r"usage: TEAR-AT N \(tear point, from 1\)"):
        send_control(strict_card.control_socket, "TEAR-AT first")
    if card_stack is None or card_stack.profile != "lenient":
        pytest.skip("the session card is not on the lenient profile")
    with pytest.raises(ControlError, match="needs a strict card profile.*--profile jcop4 or --profile sim"):
        card_stack.tear_at(1)
