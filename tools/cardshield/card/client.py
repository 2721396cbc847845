"""High-level, typed API of the CardShield applet over a PC/SC Transport.

Every method builds its command with cardshield.protocol (docs/apdu.md), sends it through
the transport (which does chaining / extended length and GET RESPONSE), and turns the
answer into Python values, or raises CardError carrying the status word. PINs and PUKs
travel in APDUs marked sensitive: traces show their length only, never their digits.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardshield.card.apdu import ResponseAPDU
from cardshield.card.errors import CardError
from cardshield.card.transport import Transport
from cardshield.protocol import commands, keys, tlv
from cardshield.protocol.attestation import attest_command
from cardshield.protocol.command import Command
from cardshield.protocol.constants import (APPLET_AID, Algorithm, AlgorithmSupport, CardFlags, Padding, SlotPolicy,
                                           Template)
from cardshield.protocol.fci import FCI, parse_fci
from cardshield.protocol.keys import PublicKey
from cardshield.protocol.transaction import Transaction, TransactionSignature, parse_sign_transaction_response

#: how many certificate bytes one READ BINARY asks for with short APDUs
SHORT_READ = 256


@dataclass
class CardShield:
    """The applet on one card. `select()` first; the FCI it returns tells what the card can do."""

    transport: Transport
    aid: bytes = APPLET_AID

    # -- plumbing ------------------------------------------------------------------------
    def transmit(self, command: Command, extended: bool = False) -> ResponseAPDU:
        """One logical command, any status word back (for callers that branch on it).
        extended=True forces one extended APDU; otherwise the transport chooses (extended
        where the card and reader take it, else command chaining and GET RESPONSE)."""
        return self.transport.transmit(command.apdu(True if extended else None))

    def _send(self, command: Command, extended: bool = False) -> bytes:
        response = self.transmit(command, extended)
        if response.sw != 0x9000:
            raise CardError(response.sw, command.name)
        return response.data

    # -- selection and status ------------------------------------------------------------
    def select(self) -> FCI:
        return parse_fci(self._send(commands.select_applet(self.aid)))

    def pin_tries_left(self) -> int | None:
        """None when the PIN is verified in this session, else the tries left (0: blocked)."""
        response = self.transmit(commands.pin_status())
        if response.sw == 0x9000:
            return None
        if response.sw1 == 0x63 and response.sw2 & 0xF0 == 0xC0:
            return response.sw2 & 0x0F
        if response.sw == 0x6983:
            return 0
        raise CardError(response.sw, "VERIFY status")

    # -- PIN / PUK -----------------------------------------------------------------------
    def verify_pin(self, pin: str) -> None:
        self._send(commands.verify_pin(pin))

    def forget_pin(self) -> None:
        self._send(commands.reset_pin_status())

    def change_pin(self, old: str, new: str) -> None:
        self._send(commands.change_pin(old, new))

    def change_puk(self, old: str, new: str) -> None:
        self._send(commands.change_puk(old, new))

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        self._send(commands.unblock_pin(puk, new_pin))

    # -- keys ----------------------------------------------------------------------------
    def generate_key(self, slot: int) -> PublicKey:
        """Regenerates the slot's key pair on the card (and drops its certificate)."""
        return keys.parse_public_key(self._send(commands.generate_key(slot)))

    def read_public_key(self, slot: int) -> PublicKey:
        return keys.parse_public_key(self._send(commands.read_public_key(slot)))

    # -- certificates --------------------------------------------------------------------
    def write_certificate(self, slot: int, der: bytes, extended: bool = False) -> None:
        """Stores (or with b"" deletes) the slot's certificate; committed atomically."""
        self._send(commands.put_certificate(slot, der), extended)

    def read_certificate(self, slot: int, extended: bool = False) -> bytes | None:
        """The slot's DER certificate, or None if it has none. READ BINARY in 256-byte
        parts; with extended=True one extended READ BINARY returns it whole."""
        return self._read_certificate_ef(commands.select_certificate(slot, fcp=True), extended)

    def read_attestation_certificate(self, extended: bool = False) -> bytes | None:
        """The card's attestation certificate (EF C1 0A, readable without PIN), or None."""
        return self._read_certificate_ef(commands.select_attestation_certificate(fcp=True), extended)

    def _read_certificate_ef(self, select: Command, extended: bool) -> bytes | None:
        response = self.transmit(select)
        if response.sw == 0x6A82:
            return None
        if response.sw != 0x9000:
            raise CardError(response.sw, "SELECT certificate EF")
        size = int.from_bytes(tlv.require(tlv.decode(response.data)[0].children(), 0x80, "FCP"), "big")
        if extended:
            return self._send(commands.read_binary(0, ne=max(size, 1)), extended=True)
        out = bytearray()
        while len(out) < size:
            out += self._send(commands.read_binary(len(out), ne=min(SHORT_READ, size - len(out))))
        return bytes(out)

    # -- signatures and ciphers ----------------------------------------------------------
    def set_security_environment(self, template: Template, *, private_slot: int | None = None,
                                 public_ref: int | None = None) -> None:
        self._send(commands.mse_set(template, private_slot=private_slot, public_ref=public_ref))

    def sign_hash(self, hash_or_digest_info: bytes) -> bytes:
        """PSO COMPUTE DIGITAL SIGNATURE with the DST private key (slot 1 by default)."""
        return self._send(commands.compute_signature(hash_or_digest_info))

    def sign_transaction(self, slot: int, transaction: Transaction | bytes,
                         server_signature: bytes | None = None) -> TransactionSignature:
        return parse_sign_transaction_response(
            self._send(commands.sign_transaction(slot, transaction, server_signature)))

    def prove_possession(self, slot: int, challenge: bytes) -> bytes:
        return self._send(commands.prove_possession(slot, challenge))

    def attest(self, slot: int, challenge: bytes) -> bytes:
        """ATTEST: the statement about the slot's key signed by the card's attestation key,
        statement || 9E signature (cardshield.protocol.attestation parses it)."""
        return self._send(attest_command(slot, challenge))

    def decipher(self, cryptogram: bytes, padding: Padding = Padding.PKCS1_V15) -> bytes:
        return self._send(commands.decipher(cryptogram, padding))

    def encipher(self, plaintext: bytes) -> bytes:
        return self._send(commands.encipher(plaintext))

    def verify_signature(self, sha256_hash: bytes, signature: bytes) -> bool:
        """True if the DST public key verifies the signature, False on 6300."""
        response = self.transmit(commands.verify_signature(sha256_hash, signature))
        if response.sw == 0x6300:
            return False
        if response.sw != 0x9000:
            raise CardError(response.sw, "PSO VERIFY DIGITAL SIGNATURE")
        return True

    # -- personalization (plain: development cards; secured scripts: cardshield.perso) ---
    def personalize_pin(self, pin: str) -> None:
        self._send(commands.personalize_pin(pin))

    def personalize_puk(self, puk: str) -> None:
        self._send(commands.personalize_puk(puk))

    def configure_slot(self, slot: int, algorithm: Algorithm, policy: SlotPolicy = SlotPolicy(0)) -> None:
        self._send(commands.personalize_slot(slot, algorithm, policy))

    def load_server_key(self, public_key_7f49: bytes) -> None:
        self._send(commands.personalize_server_key(public_key_7f49))

    def issue(self) -> None:
        self._send(commands.issue())

    def personalize_development_card(self, pin: str, puk: str, *, server_key_7f49: bytes | None = None,
                                     slots: dict[int, tuple[Algorithm, SlotPolicy]] | None = None) -> FCI:
        """Plain personalization of a development card (no key set installed), then ISSUE."""
        self.select()
        self.personalize_pin(pin)
        self.personalize_puk(puk)
        if server_key_7f49 is not None:
            self.load_server_key(server_key_7f49)
        for slot, (algorithm, policy) in (slots or {}).items():
            self.configure_slot(slot, algorithm, policy)
        self.issue()
        return self.select()


