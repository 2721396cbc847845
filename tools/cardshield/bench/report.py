"""docs/benchmarks.md, card section: tables and plots from a CardBench run.

Only the text between the card-bench markers is replaced, so the server section that
`./cardshield bench server` writes between its own markers is kept as it is.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardshield.protocol.bank_key import BankKeyType

from .card import (ENROLLMENT_APDUS_ALLOWED, ENROLLMENT_APDUS_BEFORE, ENROLLMENT_FLOW, PAYMENT_APDUS_BEFORE,
                   PAYMENT_BYTES_GOAL, PAYMENT_FLOW, Exchange, Operation, bank_signed_transaction, payment_flow)
from .modeled import render_modeled

# What each INS of the payment batch is, for the byte breakdown.
INS_NAMES = {0xA4: "SELECT (applet FCI, then certificate EF FCP with the SHA-256 reference)",
             0x20: "VERIFY (the terminal's PIN status and PIN, local)",
             0x54: "SIGN TRANSACTION (fields 81-85 + bank signature 8E; counter 86 + signature 9E back)",
             0xC0: "GET RESPONSE"}

SECTION_START = "<!-- card-bench:start -->"
SECTION_END = "<!-- card-bench:end -->"


def rsa_sign_floor_ms(rounds: int = 7, per_round: int = 20) -> tuple[float, float, float]:
    """One RSA-2048 PKCS#1 v1.5 signature with OpenSSL (pyca/cryptography) in this process:
    median, min, max in ms, measured in the same run as the card figures."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rounds_ms = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(per_round):
            key.sign(b"floor", padding.PKCS1v15(), hashes.SHA256())
        rounds_ms.append((time.perf_counter() - started) * 1000 / per_round)
    return statistics.median(rounds_ms), min(rounds_ms), max(rounds_ms)


def _ratio(value: int, minimum: int) -> str:
    return f"{value / minimum:.2f}" if minimum else "-"


def render(operations: list[Operation], floor: tuple[float, float, float], buffer_size: int | None,
           plots: list[str]) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    sign = next((op for op in operations if op.name.startswith("SIGN TRANSACTION (")), None)
    lines = [
        "## Card: APDUs, bytes on the wire and time per operation",
        "",
        f"`./cardshield bench card`, {now}, {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}, virtual card (jcardsim 3.0.6 behind pcscd + vpcd, over PC/SC). "
        f"Load average at the end: {load} (the machine is shared: compare ratios taken in this run).",
        "",
        "Each operation is run once through a reader that never uses extended length (long commands "
        "go as ISO command chains of 255-byte pieces, long responses come back with 61xx and GET "
        "RESPONSE) and once through an extended-length reader. The **minimum** is what the protocol "
        "allows: each logical command once, in its shortest ISO/IEC 7816-4 encoding, with the whole "
        "response in one answer (header, length fields, data, response data, SW1 SW2). Time: median "
        "(min-max) of repeated runs with the extended reader, through PC/SC.",
        "",
        "| operation | APDUs min / short / ext | bytes min / short / ext | short ÷ min bytes | time median (min-max) |",
        "|---|---:|---:|---:|---:|",
    ]
    for op in operations:
        lines.append(
            f"| {op.name} | {op.minimum.apdus} / {op.short.apdus} / {op.extended.apdus} "
            f"| {op.minimum.bytes:,} / {op.short.bytes:,} / {op.extended.bytes:,} "
            f"| {_ratio(op.short.bytes, op.minimum.bytes)} "
            f"| {op.median:.1f} ms ({min(op.times_ms):.1f}-{max(op.times_ms):.1f}) |")
    lines += [
        "",
        f"Crypto floor measured in the same run: one RSA-2048 signature with OpenSSL on this machine "
        f"takes {floor[0]:.2f} ms (min {floor[1]:.2f}, max {floor[2]:.2f})."
        + (f" A SIGN TRANSACTION on the virtual card (PIN check included) takes {sign.median / floor[0]:.1f}× "
           f"that: the virtual card computes RSA in Java (BouncyCastle inside jcardsim) and every APDU "
           f"crosses pcscd and vpcd; a real card's RSA-2048 signature takes 100-500 ms, which would "
           f"dominate the payment flow." if sign else ""),
        "",
        "What the counts show: the extended-length reader reaches the protocol minimum in APDUs. "
        "Commands whose answer can exceed 256 bytes (a 7F49 public key is 270 bytes, a transaction "
        "signature 266) ask for everything with one extended Le (FFFF, ISO/IEC 7816-4 5.1) and get "
        "the whole answer at once; where that answer turns out to be 256 bytes (an RSA-2048 signature "
        "or cryptogram: PSO COMPUTE DIGITAL SIGNATURE, PROVE POSSESSION, PSO ENCIPHER) the extended "
        "length fields cost 3 bytes over the short ones of the minimum. A short-APDU reader pays one "
        "chained APDU per 255 bytes of command data (DECIPHER's 257 bytes, server-signed transactions, "
        "certificates) and one GET RESPONSE per 256 bytes of answer beyond the first 256; the byte "
        "overhead stays within a few percent because chaining and GET RESPONSE add only headers, "
        "length bytes and status words.",
        "",
        "Applet size and memory (from docs/applet.md, produced with Oracle's converter 3.1.0, "
        "`-target 3.0.4`): CAP load file 15,603 bytes (Method component 11,772); EEPROM about 4.0 KB "
        "per RSA-2048 slot with a 3 KB certificate, 11.3 KB for the two-slot card beyond the load "
        "file, and about 4.1 KB for the attestation key and its certificate; transient RAM 851 bytes on an RSA-2048-only card"
        + (f"; the virtual card reports a {buffer_size:,}-byte command/response buffer (FCI tag 89)."
           if buffer_size else "."),
        "",
    ]
    lines += apdu_budgets(operations)
    lines += payment_breakdown(operations)
    modeled = render_modeled(operations, {op.name: op.median for op in operations})
    if modeled:
        lines += [*modeled, ""]
    for plot in plots:
        lines += [f"![{Path(plot).stem}]({plot})", ""]
    return "\n".join(lines)


