"""Static checks of the applet source that the virtual card cannot show: where memory is
allocated (cards have been bricked by allocation per key generation: jcardsim reports a
constant free memory, so this is the check that fails if process() starts allocating),
and the Java Card subset (no int/long/String/float types in the applet)."""

import re
from pathlib import Path

import pytest

APPLET_DIR = Path(__file__).resolve().parents[2] / "applet"
#: the shared sources and each build variant's own (applet/variants/NAME)
SOURCES = sorted([*(APPLET_DIR / "src" / "org" / "cardshield" / "applet").glob("*.java"),
                  *(APPLET_DIR / "variants").rglob("*.java")])
ALLOCATION = re.compile(r"\bnew\s+[A-Z]\w*\s*[(\[]|makeTransient\w*\(|\bbuildKey\(|\.getInstance\(")
METHOD = re.compile(r"^    (?:(?:public|private|protected|static|final|synchronized)\s+)*"
                    r"(?:[\w.<>\[\]]+\s+)?(\w+)\s*\([^;=]*$")
#: methods that run once in an instance's life: install-time construction, the install-time
#: algorithm probe, the one allocation of a slot's keys during personalization and that of
#: the server's EC key at its first load (the caller builds it only while the field is null)
ONE_TIME = {"canBuild", "buildKeyPair", "buildEcPublicKey", "install"}


def methods_allocating(path: Path) -> set[str]:
    current = "<class body>"
    found = set()
    for line in path.read_text().splitlines():
        header = METHOD.match(line)
        if header:
            current = header.group(1)
        code = line.split("//")[0]
        if ALLOCATION.search(code) and not code.strip().startswith(("*", "/*")):
            found.add(current)
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_allocation_only_in_constructors_and_one_time_paths(path):
    offending = {m for m in methods_allocating(path) if m not in ONE_TIME and m != path.stem
                 and m != "<class body>"}
    assert not offending, f"{path.name}: allocation in {sorted(offending)} (runs per command)"


def test_the_checker_sees_allocations():
    assert methods_allocating(next(p for p in SOURCES if p.name == "Crypto.java")) >= {"Crypto", "buildKeyPair"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_types_outside_the_java_card_subset(path):
    code = re.sub(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"])*\"", "", path.read_text(), flags=re.S)
    for word in ("int", "long", "String", "float", "double", "char"):
        assert not re.search(rf"\b{word}\b(?!\s*\.)", code), f"{path.name} uses {word}"


PRIVATE_KEY_INIT = re.compile(r"(\w+)\.init\([^;]*getPrivate\(\)[^;]*(MODE_ENCRYPT|MODE_SIGN)")


def test_rsa_signatures_build_their_own_padding():
    """ALG_RSA_PKCS1 is defined for encryption blocks (type 02): that a private key makes it
    produce the signature block (type 01) is not guaranteed by the Java Card API, and a
    Signature engine's output cannot be checked for faults. So every private-key RSA
    operation that signs is raw RSA in RsaSigner, which builds the block and checks the
    result; engines initialised with a private key to sign elsewhere are ECDSA only."""
    offending = []
    for path in SOURCES:
        for line in path.read_text().splitlines():
            match = PRIVATE_KEY_INIT.search(line)
            if not match:
                continue
            engine = match.group(1)
            if path.name == "RsaSigner.java" and engine == "noPad":
                continue
            if match.group(2) == "MODE_SIGN" and "ecdsa" in engine.lower():
                continue
            offending.append(f"{path.name}: {line.strip()}")
    assert not offending, "private-key signing outside RsaSigner:\n" + "\n".join(offending)
