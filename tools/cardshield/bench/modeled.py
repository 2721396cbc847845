"""Modeled real-card time of the card-side flows, per card profile: what the enrollment and
payment flows measured on the virtual card would take on a card of that class, from the
profile's public per-operation figures (tools/cardshield/sim/profiles, [timing]) and the
bytes the flow puts on the wire at the profile's transport rate.

    time = keygens x keygen + signatures x sign + the bank's 8E verification (payment)
           + APDUs x per-APDU overhead
           + bytes x 10 bits (start, 8 data, stop + guard: ISO 7816-3 character frame) / rate

The 8E verification is the card's check of the bank's signature over the payment request
(SIGN TRANSACTION): ECDSA P-256 with SHA-256 with the EC bank key, RSA-2048 PKCS#1 v1.5
with SHA-256 with the RSA one. A card with ECDSA is modeled with either key (its default,
EC, saves bytes and costs verification time); a card without it only with RSA-2048.

A model, not a measurement: the card's own figures are averages (RSA key generation varies
by a factor of 30 on one card), and the per-APDU overhead is an estimate."""

from __future__ import annotations

from dataclasses import dataclass

from cardshield.protocol.bank_key import BankKeyType
from cardshield.sim.profiles import CardProfile, CardTiming, available_profiles, load_profile

from .card import ENROLLMENT_FLOW, PAYMENT_FLOW, PAYMENT_FLOW_RSA, payment_flow

BITS_PER_BYTE = 10  # ISO/IEC 7816-3 character: start bit, 8 data bits, parity; ~1 etu guard time


@dataclass(frozen=True)
class FlowCost:
    """What a flow does on the card, besides moving bytes."""

    name: str
    keygens: int
    signatures: int
    #: the bank key whose signature 8E the card verifies once in the flow (None: no 8E)
    bank_key: BankKeyType | None = None


# Patent figure 5 on the card: one key generation; the pairwise consistency signature, the
# proof of possession and the attestation statement. Figure 6: one transaction signature,
# after verifying the bank's signature 8E with the bank key the card holds.
FLOWS = {
    ENROLLMENT_FLOW: FlowCost("enrollment", keygens=1, signatures=3),
    PAYMENT_FLOW: FlowCost("payment, EC P-256 bank key", keygens=0, signatures=1, bank_key=BankKeyType.EC_P256),
    PAYMENT_FLOW_RSA: FlowCost("payment, RSA-2048 bank key", keygens=0, signatures=1,
                               bank_key=BankKeyType.RSA_2048),
}


def profile_bank_keys(profile: CardProfile) -> tuple[BankKeyType, ...]:
    """The bank keys a card of this profile can verify 8E with, the one an issuer gives it
    first: EC P-256 where it has ECDSA, RSA-2048 on every card."""
    if profile.has("Signature.ALG_ECDSA_SHA_256"):
        return BankKeyType.EC_P256, BankKeyType.RSA_2048
    return (BankKeyType.RSA_2048,)


def verify_ms(timing: CardTiming, bank_key: BankKeyType) -> float:
    """The card's verification of one 8E signature with this bank key."""
    if bank_key is BankKeyType.RSA_2048:
        return timing.verify_rsa2048_ms
    if timing.verify_ecdsa_p256_ms is None:
        raise ValueError("this card class has no ECDSA P-256 verification figure")
    return timing.verify_ecdsa_p256_ms


@dataclass(frozen=True)
class ModeledFlow:
    profile: str
    flow: str
    apdus: int
    bytes: int
    transport_ms: float
    card_ms: float
    #: of card_ms, the verification of the bank's signature 8E (0: the flow has none)
    bank_verify_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.transport_ms + self.card_ms


def model(profile: CardProfile, flow: FlowCost, apdus: int, wire_bytes: int) -> ModeledFlow:
    timing = profile.timing
    transport = wire_bytes * BITS_PER_BYTE / timing.transport_bit_per_s * 1000
    bank_verify = verify_ms(timing, flow.bank_key) if flow.bank_key is not None else 0.0
    card = (flow.keygens * timing.keygen_rsa2048_ms + flow.signatures * timing.sign_rsa2048_ms
            + bank_verify + apdus * timing.apdu_overhead_ms)
    return ModeledFlow(profile.name, flow.name, apdus, wire_bytes, transport, card, bank_verify)


