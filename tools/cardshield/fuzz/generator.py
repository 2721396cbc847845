"""Fuzz cases: a short sequence of raw APDUs (and card resets) built from one seeded
random generator, so a case is reproduced from (campaign seed, case index) alone.

Each case starts from a valid command of the applet (docs/apdu.md) built with the card's
current secrets and keys, then applies zero or more structure-aware mutations:
- header: any CLA (chaining, secure-messaging and proprietary bits), INS neighbours, P1/P2
  boundaries;
- lengths: Lc/Le edge values 0, 1, 255, 256, 65535 (65536), short vs extended encodings,
  Lc disagreeing with the body, Le on commands without response and vice versa;
- data: truncated, extended, bit flips, TLV lengths rewritten (0, 7F, 80, 81 xx, 82 xxxx,
  FF), TLVs dropped, repeated, reordered, oversized values;
- sequences: command chains cut short, interleaved with other commands, followed by a
  stray GET RESPONSE, a reselection or a card reset; GET RESPONSE with nothing pending.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardshield.card.apdu import APDUFormatError, CommandAPDU
from cardshield.protocol import tlv
from cardshield.protocol.bank_key import BankKeyType, BankPrivateKey, encode_bank_public_key, sign_request
from cardshield.protocol.constants import APPLET_AID
from cardshield.protocol.transaction import Transaction

RESET = "reset"
# Command data is cut at 32767 bytes: Java Card indexes the APDU buffer with a short, and
# vpcd drops the card when a frame nears its 2-byte length limit (an Lc of 65535 with its
# full body cannot be carried). Lc 65535 still goes out with a short body, among the
# malformed encodings.
MAX_DATA = 32767
MAX_CHAIN = 24  # pieces per chain: long enough for a 3 KB certificate in 255-byte pieces
LE_EDGES = (None, 0, 1, 255, 256, 65535, 65536)
LC_EDGES = (0, 1, 255, 256, 65535)
P_EDGES = (0x00, 0x01, 0x02, 0x03, 0x04, 0x0C, 0x10, 0x7F, 0x80, 0x81, 0x82, 0x9A, 0x9E, 0xA8, 0xB6, 0xB8,
           0xC1, 0xFE, 0xFF)
CLA_CHOICES = (0x00, 0x10, 0x80, 0x90, 0x84, 0x94, 0x04, 0x08, 0x0C, 0x01, 0x03, 0x40, 0x60, 0xA0, 0xB0, 0xE0)
APPLET_INS = (0xA4, 0xB0, 0xDA, 0x20, 0x24, 0x2C, 0x47, 0x22, 0x2A, 0xC0, 0x54, 0x56, 0xE0, 0xE2)


@dataclass
class CardContext:
    """What a valid command needs: the card's secrets and keys as the campaign knows them."""

    pin: str
    puk: str
    public_keys: dict[int, rsa.RSAPublicKey] = field(default_factory=dict)
    server_key: rsa.RSAPrivateKey | None = None  # the bank's RSA key (VERIFY with reference 10)
    certificate: bytes = b""
    #: the bank's request key the card holds (8E): RSA-2048 or EC P-256
    bank_key: BankPrivateKey | None = None
    #: both bank keys, for PERSONALIZE P1=04 of either type
    bank_keys: dict[BankKeyType, BankPrivateKey] = field(default_factory=dict)