def apdu_budgets(operations: list[Operation]) -> list[str]:
    """Issue 12's APDU budgets for card attestation, extended-length reader."""
    named = {o.name: o for o in operations}
    enrollment, payment = named.get(ENROLLMENT_FLOW), named.get(PAYMENT_FLOW)
    if enrollment is None or payment is None:
        return []
    allowed = ENROLLMENT_APDUS_BEFORE + ENROLLMENT_APDUS_ALLOWED
    met = enrollment.extended.apdus <= allowed and payment.extended.apdus <= PAYMENT_APDUS_BEFORE
    return [
        "### APDU budgets of card attestation (extended-length reader)",
        "",
        f"Budgets {'met' if met else 'NOT met'}. Enrollment: before attestation {ENROLLMENT_APDUS_BEFORE} "
        f"APDUs, now **{enrollment.extended.apdus}** (at most {allowed} allowed): the server's three batches "
        "on a card with an attestation key, SELECT applet, VERIFY, GENERATE | READ PUBLIC KEY, VERIFY, "
        "PROVE POSSESSION, ATTEST over the same 32-byte challenge | VERIFY, PUT DATA, SELECT EF, READ "
        "BINARY; of the new ones, ATTEST is the attestation's and SELECT applet opens the server's first "
        "batch (the count before left it out). "
        f"Payment: before {PAYMENT_APDUS_BEFORE} APDUs, now **{payment.extended.apdus}** "
        f"({'not grown' if payment.extended.apdus <= PAYMENT_APDUS_BEFORE else 'grown'}). "
        "The terminal's PIN is counted as one VERIFY per command that needs it "
        "(tests/robustness/test_bench_report.py checks both counts on an issued card).",
        "",
    ]