def modeled_flows(operations) -> list[ModeledFlow]:
    """For each profile with timing figures and each measured flow: its modeled time. A card
    with extended length gets the flow's extended-reader wire counts, a short-only one the
    short reader's (chaining, 61xx and GET RESPONSE); its payments are those with each bank
    key it can hold (profile_bank_keys), its default first."""
    rows = []
    named = {operation.name: operation for operation in operations}
    for name in available_profiles():
        profile = load_profile(name)
        if profile.timing is None:
            continue
        flow_names = [ENROLLMENT_FLOW] + [payment_flow(key) for key in profile_bank_keys(profile)]
        for operation in (named[flow_name] for flow_name in flow_names if flow_name in named):
            wire = operation.extended if profile.extended_length else operation.short
            rows.append(model(profile, FLOWS[operation.name], wire.apdus, wire.bytes))
    return rows


def render_modeled(operations, measured_ms: dict[str, float]) -> list[str]:
    """The section's table; measured_ms maps an operation's name to its median time."""
    rows = modeled_flows(operations)
    measured_ms = {FLOWS[name].name: ms for name, ms in measured_ms.items() if name in FLOWS}
    if not rows:
        return []
    lines = [
        "### Modeled real-card time per card profile",
        "",
        "From each profile's public figures (tools/cardshield/sim/profiles, `[timing]`, sources cited "
        "there) and the flow's bytes on the wire at the profile's rate (10 bits a byte); "
        "tools/cardshield/bench/modeled.py. A model: key generation alone varies 0.6-17.3 s on a JCOP4. "
        "A payment includes the card's verification of the bank's signature 8E with the bank key it "
        "holds (a card with ECDSA: EC P-256 by default, RSA-2048 possible; without: RSA-2048).",
        "",
        "| profile | flow | APDUs | bytes | transport | on card | of it, 8E verification | modeled total "
        "| measured on the virtual card |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        measured = measured_ms.get(row.flow)
        lines.append(f"| {row.profile} | {row.flow} | {row.apdus} | {row.bytes:,} | {row.transport_ms:,.0f} ms "
                     f"| {row.card_ms:,.0f} ms | {f'{row.bank_verify_ms:,.1f} ms' if row.bank_verify_ms else '-'} "
                     f"| {row.total_ms / 1000:,.2f} s "
                     f"| {f'{measured:,.0f} ms' if measured is not None else '-'} |")
    for profile in dict.fromkeys(row.profile for row in rows):
        tradeoff = bank_key_tradeoff(rows, profile)
        if tradeoff:
            lines += ["", tradeoff]
    return lines


def bank_key_tradeoff(rows: list[ModeledFlow], profile: str) -> str:
    """EC against RSA bank key on one card that can hold both: bytes saved against the
    slower verification."""
    payments = {row.flow: row for row in rows if row.profile == profile}
    ec, rsa = payments.get(FLOWS[PAYMENT_FLOW].name), payments.get(FLOWS[PAYMENT_FLOW_RSA].name)
    if ec is None or rsa is None:
        return ""
    net = ec.total_ms - rsa.total_ms
    return (f"On {profile}, the EC P-256 bank key takes {rsa.bytes - ec.bytes:,} bytes off a payment "
            f"({rsa.transport_ms - ec.transport_ms:,.0f} ms less on the wire) and its ECDSA verification of 8E "
            f"takes {ec.bank_verify_ms - rsa.bank_verify_ms:,.1f} ms more than RSA-2048's "
            f"({ec.bank_verify_ms:,.1f} against {rsa.bank_verify_ms:,.1f} ms): the payment is "
            f"{abs(net):,.0f} ms {'slower' if net > 0 else 'faster'} in all.")