def describe_fci(fci: FCI) -> str:
    """A human-readable account of a card's FCI (`cardshield card status`)."""
    algorithms = ", ".join(a.name.replace("_", "-") for a in AlgorithmSupport if a in fci.algorithms)
    flags = ", ".join(f.name.lower().replace("_", " ") for f in CardFlags if f in fci.flags)
    lines = [
        f"CardShield applet {fci.version[0]}.{fci.version[1]} ({fci.aid.hex().upper()})",
        f"lifecycle:        {fci.lifecycle.name}",
        f"card algorithms:  {algorithms}",
        f"flags:            {flags}",
        f"PIN tries left:   {fci.pin_tries}    PUK tries left: {fci.puk_tries}",
        f"signature counter: {fci.counter}",
        f"max certificate:  {fci.max_certificate_size} bytes",
    ]
    for slot in sorted(fci.slots.values(), key=lambda s: s.slot):
        policy = ", ".join(p.name.lower().replace("_", " ") for p in SlotPolicy if p in slot.policy) or "none"
        lines.append(
            f"slot {slot.slot}:           {slot.algorithm.name.replace('_', '-')}, "
            f"key {'present' if slot.has_key else 'absent'}, "
            f"certificate {slot.certificate_length if slot.has_certificate else 'absent'}"
            f"{' bytes' if slot.has_certificate else ''}, policy: {policy}"
        )
    memory = fci.memory
    lines.append(f"free memory:      persistent {memory.persistent}, transient {memory.transient_reset} (reset) / "
                 f"{memory.transient_deselect} (deselect) bytes (7FFF = at least 32767)")
    return "\n".join(lines)