def payment_breakdown(operations: list[Operation]) -> list[str]:
    """Where the bytes of a payment go on the card side, per bank key type, against the goal."""
    named = {o.name: o for o in operations}
    payments = [(key, named[payment_flow(key)]) for key in (BankKeyType.EC_P256, BankKeyType.RSA_2048)
                if payment_flow(key) in named]
    if not payments:
        return []
    lines = [
        "### A payment on the card side: bytes against the goal, per bank key",
        "",
        "One batch (SELECT applet, SELECT certificate EF whose FCP carries the certificate's SHA-256, "
        "SIGN TRANSACTION with the bank's signature 8E) plus the terminal's PIN; the card's payment "
        f"signature is RSA-2048 (the patent's card key). Goal: at most {PAYMENT_BYTES_GOAL} bytes.",
        "",
        "| bank key (8E) | APDUs min / short / ext | bytes min / short / ext | goal |",
        "|---|---:|---:|---|",
    ]
    for key, op in payments:
        verdict = "met" if op.minimum.bytes <= PAYMENT_BYTES_GOAL and min(op.short.bytes, op.extended.bytes) \
            <= PAYMENT_BYTES_GOAL else "missed"
        lines.append(f"| {key.label}{' (cards without EC: SIM)' if key is BankKeyType.RSA_2048 else ''} "
                     f"| {op.minimum.apdus} / {op.short.apdus} / {op.extended.apdus} "
                     f"| {op.minimum.bytes:,} / {op.short.bytes:,} / {op.extended.bytes:,} | {verdict} |")
    key, op = payments[0]
    by_ins: dict[int, list[Exchange]] = {}
    for exchange in op.exchanges:
        by_ins.setdefault(exchange.ins, []).append(exchange)
    lines += [
        "",
        f"| commands, {key.label} bank key (short-APDU reader) | APDUs | bytes sent | bytes received |",
        "|---|---:|---:|---:|",
    ]
    for ins, exchanges in by_ins.items():
        lines.append(f"| {INS_NAMES.get(ins, f'INS {ins:02X}')} | {len(exchanges)} "
                     f"| {sum(e.sent for e in exchanges):,} | {sum(e.received for e in exchanges):,} |")
    plain = named.get("SIGN TRANSACTION (+VERIFY)")
    signed = {k: named.get(bank_signed_transaction(k)) for k in BankKeyType}
    without_8e = (op.minimum.bytes - (signed[key].minimum.bytes - plain.minimum.bytes)
                  if plain and signed[key] else None)
    lines += [
        "",
        "Where they go: the card's RSA-2048 payment signature is 256 bytes back (9E); the bank's "
        "signature over the request (8E), which the bank-signed default needs so that the card itself "
        "refuses a changed amount or payee, is an ECDSA P-256 signature, r || s in 64 bytes, with the EC "
        "bank key and 256 bytes with the RSA-2048 one, which also pushes SIGN TRANSACTION past 255 bytes "
        "of data (a command chain on a short-APDU reader). The transaction fields (amount, currency, payee, "
        "order reference, 32-byte nonce) are about 90; the applet's FCI about 80 (SELECT by AID answers "
        "it: the runtime takes only P2=00, docs/apdu.md), the certificate reference 43 instead of the "
        "whole certificate (1-3 KB). "
        + (f"Without 8E (a card personalized without the bank-signed policy) the same payment is "
           f"{without_8e:,} bytes at the minimum. " if without_8e is not None else "")
        + "A card without EC (the sim profile's algorithm list) keeps the RSA-2048 bank key. "
        "The 266-byte answer (counter and RSA-2048 signature) exceeds a short Le: a short-APDU "
        f"reader adds one GET RESPONSE ({op.short.bytes:,} bytes with the {key.label} bank key), "
        "the extended-length one reaches the minimum; a card with EC (JCOP-4-like) has extended "
        "length. Bytes are not time: the card's ECDSA verification of 8E costs more than an "
        "RSA-2048 public-key verification (here "
        + (f"{signed[BankKeyType.EC_P256].median:.1f} against {signed[BankKeyType.RSA_2048].median:.1f} ms "
           "for the bank-signed SIGN TRANSACTION on jcardsim" if all(signed.values()) else "not measured")
        + "); on a real card the modeled time below counts it (JCAlgTest-based figures of each profile).",
        "",
    ]
    return lines


def plot(operations: list[Operation], directory: Path) -> list[str]:
    """Two PNGs: APDUs per operation for both readers vs the minimum; time per operation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    names = [op.name for op in operations]
    y = range(len(names))
    figure, axis = plt.subplots(figsize=(9, 0.38 * len(names) + 1.2))
    height = 0.27
    axis.barh([i - height for i in y], [op.minimum.apdus for op in operations], height, label="protocol minimum")
    axis.barh(list(y), [op.extended.apdus for op in operations], height, label="extended-length reader")
    axis.barh([i + height for i in y], [op.short.apdus for op in operations], height, label="short-APDU reader")
    axis.set_yticks(list(y), names, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("APDUs")
    axis.legend(fontsize=8)
    axis.set_title("APDUs per operation")
    figure.tight_layout()
    apdus = directory / "card-apdus.png"
    figure.savefig(apdus, dpi=110)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(9, 0.38 * len(names) + 1.2))
    medians = [op.median for op in operations]
    low = [op.median - min(op.times_ms) for op in operations]
    high = [max(op.times_ms) - op.median for op in operations]
    axis.barh(list(y), medians, xerr=[low, high], capsize=3)
    axis.set_yticks(list(y), names, fontsize=8)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlabel("ms on the virtual card (median, min-max), log scale")
    axis.set_title("Time per operation")
    figure.tight_layout()
    times = directory / "card-times.png"
    figure.savefig(times, dpi=110)
    plt.close(figure)
    return [f"bench/{apdus.name}", f"bench/{times.name}"]


def write_section(path: Path, section: str) -> None:
    """Replace the card section of `path` (create the file or the section if missing)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{SECTION_START}\n{section}\n{SECTION_END}"
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        text = head + block + rest.split(SECTION_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