@dataclass(frozen=True)
class Apdu:
    """One command as the fuzzer meant it (header, data, Ne) and the exact bytes sent."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    raw: bytes
    label: str
    #: bytes that are no ISO 7816-4 APDU (Lc vs body): the card's I/O layer answers 6700
    malformed: bool = False

    def __str__(self) -> str:
        secret = self.ins in (0x20, 0x24, 0x2C) or (self.cla & 0x80 and self.ins == 0xE0)
        body = f"[{len(self.raw) - 4} bytes masked]" if secret and len(self.raw) > 5 else self.raw[4:].hex().upper()
        return f"{self.raw[:4].hex(' ').upper()} {body} ({self.label})"


Step = Apdu | str  # an APDU, or RESET


@dataclass
class Case:
    index: int
    steps: list[Step]
    mutations: list[str]


def encode(cla: int, ins: int, p1: int, p2: int, data: bytes, ne: int | None, form: str) -> bytes:
    """ISO/IEC 7816-4 clause 5.1 encodings; `form` 'short', 'extended' or 'auto'."""
    header = bytes((cla, ins, p1, p2))
    extended = form == "extended" or (form == "auto" and (len(data) > 255 or (ne or 0) > 256))
    if not extended:
        body = (bytes((len(data),)) + data) if data else b""
        if ne is not None:
            body += bytes((ne % 256,))
        return header + body
    body = b"\x00"
    if data:
        body += len(data).to_bytes(2, "big") + data
    if ne is not None:
        body += (ne % 65536).to_bytes(2, "big")
    return header + body


# --- valid commands (docs/apdu.md), built from the card context -------------------------

def _digits(rng: random.Random, low: int, high: int) -> bytes:
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(low, high))).encode()


def _pad(secret: bytes) -> bytes:
    return secret + b"\xff" * (12 - len(secret))


def _transaction(rng: random.Random) -> bytes:
    return Transaction(
        amount=rng.randint(0, 10**9), currency=rng.choice(("EUR", "USD", "CNY", "XTS")),
        payee=rng.choice(("Shop", "Caf\u00e9 de la Gare", "x" * 64)), order_ref=f"order-{rng.randint(0, 99999)}",
        nonce=rng.randbytes(rng.choice((16, 24, 32))),
    ).tlvs()


def _slot(rng: random.Random) -> int:
    return rng.choice((1, 1, 2, 2, 0, 3, 0xFF))


def _modulus_bytes(ctx: CardContext, slot: int) -> int:
    key = ctx.public_keys.get(slot)
    return key.key_size // 8 if key else 256


def valid_command(rng: random.Random, ctx: CardContext) -> tuple[str, int, int, int, int, bytes, int | None]:
    """(label, CLA, INS, P1, P2, data, Ne) of a well-formed command of a random kind."""
    kind = rng.choice(BUILDERS)
    return kind(rng, ctx)


def _select_applet(rng, ctx):
    aid = rng.choice((APPLET_AID, APPLET_AID, APPLET_AID[:-1], APPLET_AID + b"\x02", bytes.fromhex("A000000151000000")))
    return "SELECT applet", 0x00, 0xA4, 0x04, 0x00, aid, 256


def _select_ef(rng, ctx):
    p2 = rng.choice((0x0C, 0x00, 0x04))
    ef = 0x0A if rng.random() < 0.15 else _slot(rng)  # C1 0A: the attestation certificate
    return "SELECT EF", 0x00, 0xA4, 0x02, p2, bytes((0xC1, ef)), None if p2 == 0x0C else 256


def _read_binary(rng, ctx):
    offset = rng.choice((0, 1, 255, 256, len(ctx.certificate) - 1, len(ctx.certificate), 0x7FFF,
                         rng.randint(0, 4096)))
    offset = max(0, min(offset, 0x7FFF))
    return "READ BINARY", 0x00, 0xB0, offset >> 8, offset & 0xFF, b"", rng.choice((1, 255, 256, 65535, 65536))


def _put_data(rng, ctx):
    der = ctx.certificate or b"\x30\x03\x02\x01\x01"
    data = rng.choice((der, der, b"", b"\x30\x82" + (4000).to_bytes(2, "big") + bytes(4000), b"\x30\x00"))
    return "PUT DATA", 0x00, 0xDA, 0xC1, _slot(rng), data, None


def _verify(rng, ctx):
    choice = rng.randrange(5)
    if choice == 0:
        return "VERIFY", 0x00, 0x20, 0x00, 0x81, ctx.pin.encode(), None
    if choice == 1:
        return "VERIFY wrong", 0x00, 0x20, 0x00, 0x81, _digits(rng, 4, 12), None
    if choice == 2:
        return "VERIFY status", 0x00, 0x20, 0x00, 0x81, b"", None
    if choice == 3:
        return "VERIFY reset", 0x00, 0x20, 0xFF, 0x81, b"", None
    return "VERIFY PUK ref", 0x00, 0x20, 0x00, 0x82, ctx.puk.encode(), None


def _change(rng, ctx):
    if rng.random() < 0.5:
        old = ctx.pin.encode() if rng.random() < 0.6 else _digits(rng, 4, 12)
        return "CHANGE PIN", 0x00, 0x24, 0x00, 0x81, _pad(old) + _pad(_digits(rng, 4, 12)), None
    old = ctx.puk.encode() if rng.random() < 0.6 else _digits(rng, 8, 8)
    return "CHANGE PUK", 0x00, 0x24, 0x00, 0x82, _pad(old) + _pad(_digits(rng, 8, 8)), None


def _unblock(rng, ctx):
    puk = ctx.puk.encode() if rng.random() < 0.6 else _digits(rng, 8, 8)
    return "RESET RETRY COUNTER", 0x00, 0x2C, 0x00, 0x81, puk + _digits(rng, 4, 12), None


def _generate(rng, ctx):
    return "GENERATE", 0x00, 0x47, 0x80, _slot(rng), b"", 256


def _read_public(rng, ctx):
    return "READ PUBLIC KEY", 0x00, 0x47, 0x81, _slot(rng), b"", rng.choice((256, 65536, 1))


def _mse(rng, ctx):
    dos = rng.choice((b"\x84\x01" + bytes((_slot(rng),)), b"\x83\x01" + bytes((rng.choice((1, 2, 0x10, 0x11)),)),
                      b"\x84\x01\x01\x83\x01\x10", b"\x84\x01\x10", b""))
    return "MSE SET", 0x00, 0x22, rng.choice((0x41, 0x81)), rng.choice((0xB6, 0xB8)), dos, None


_DIGEST_PREFIX = {
    32: bytes.fromhex("3031300d060960864801650304020105000420"),
    48: bytes.fromhex("3041300d060960864801650304020205000430"),
    64: bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _sign_hash(rng, ctx):
    size = rng.choice((32, 32, 48, 64))
    digest = rng.randbytes(size)
    data = digest if size == 32 and rng.random() < 0.7 else _DIGEST_PREFIX[size] + digest
    return "PSO CDS", 0x00, 0x2A, 0x9E, 0x9A, data, 256


def _decipher(rng, ctx):
    key = ctx.public_keys.get(2)
    if key is None:
        cryptogram = rng.randbytes(256)
    else:
        cryptogram = key.encrypt(rng.randbytes(rng.randint(1, 100)), padding.PKCS1v15())
    return "PSO DECIPHER", 0x00, 0x2A, 0x80, 0x86, bytes((rng.choice((0, 0, 2, 1)),)) + cryptogram, 256


def _encipher(rng, ctx):
    return "PSO ENCIPHER", 0x00, 0x2A, 0x86, 0x80, rng.randbytes(rng.choice((1, 16, 245, 246))), 256


def _verify_signature(rng, ctx):
    digest = rng.randbytes(32)
    signature = rng.randbytes(256)
    if ctx.server_key is not None and rng.random() < 0.5:
        signature = ctx.server_key.sign(digest, padding.PKCS1v15(), _Prehashed())
    return "PSO VERIFY", 0x00, 0x2A, 0x00, 0xA8, tlv.encode(0x90, digest) + tlv.encode(0x9E, signature), None


def _Prehashed():
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    return Prehashed(hashes.SHA256())


def _prove(rng, ctx):
    return "PROVE POSSESSION", 0x80, 0x56, 0x00, _slot(rng), rng.randbytes(rng.choice((16, 32, 64, 15, 65))), 256


def _attest(rng, ctx):
    p1 = 0x00 if rng.random() < 0.9 else 0x01
    slot = 0x0A if rng.random() < 0.1 else _slot(rng)  # 0A: the attestation key is no slot
    return "ATTEST", 0x80, 0x58, p1, slot, rng.randbytes(rng.choice((16, 32, 64, 15, 65))), 256


def _sign_transaction(rng, ctx):
    tlvs = _transaction(rng)
    data = tlvs
    bank_key = ctx.bank_key or ctx.server_key
    if bank_key is not None and rng.random() < 0.5:
        # mostly the card's own bank key; sometimes the other type's (the wrong size: 6A80)
        signer = bank_key if rng.random() < 0.8 or not ctx.bank_keys else rng.choice(list(ctx.bank_keys.values()))
        data += tlv.encode(0x8E, sign_request(signer, tlvs))
    return "SIGN TRANSACTION", 0x80, 0x54, 0x00, _slot(rng), data, 256


def _get_response(rng, ctx):
    return "GET RESPONSE", 0x00, 0xC0, 0x00, 0x00, b"", rng.choice((1, 255, 256))


def _personalize(rng, ctx):
    step = rng.choice((1, 2, 3, 4, 5, 6))
    if step == 5:  # the attestation steps exist only behind the secure channel
        data = b""
    elif step == 6:
        data = bytes.fromhex("3003020101")
    elif step == 1:
        data = _digits(rng, 4, 12)
    elif step == 2:
        data = _digits(rng, 8, 8)
    elif step == 3:
        data = bytes((rng.choice((1, 1, 2, 3, 0x11, 0, 4)), rng.choice((0, 1, 2, 3, 4))))
    elif ctx.bank_keys and rng.random() < 0.5:  # the bank's RSA-2048 or EC P-256 key (docs/apdu.md P1=04)
        data = encode_bank_public_key(rng.choice(list(ctx.bank_keys.values())).public_key())
    else:
        key = ctx.server_key.public_key() if ctx.server_key else rsa.generate_private_key(65537, 1024).public_key()
        n = key.public_numbers().n.to_bytes(key.key_size // 8, "big")
        data = tlv.encode(0x7F49, tlv.encode(0x81, n) + tlv.encode(0x82, b"\x01\x00\x01"))
    p2 = _slot(rng) if step == 3 else rng.choice((0x00, 0x80)) if step == 6 else 0
    return "PERSONALIZE", 0x80, 0xE0, step, p2, data, None


def _issue(rng, ctx):
    return "ISSUE", 0x80, 0xE2, 0x00, 0x00, b"", None


BUILDERS = (
    _select_applet, _select_ef, _read_binary, _put_data, _verify, _verify, _change, _unblock, _generate,
    _read_public, _mse, _sign_hash, _decipher, _encipher, _verify_signature, _prove, _attest, _sign_transaction,
    _sign_transaction, _get_response, _personalize, _issue,
)


# --- mutations ----------------------------------------------------------------------

def _mutate_tlv_length(rng: random.Random, data: bytes) -> bytes:
    """Rewrite the length of one top-level TLV, or truncate the TLV list inside a value."""
    try:
        items = tlv.decode(data)
    except tlv.TLVError:
        items = []
    if not items or any(not 0 < item.tag <= 0xFFFF for item in items):
        return data[: rng.randint(0, len(data))]  # not TLV-shaped (random data may decode to tag 00)
    target = rng.randrange(len(items))
    out = b""
    for i, item in enumerate(items):
        value = item.value
        tag = tlv.encode_tag(item.tag)
        if i != target:
            out += tag + tlv.encode_length(len(value)) + value
            continue
        how = rng.randrange(7)
        if how == 0:
            out += tag + bytes((rng.choice((0x00, 0x7F, 0x80, 0x84, 0xFF)),)) + value
        elif how == 1:
            out += tag + b"\x81" + bytes((min(255, len(value) + rng.randint(1, 40)),)) + value
        elif how == 2:
            out += tag + b"\x82" + rng.choice((0xFFFF, len(value), 0)).to_bytes(2, "big") + value
        elif how == 3:
            out += tag + tlv.encode_length(len(value)) + value + tag + tlv.encode_length(len(value)) + value
        elif how == 4:
            continue  # TLV dropped
        elif how == 5:
            big = value * (200 // max(1, len(value)) + 1)
            out += tag + tlv.encode_length(len(big[:250])) + big[:250]  # oversized value
        else:
            out += tag + tlv.encode_length(len(value) + 3) + value  # truncated: length claims more
    if rng.random() < 0.2 and len(items) > 1:
        return out[len(tlv.encode_tag(items[0].tag)) + 1 + len(items[0].value):] + out[:2]  # reordered/cut
    return out


def _mutate_data(rng: random.Random, data: bytes, mutations: list[str]) -> bytes:
    how = rng.randrange(7)
    if how == 0 and data:
        cut = rng.randint(0, len(data) - 1)
        mutations.append(f"data truncated to {cut}")
        return data[:cut]
    if how == 1:
        extra = rng.choice((1, 16, 255, 1000))
        mutations.append(f"data extended by {extra}")
        return data + rng.randbytes(extra)
    if how == 2 and data:
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        mutations.append("bits flipped")
        return bytes(out)
    if how == 3:
        mutations.append("TLV length rewritten")
        return _mutate_tlv_length(rng, data)
    if how == 4:
        size = rng.choice(LC_EDGES[1:])
        mutations.append(f"data replaced by {size} random bytes")
        return rng.randbytes(size)
    if how == 5:
        mutations.append("data emptied")
        return b""
    mutations.append("data replaced by 0xFF")
    return b"\xff" * len(data)


def _raw_mismatch(rng: random.Random, raw: bytes, mutations: list[str]) -> bytes:
    """Bytes that do not form a consistent APDU: Lc vs body, stray bytes, extended markers."""
    how = rng.randrange(7)
    if how == 6:
        mutations.append("extended Lc FFFF with a short body")
        return raw[:4] + b"\x00\xff\xff" + rng.randbytes(rng.randint(1, 300))
    if how == 0 and len(raw) > 5:
        mutations.append("body shorter than Lc")
        return raw[: rng.randint(5, len(raw) - 1)]
    if how == 1:
        mutations.append("trailing bytes after Le")
        return raw + rng.randbytes(rng.randint(1, 3))
    if how == 2:
        mutations.append("extended marker with short Le (5 bytes: 00 xx)")
        return raw[:4] + b"\x00" + bytes((rng.randrange(256),))
    if how == 3:
        mutations.append("short Lc 00 followed by data")
        return raw[:4] + b"\x00" + rng.randbytes(rng.randint(1, 8))
    if how == 4:
        mutations.append("extended Lc 0000")
        return raw[:4] + b"\x00\x00\x00" + rng.randbytes(rng.choice((0, 2, 4)))
    mutations.append("header only, 4 bytes")
    return raw[:4]


def _apdu(label, cla, ins, p1, p2, data, ne, form="auto", raw: bytes | None = None, malformed=False) -> Apdu:
    raw = raw if raw is not None else encode(cla, ins, p1, p2, data, ne, form)
    return Apdu(cla, ins, p1, p2, data, raw, label, malformed)


def mutated_command(rng: random.Random, ctx: CardContext, mutations: list[str]) -> list[Step]:
    """One command, possibly mutated, possibly sent as a chain; a list of steps."""
    label, cla, ins, p1, p2, data, ne = valid_command(rng, ctx)
    mutations.append(label)
    if rng.random() < 0.25:
        cla = rng.choice(CLA_CHOICES) | (cla & 0x80 if rng.random() < 0.5 else 0)
        mutations.append(f"CLA {cla:02X}")
    if rng.random() < 0.05:
        ins = rng.choice((rng.randrange(256), *APPLET_INS)) & 0xFF
        if ins & 0xF0 in (0x60, 0x90):
            ins ^= 0x01 if ins & 0xF0 == 0x60 else 0x0F  # 6X/9X are status bytes, not INS
            ins = 0x6D if ins & 0xF0 in (0x60, 0x90) else ins
        mutations.append(f"INS {ins:02X}")
    if rng.random() < 0.2:
        p1 = rng.choice(P_EDGES) if rng.random() < 0.8 else rng.randrange(256)
        mutations.append(f"P1 {p1:02X}")
    if rng.random() < 0.2:
        p2 = rng.choice(P_EDGES) if rng.random() < 0.8 else rng.randrange(256)
        mutations.append(f"P2 {p2:02X}")
    if rng.random() < 0.35:
        data = _mutate_data(rng, data, mutations)
    if rng.random() < 0.2:
        ne = rng.choice(LE_EDGES)
        mutations.append(f"Le {ne}")
    form = "auto"
    if rng.random() < 0.15:
        form = "extended"
        mutations.append("extended form")
    if len(data) > MAX_DATA:
        data = data[:MAX_DATA]
    if len(data) > 255 and form != "extended" and rng.random() < 0.7 or rng.random() < 0.1 and data:
        return _chain(rng, ctx, label, cla, ins, p1, p2, data, ne, mutations)
    if form == "auto" and len(data) > 255 or (ne or 0) > 256:
        form = "extended"
    raw = encode(cla, ins, p1, p2, data, ne, form)
    malformed = False
    if rng.random() < 0.06:
        raw = _raw_mismatch(rng, raw, mutations)
        try:  # some mismatches still spell a valid APDU (00 xx yy is case 2 extended)
            data, malformed = CommandAPDU.decode(raw).data, False
        except APDUFormatError:
            data, malformed = b"", True
    return [_apdu(label, cla, ins, p1, p2, data, ne, raw=raw, malformed=malformed)]


def _chain(rng, ctx, label, cla, ins, p1, p2, data, ne, mutations) -> list[Step]:
    """ISO command chaining (CLA bit 10), with abuse: cut short, interleaved, reset."""
    size = min(255, max(rng.choice((1, 16, 100, 200, 255)), -(-len(data) // MAX_CHAIN)))
    pieces = [data[i: i + size] for i in range(0, len(data), size)][:MAX_CHAIN] or [b""]
    steps: list[Step] = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        piece_cla = cla if last else cla | 0x10
        steps.append(_apdu(f"{label} chain {i + 1}/{len(pieces)}", piece_cla, ins, p1, p2, piece,
                           ne if last else None, "short"))
    abuse = rng.randrange(8)
    if abuse == 0 and len(steps) > 1:
        del steps[rng.randrange(len(steps) - 1) + 1:]
        mutations.append("chain cut short")
    elif abuse == 1 and len(steps) > 1:
        other = mutated_command(rng, ctx, mutations)
        steps[rng.randrange(1, len(steps)):1] = other
        mutations.append("chain interleaved with another command")
    elif abuse == 2:
        steps.insert(rng.randrange(len(steps) + 1), _apdu("stray GET RESPONSE", 0, 0xC0, 0, 0, b"", 256))
        mutations.append("stray GET RESPONSE in chain")
    elif abuse == 3 and len(steps) > 1:
        steps.insert(rng.randrange(1, len(steps)), RESET)
        mutations.append("card reset inside chain")
    elif abuse == 4 and len(steps) > 1:
        steps.insert(rng.randrange(1, len(steps)), _apdu("reselect", 0, 0xA4, 0x04, 0x00, APPLET_AID, 256))
        mutations.append("reselection inside chain")
    elif abuse == 5:
        steps.append(_apdu("chain bit on last", cla | 0x10, ins, p1, p2, b"\x00", None, "short"))
        mutations.append("chain never closed")
    elif abuse == 6 and len(steps) > 1:
        steps.insert(rng.randrange(1, len(steps)), _apdu("ISSUE inside chain", 0x80, 0xE2, 0, 0, b"", None))
        mutations.append("lifecycle command inside chain")
    else:
        mutations.append(f"chained in {size}-byte pieces")
    return steps


def generate_case(seed: int, index: int, ctx: CardContext) -> Case:
    """Case `index` of campaign `seed`: 1-3 commands, sometimes a stray GET RESPONSE."""
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:8], "big"))
    mutations: list[str] = []
    steps: list[Step] = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        steps += mutated_command(rng, ctx, mutations)
        if rng.random() < 0.1:
            steps.append(_apdu("GET RESPONSE", 0, 0xC0, 0, 0, b"", rng.choice((1, 256))))
            mutations.append("GET RESPONSE after")
    return Case(index, steps, mutations)
