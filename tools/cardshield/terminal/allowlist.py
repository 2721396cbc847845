"""Which card commands the relay passes from the server to the card (docs/apdu.md).

The server composes the card's APDUs and the terminal relays them without needing to
understand them (patent steps 503, 508, 602, 606: "pass through"). Passing through does
not mean giving the server the card: only the CardShield applet's user-facing commands
pass, by CLA / INS / P1 / P2 and, for SELECT, the exact AID or file. Refused by design:
SELECT of any other application (the GlobalPlatform card manager, other applets),
VERIFY with a PIN (the PIN is entered at this terminal only), CHANGE REFERENCE DATA and
RESET RETRY COUNTER (local PIN management), PERSONALIZE and ISSUE (issuer only),
every GlobalPlatform command, secure messaging and logical channels (CLA bits).
"""
from __future__ import annotations

from dataclasses import dataclass

from cardshield.card.apdu import APDUFormatError, CommandAPDU
from cardshield.protocol.constants import APPLET_AID, CLA_CHAINING, Ins, certificate_fid

SLOTS = frozenset({0x01, 0x02})
CERTIFICATE_FIDS = frozenset(certificate_fid(slot) for slot in SLOTS)


class RefusedCommand(Exception):
    """A command from the server that this terminal will not send to the card."""


@dataclass(frozen=True)
class Rule:
    name: str
    cla: int  # 00 inter-industry or 80 proprietary, without the chaining bit
    ins: int
    p1: frozenset[int] | None  # None: any
    p2: frozenset[int] | None
    chaining: bool = False  # may come as an ISO 7816-4 5.1.1.1 command chain
    data: str = "any"  # "any", "none", "applet-aid", "certificate-fid"
    needs_pin: bool = False  # the applet requires the PIN verified (docs/apdu.md)
    consent: str = ""  # what the user authorizes by entering the PIN, shown in the dialog


def _set(*values: int) -> frozenset[int]:
    return frozenset(values)


RULES: tuple[Rule, ...] = (
    Rule("SELECT applet", 0x00, Ins.SELECT, _set(0x04), _set(0x00), data="applet-aid"),
    Rule("SELECT certificate EF", 0x00, Ins.SELECT, _set(0x02), _set(0x00, 0x04, 0x0C), data="certificate-fid"),
    Rule("READ BINARY", 0x00, Ins.READ_BINARY, frozenset(range(0x80)), None, data="none"),
    Rule("PUT DATA certificate", 0x00, Ins.PUT_DATA, _set(0xC1), SLOTS, chaining=True, needs_pin=True,
         consent="store the certificate the bank issued for your card's key"),
    Rule("VERIFY (PIN status only)", 0x00, Ins.VERIFY, _set(0x00, 0xFF), _set(0x81), data="none"),
    Rule("GENERATE ASYMMETRIC KEY PAIR", 0x00, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, _set(0x80), SLOTS, data="none",
         needs_pin=True, consent="create a new key pair on your card (replacing the key and certificate "
                                 "it holds for this purpose)"),
    Rule("READ PUBLIC KEY", 0x00, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, _set(0x81), SLOTS, data="none"),
    Rule("MANAGE SECURITY ENVIRONMENT", 0x00, Ins.MANAGE_SECURITY_ENVIRONMENT, _set(0x41, 0x81), _set(0xB6, 0xB8)),
    Rule("PSO COMPUTE DIGITAL SIGNATURE", 0x00, Ins.PERFORM_SECURITY_OPERATION, _set(0x9E), _set(0x9A),
         chaining=True, needs_pin=True,
         consent="sign a hash for the bank. WARNING: the card cannot show what this hash stands for"),
    Rule("PSO DECIPHER", 0x00, Ins.PERFORM_SECURITY_OPERATION, _set(0x80), _set(0x86), chaining=True,
         needs_pin=True, consent="decrypt data for the bank with your card's key"),
    Rule("PSO ENCIPHER", 0x00, Ins.PERFORM_SECURITY_OPERATION, _set(0x86), _set(0x80), chaining=True),
    Rule("PSO VERIFY DIGITAL SIGNATURE", 0x00, Ins.PERFORM_SECURITY_OPERATION, _set(0x00), _set(0xA8),
         chaining=True),
    Rule("PROVE POSSESSION", 0x80, Ins.PROVE_POSSESSION, _set(0x00), SLOTS, chaining=True, needs_pin=True,
         consent="prove to the bank that your card holds the new key"),
    # the card's signed statement about a slot key (no PIN, reveals nothing secret)
    Rule("ATTEST", 0x80, Ins.ATTEST, _set(0x00), SLOTS),
    Rule("SIGN TRANSACTION", 0x80, Ins.SIGN_TRANSACTION, _set(0x00), SLOTS, chaining=True, needs_pin=True,
         consent="authorize this payment"),
    Rule("GET RESPONSE", 0x00, Ins.GET_RESPONSE, _set(0x00), _set(0x00), data="none"),
)

# Refusal reasons that help whoever reads the message: why this command never passes.
_WHY = {
    (0x00, Ins.VERIFY): "the PIN is entered at this terminal and never comes from the server",
    (0x00, Ins.CHANGE_REFERENCE_DATA): "PIN and PUK changes are done locally by the card holder",
    (0x00, Ins.RESET_RETRY_COUNTER): "PIN unblocking is done locally by the card holder",
    (0x80, Ins.PERSONALIZE): "personalization is the issuer's, not the authentication server's",
    (0x80, Ins.ISSUE): "personalization is the issuer's, not the authentication server's",
}


def _data_ok(rule: Rule, data: bytes) -> bool:
    if rule.data == "none":
        return not data
    if rule.data == "applet-aid":
        return data == APPLET_AID
    if rule.data == "certificate-fid":
        return data in CERTIFICATE_FIDS
    return True


def check(raw: bytes) -> tuple[CommandAPDU, Rule]:
    """The decoded command and the rule that admits it, or RefusedCommand saying why."""
    try:
        command = CommandAPDU.decode(raw)
    except APDUFormatError as error:
        raise RefusedCommand(f"malformed APDU from the server: {error}") from None
    header = f"{command.cla:02X} {command.ins:02X} {command.p1:02X} {command.p2:02X}"
    chained = bool(command.cla & CLA_CHAINING)
    base_cla = command.cla & ~CLA_CHAINING
    if base_cla not in (0x00, 0x80):
        raise RefusedCommand(
            f"{header}: class {command.cla:02X} is not the CardShield applet's (secure messaging, logical "
            "channels and GlobalPlatform card management are never relayed)")
    for rule in RULES:
        if (rule.cla, rule.ins) != (base_cla, command.ins):
            continue
        if (rule.p1 is not None and command.p1 not in rule.p1) or (rule.p2 is not None and command.p2 not in rule.p2):
            continue
        if chained and not rule.chaining:
            continue
        if not _data_ok(rule, command.data):
            if rule.data == "applet-aid":
                raise RefusedCommand(f"{header}: SELECT of {command.data.hex().upper()} refused: only the "
                                     f"CardShield applet ({APPLET_AID.hex().upper()}) may be selected")
            if rule.ins == Ins.VERIFY:
                break
            raise RefusedCommand(f"{header}: {rule.name} refused: its data is outside docs/apdu.md")
        return command, rule
    why = _WHY.get((base_cla, command.ins), "it is not a command of the CardShield applet (docs/apdu.md)")
    raise RefusedCommand(f"{header}: refused because {why}")
