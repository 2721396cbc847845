"""The status words each command may return, taken from docs/apdu.md (the normative text)
and docs/personalization.md (the secure channel's own checks): one source of truth, so a
status word added to the doc is accepted here and nowhere else.

A command's list is every status word written in its `### NAME — ...` section; 61xx is
allowed where the section says `9000 / 61xx` (a response longer than Ne). On top of that,
the general rules of docs/apdu.md answer before any handler, for any command:
6882 (secure-messaging bits in CLA), 6E00 (class), 6D00 (INS), 6883 (a chain was open for
another command), 6884 (chaining on a command without data), 6700 (command data above the
applet buffer, for commands that take data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cardshield import paths
from cardshield.protocol.constants import class_without_channel

_SW_TOKEN = re.compile(r"(?<![0-9A-Fa-f])(9000|61xx|63Cx|6[0-9A-F]{3})(?![0-9A-Fa-f])")
_SECTION = re.compile(r"^### (.+?) — `([^`]*)`", re.M)

#: answers of the applet's dispatcher, before the command's handler (docs/apdu.md, General rules)
DISPATCHER_SWS = frozenset({0x6882, 0x6E00, 0x6D00, 0x6883, 0x6884})
#: SELECT by AID is answered by the card runtime when the AID is not this applet's
SELECT_BY_AID = "SELECT applet"
#: PSO with a P1-P2 pair that names no operation
PSO_OTHER = "PSO (unknown P1-P2)"
#: CLA 84: the personalization secure channel (docs/personalization.md)
SECURED_PERSONALIZATION = "PERSONALIZE / ISSUE (secure channel)"


@dataclass(frozen=True)
class CommandSpec:
    name: str
    status_words: frozenset[int]
    response_chunks: bool  # 61xx allowed
    warning_tries: bool  # 63Cx allowed
    takes_data: bool

    def allows(self, sw: int) -> bool:
        if sw in self.status_words or sw in DISPATCHER_SWS:
            return True
        if self.response_chunks and sw >> 8 == 0x61:
            return True
        if self.warning_tries and sw & 0xFFF0 == 0x63C0:
            return True
        return self.takes_data and sw == 0x6700


def _tokens(text: str) -> tuple[set[int], bool, bool]:
    sws, chunks, tries = set(), False, False
    for token in _SW_TOKEN.findall(text):
        if token == "61xx":
            chunks = True
        elif token == "63Cx":
            tries = True
        else:
            sws.add(int(token, 16))
    return sws, chunks, tries


def parse_specs(apdu_md: str, personalization_md: str) -> dict[str, CommandSpec]:
    specs: dict[str, CommandSpec] = {}
    matches = list(_SECTION.finditer(apdu_md))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else apdu_md.find("\n## ", match.end())
        body = apdu_md[match.end(): end if end > 0 else len(apdu_md)]
        sws, chunks, tries = _tokens(body)
        name = match.group(1).strip()
        header = match.group(2)
        specs[name] = CommandSpec(name, frozenset(sws), chunks, tries, takes_data="Lc" in header)
    # SELECT by AID: the "## FCI (SELECT by AID response)" section up to its table
    fci = apdu_md[apdu_md.index("## FCI"):]
    sws, chunks, _ = _tokens(fci[: fci.index("| tag")])
    specs[SELECT_BY_AID] = CommandSpec(SELECT_BY_AID, frozenset(sws), chunks, False, True)
    specs[PSO_OTHER] = CommandSpec(PSO_OTHER, frozenset({0x6A86}), False, False, True)
    # the secure channel's checks (table rows of docs/personalization.md) plus the handlers'
    table = "\n".join(line for line in personalization_md.splitlines() if line.startswith("|"))
    channel, _, _ = _tokens(table)
    handlers = specs["PERSONALIZE"].status_words | specs["ISSUE"].status_words
    specs[SECURED_PERSONALIZATION] = CommandSpec(SECURED_PERSONALIZATION, frozenset(channel | handlers),
                                                 False, False, True)
    return specs


@lru_cache(maxsize=1)
def load_specs(docs: Path = paths.ROOT / "docs") -> dict[str, CommandSpec]:
    return parse_specs((docs / "apdu.md").read_text(), (docs / "personalization.md").read_text())


# INS -> doc section; PSO and INS 47 are split by P1-P2.
_BY_INS = {
    0xB0: "READ BINARY", 0xDA: "PUT DATA certificate", 0x20: "VERIFY",
    0x24: "CHANGE REFERENCE DATA", 0x2C: "RESET RETRY COUNTER", 0x22: "MANAGE SECURITY ENVIRONMENT SET",
    0xC0: "GET RESPONSE", 0x54: "SIGN TRANSACTION", 0x56: "PROVE POSSESSION", 0x58: "ATTEST", 0xE0: "PERSONALIZE",
    0xE2: "ISSUE",
}
_PSO = {
    (0x9E, 0x9A): "PSO: COMPUTE DIGITAL SIGNATURE", (0x80, 0x86): "PSO: DECIPHER",
    (0x86, 0x80): "PSO: ENCIPHER", (0x00, 0xA8): "PSO: VERIFY DIGITAL SIGNATURE",
}


def command_name(cla: int, ins: int, p1: int, p2: int) -> str | None:
    """The docs/apdu.md section that governs this header; None for an INS the applet does
    not have (only the dispatcher's answers are allowed then)."""
    if class_without_channel(cla) & 0xEF == 0x84 and ins in (0xE0, 0xE2):
        return SECURED_PERSONALIZATION
    if ins == 0xA4:
        return SELECT_BY_AID if p1 == 0x04 else "SELECT certificate EF"
    if ins == 0x47:
        return "READ PUBLIC KEY" if p1 == 0x81 else "GENERATE ASYMMETRIC KEY PAIR"
    if ins == 0x2A:
        return _PSO.get((p1, p2), PSO_OTHER)
    return _BY_INS.get(ins)


def allowed(cla: int, ins: int, p1: int, p2: int, sw: int) -> bool:
    name = command_name(cla, ins, p1, p2)
    if name is None:
        return sw in DISPATCHER_SWS
    return load_specs()[name].allows(sw)
