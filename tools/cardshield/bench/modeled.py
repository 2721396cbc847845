"""Modeled real-card time of the card-side flows, per card profile: what the enrollment and
payment flows measured on the virtual card would take on a card of that class, from the
profile's public per-operation figures (tools/cardshield/sim/profiles, [timing]) and the
bytes the flow puts on the wire at the profile's transport rate.

    time = keygens x keygen + signatures x sign + APDUs x per-APDU overhead
           + bytes x 10 bits (start, 8 data, stop + guard: ISO 7816-3 character frame) / rate

A model, not a measurement: the card's own figures are averages (RSA key generation varies
by a factor of 30 on one card), and the per-APDU overhead is an estimate."""

from __future__ import annotations

from dataclasses import dataclass

from cardshield.sim.profiles import CardProfile, available_profiles, load_profile

from cardshield.protocol.bank_key import BankKeyType

from .card import ENROLLMENT_FLOW, PAYMENT_FLOW, PAYMENT_FLOW_RSA, payment_flow

BITS_PER_BYTE = 10  # ISO/IEC 7816-3 character: start bit, 8 data bits, parity; ~1 etu guard time


@dataclass(frozen=True)
class FlowCost:
    """What a flow does on the card, besides moving bytes."""

    name: str
    keygens: int
    signatures: int


# Patent figure 5 on the card: one key generation; the pairwise consistency signature, the
# proof of possession and the attestation statement. Figure 6: one transaction signature (verifying the server's signature is
# a public-key operation, counted in the per-APDU overhead).
FLOWS = {
    ENROLLMENT_FLOW: FlowCost("enrollment", keygens=1, signatures=3),
    PAYMENT_FLOW: FlowCost("payment, EC P-256 bank key", keygens=0, signatures=1),
    PAYMENT_FLOW_RSA: FlowCost("payment, RSA-2048 bank key", keygens=0, signatures=1),
}


def profile_bank_key(profile: CardProfile) -> BankKeyType:
    """The bank key an issuer gives a card of this profile: EC P-256 where it has ECDSA."""
    return BankKeyType.EC_P256 if profile.has("Signature.ALG_ECDSA_SHA_256") else BankKeyType.RSA_2048


@dataclass(frozen=True)
class ModeledFlow:
    profile: str
    flow: str
    apdus: int
    bytes: int
    transport_ms: float
    card_ms: float

    @property
    def total_ms(self) -> float:
        return self.transport_ms + self.card_ms


def model(profile: CardProfile, flow: FlowCost, apdus: int, wire_bytes: int) -> ModeledFlow:
    timing = profile.timing
    transport = wire_bytes * BITS_PER_BYTE / timing.transport_bit_per_s * 1000
    card = (flow.keygens * timing.keygen_rsa2048_ms + flow.signatures * timing.sign_rsa2048_ms
            + apdus * timing.apdu_overhead_ms)
    return ModeledFlow(profile.name, flow.name, apdus, wire_bytes, transport, card)


def modeled_flows(operations) -> list[ModeledFlow]:
    """For each profile with timing figures and each measured flow: its modeled time. A card
    with extended length gets the flow's extended-reader wire counts, a short-only one the
    short reader's (chaining, 61xx and GET RESPONSE); its payment is the one with the bank
    key it would hold (profile_bank_key)."""
    rows = []
    for name in available_profiles():
        profile = load_profile(name)
        if profile.timing is None:
            continue
        for operation in operations:
            flow = FLOWS.get(operation.name)
            if flow is None or (operation.name in (PAYMENT_FLOW, PAYMENT_FLOW_RSA)
                                and operation.name != payment_flow(profile_bank_key(profile))):
                continue
            wire = operation.extended if profile.extended_length else operation.short
            rows.append(model(profile, flow, wire.apdus, wire.bytes))
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
        "tools/cardshield/bench/modeled.py. A model: key generation alone varies 0.6-17.3 s on a JCOP4.",
        "",
        "| profile | flow | APDUs | bytes | transport | on card | modeled total | measured on the virtual card |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        measured = measured_ms.get(row.flow)
        lines.append(f"| {row.profile} | {row.flow} | {row.apdus} | {row.bytes:,} | {row.transport_ms:,.0f} ms "
                     f"| {row.card_ms:,.0f} ms | {row.total_ms / 1000:,.2f} s "
                     f"| {f'{measured:,.0f} ms' if measured is not None else '-'} |")
    return lines
