"""Card profiles of the virtual card: the limits of a real card class, each value with its
source (tools/cardshield/sim/profiles/NAME.toml). `./cardshield sim --profile NAME` picks one;
the strict ones load the applet instrumented (journal, limits, tear points: docs/virtual-card.md)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cardshield.build.variants import DEFAULT, SIM, AppletVariant
from cardshield.errors import UserError

PROFILE_DIR = Path(__file__).with_name("profiles")
#: how an algorithm entry names its Java Card API constant (strict/CardAlgorithms.java resolves it)
API_CONSTANT = re.compile(r"(Signature|Cipher|MessageDigest|RandomData)\.ALG_[A-Z0-9_]+|KeyBuilder\.TYPE_[A-Z0-9_]+")
DEFAULT_PROFILE = "lenient"


class ProfileError(UserError):
    pass


@dataclass(frozen=True)
class CardTiming:
    """Public per-operation figures of the card class and its transport rate (bench modeling).
    The verify figures are those of the bank's signature 8E that SIGN TRANSACTION checks:
    RSASSA-PKCS1-v1_5 with SHA-256 (Signature.ALG_RSA_SHA_256_PKCS1) and ECDSA P-256 with
    SHA-256 (Signature.ALG_ECDSA_SHA_256, None on a card without it)."""

    sign_rsa2048_ms: float
    keygen_rsa2048_ms: float
    verify_rsa2048_ms: float
    apdu_overhead_ms: float
    transport_bit_per_s: int
    verify_ecdsa_p256_ms: float | None = None


@dataclass(frozen=True)
class ProfileAlgorithm:
    """One algorithm the card has, as its Java Card API constant ("Cipher.ALG_RSA_NOPAD",
    "KeyBuilder.TYPE_RSA_CRT_PRIVATE" with its key sizes), and the public source saying so."""

    api: str
    source: str
    bits: tuple[int, ...] = ()

    def property_entry(self) -> str:
        return f"{self.api}/{'+'.join(map(str, self.bits))}" if self.bits else self.api


@dataclass(frozen=True)
class CardProfile:
    name: str
    description: str
    strict: bool
    eeprom_bytes: int
    # transient RAM for CLEAR_ON_DESELECT and for CLEAR_ON_RESET arrays, each its own budget
    transient_deselect_bytes: int
    transient_reset_bytes: int
    commit_capacity: int
    commit_entry_overhead: int
    eeprom_page_bytes: int
    object_header_bytes: int
    apdu_buffer_bytes: int
    protocol: str
    extended_length: bool
    javacardx_apdu: bool
    algorithms: tuple[ProfileAlgorithm, ...]
    sources: dict[str, str] = field(default_factory=dict)
    timing: CardTiming | None = None

    @property
    def applet_variant(self) -> AppletVariant:
        """The applet build this card takes: without javacardx.apdu only the SIM build links."""
        return DEFAULT if self.javacardx_apdu else SIM

    def card_properties(self) -> list[str]:
        """The profile.* lines of card.properties the host reads (CardProfile.java)."""
        return [
            f"profile.name={self.name}",
            f"profile.strict={'true' if self.strict else 'false'}",
            f"profile.eeprom.bytes={self.eeprom_bytes}",
            f"profile.transient.deselect.bytes={self.transient_deselect_bytes}",
            f"profile.transient.reset.bytes={self.transient_reset_bytes}",
            f"profile.commit.capacity={self.commit_capacity}",
            f"profile.commit.entry.overhead={self.commit_entry_overhead}",
            f"profile.eeprom.page.bytes={self.eeprom_page_bytes}",
            f"profile.object.header.bytes={self.object_header_bytes}",
            f"profile.protocol={self.protocol}",
            f"profile.javacardx.apdu={'true' if self.javacardx_apdu else 'false'}",
            f"profile.apdu.buffer.bytes={self.apdu_buffer_bytes}",
            "profile.algorithms=" + ",".join(a.property_entry() for a in self.algorithms),
        ]

    def has(self, api: str, bits: int | None = None) -> bool:
        """Whether the card has this API constant (and key size): "Signature.ALG_ECDSA_SHA_256"."""
        return any(a.api == api and (bits is None or bits in a.bits) for a in self.algorithms)


def profile_argument(name: str) -> str:
    """argparse type of --profile: an unknown name is a usage error (exit 2) naming the choices."""
    import argparse

    try:
        load_profile(name)
    except ProfileError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name


def available_profiles() -> list[str]:
    return sorted(path.stem for path in PROFILE_DIR.glob("*.toml"))


def load_profile(name: str) -> CardProfile:
    path = PROFILE_DIR / f"{name}.toml"
    if not name or "/" in name or not path.is_file():
        raise ProfileError(f"unknown card profile {name!r}; choose one of: {', '.join(available_profiles())}")
    data = tomllib.loads(path.read_text())
    try:
        profile = CardProfile(
            name=data["name"], description=data["description"], strict=bool(data["strict"]),
            eeprom_bytes=int(data["eeprom_bytes"]),
            transient_deselect_bytes=int(data["transient_deselect_bytes"]),
            transient_reset_bytes=int(data["transient_reset_bytes"]),
            commit_capacity=int(data["commit_capacity"]), commit_entry_overhead=int(data["commit_entry_overhead"]),
            eeprom_page_bytes=int(data["eeprom_page_bytes"]), object_header_bytes=int(data["object_header_bytes"]),
            apdu_buffer_bytes=int(data["apdu_buffer_bytes"]), protocol=data["protocol"],
            extended_length=bool(data["extended_length"]), javacardx_apdu=bool(data["javacardx_apdu"]),
            algorithms=tuple(ProfileAlgorithm(api=a["api"], source=a["source"], bits=tuple(a.get("bits", ())))
                             for a in data["algorithms"]),
            sources=dict(data.get("sources", {})),
            timing=CardTiming(**data["timing"]) if "timing" in data else None,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ProfileError(f"{path}: missing or malformed value ({error}); compare with lenient.toml") from None
    if profile.name != name:
        raise ProfileError(f"{path} names itself {profile.name!r}; the file name and its name must agree")
    for algorithm in profile.algorithms:
        if not API_CONSTANT.fullmatch(algorithm.api):
            raise ProfileError(f"{path}: algorithm {algorithm.api!r} is not a Java Card API constant; write it as "
                               "Signature.ALG_..., Cipher.ALG_..., MessageDigest.ALG_..., RandomData.ALG_... "
                               "or KeyBuilder.TYPE_... (the host resolves the name against the API)")
        if algorithm.api.startswith("KeyBuilder.") != bool(algorithm.bits):
            raise ProfileError(f"{path}: algorithm {algorithm.api}: key types (KeyBuilder.TYPE_*) take bits, "
                               "engines (Signature., Cipher., MessageDigest., RandomData.) do not")
    if (profile.timing is not None and profile.timing.verify_ecdsa_p256_ms is None
            and profile.has("Signature.ALG_ECDSA_SHA_256")):
        raise ProfileError(f"{path}: the card has Signature.ALG_ECDSA_SHA_256, so its [timing] needs "
                           "verify_ecdsa_p256_ms (an EC bank key's 8E verification) with its source")
    if profile.protocol not in ("T=0", "T=1"):
        raise ProfileError(f"{path}: protocol must be T=0 or T=1, not {profile.protocol!r}")
    return profile
