"""PC/SC transport on pyscard's scard layer: reader choice, connect, T=0/T=1,
GET RESPONSE (61xx), wrong Le (6Cxx), command chaining, extended length, resets, trace.

The same code path serves a card in a USB reader and the virtual card (vpcd).
pcsc-lite reads PCSCLITE_CSOCK_NAME once per process, at the first context: set it
(the sim harness does) before creating the first Transport.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable

from smartcard import scard

from cardshield.card.apdu import (
    INS_GET_RESPONSE,
    SHORT_MAX_NE,
    APDUFormatError,
    CommandAPDU,
    ResponseAPDU,
)
from cardshield.card.errors import (
    CardError,
    CardRemovedError,
    CardResetError,
    NoCardError,
    NoReaderError,
    PcscUnavailableError,
    TransportError,
)

TRACE_ENV = "CARDSHIELD_TRACE"
SCARD_STATUS_PRESENT = 0x0004  # SCardStatus dwState bit (pcsclite.h SCARD_PRESENT; not exported by pyscard)
# A response longer than this over GET RESPONSE is a card bug, not data.
MAX_RESPONSE = 65536 + 256

PROTOCOLS = {
    "T0": scard.SCARD_PROTOCOL_T0,
    "T1": scard.SCARD_PROTOCOL_T1,
    "auto": scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
}
DISPOSITIONS = {
    "leave": scard.SCARD_LEAVE_CARD,
    "reset": scard.SCARD_RESET_CARD,  # warm reset: transient memory cleared, applet deselected
    "unpower": scard.SCARD_UNPOWER_CARD,  # power cycle: like pulling the card
}


def trace_enabled_by_env() -> bool:
    return os.environ.get(TRACE_ENV, "").lower() in ("1", "true", "yes", "on")


def _check(hresult: int, what: str, reader: str = "") -> None:
    if hresult == scard.SCARD_S_SUCCESS:
        return
    message = f"{what}: {scard.SCardGetErrorMessage(hresult).strip()} (0x{hresult & 0xFFFFFFFF:08X})"
    if hresult in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED):
        socket = os.environ.get("PCSCLITE_CSOCK_NAME", "/run/pcscd/pcscd.comm")
        raise PcscUnavailableError(
            f"{message}; no pcscd answers on {socket}. Start the virtual card with "
            "`./cardshield sim` (and export what it prints) or start pcscd for a real reader"
        )
    if hresult in (scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_UNPOWERED_CARD, scard.SCARD_W_UNRESPONSIVE_CARD):
        raise NoCardError(reader, message)
    if hresult == scard.SCARD_W_REMOVED_CARD:
        raise CardRemovedError(f"{reader}: {message}")
    if hresult == scard.SCARD_W_RESET_CARD:
        raise CardResetError(f"{reader}: {message}")
    if hresult in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE):
        raise NoReaderError(message, [])
    raise TransportError(message)


def list_readers() -> list[str]:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    _check(hresult, "SCardEstablishContext")
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        _check(hresult, "SCardListReaders")
        return list(readers)
    finally:
        scard.SCardReleaseContext(context)


def resolve_reader(selector: str | int | None, readers: list[str]) -> str:
    """An exact reader name, or an index into `readers` (int or decimal string). Never a
    substring: "Virtual PCD" would match two slots and might pick the wrong card."""
    if selector is None or selector == "":
        if len(readers) == 1:
            return readers[0]
        raise NoReaderError(
            "no reader named and " + ("none present" if not readers else f"{len(readers)} present")
            + "; pass --reader with an exact name or an index",
            readers,
        )
    if isinstance(selector, int) or selector.isdigit():
        index = int(selector)
        if 0 <= index < len(readers):
            return readers[index]
        raise NoReaderError(f"reader index {index} out of range", readers)
    if selector in readers:
        return selector
    raise NoReaderError(f"no reader named exactly {selector!r}", readers)


def atr_supports_extended_length(atr: bytes) -> bool:
    """Card capabilities (ISO 7816-4 12.1.1.9, compact-TLV tag 7, historical bytes with
    category indicator 80): third software function byte, b7 = extended Lc/Le fields."""
    historical = _historical_bytes(atr)
    if not historical or historical[0] != 0x80:
        return False
    i = 1
    while i < len(historical):
        tag, length = historical[i] >> 4, historical[i] & 0x0F
        value = historical[i + 1 : i + 1 + length]
        if tag == 0x7 and length >= 3:
            return bool(value[2] & 0x40)
        i += 1 + length
    return False


def _historical_bytes(atr: bytes) -> bytes:
    """ISO 7816-3 8.2: skip TS, T0 and the interface bytes."""
    if len(atr) < 2:
        return b""
    count = atr[1] & 0x0F
    indicator, i = atr[1], 2
    while True:
        present = bin(indicator >> 4).count("1")
        has_td = indicator & 0x80
        i += present
        if not has_td or i - 1 >= len(atr):
            break
        indicator = atr[i - 1]
    return bytes(atr[i : i + count])


class Transport:
    """A connection to one card in one named reader.

    `extended_length`: True uses extended APDUs when a command needs them, False never
    (long data goes as a command chain, long responses via 61xx), None decides from the
    card's ATR (card capabilities) and the protocol (T=0 has no extended length).
    """

    def __init__(
        self,
        reader: str,
        *,
        protocol: str = "auto",
        exclusive: bool = False,
        extended_length: bool | None = None,
        trace: bool | None = None,
        trace_sink: Callable[[str], None] | None = None,
    ):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
        self.reader = reader
        self._protocols = PROTOCOLS[protocol]
        self._share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
        self._extended_setting = extended_length
        self.trace = trace_enabled_by_env() if trace is None else trace
        self._sink = trace_sink or (lambda line: print(line, file=sys.stderr, flush=True))
        self._context = None
        self._card = None
        self.protocol = 0
        self.atr = b""
        self.reader_max_apdu: int | None = None
        self.in_transaction = False

    # -- connection ---------------------------------------------------------------------
    @classmethod
    def open(cls, selector: str | int | None = None, **options) -> Transport:
        """Resolve `selector` (exact name or index) among the present readers and connect."""
        transport = cls(resolve_reader(selector, list_readers()), **options)
        transport.connect()
        return transport

    def connect(self) -> None:
        if self._context is None:
            hresult, self._context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            _check(hresult, "SCardEstablishContext")
            hresult, readers = scard.SCardListReaders(self._context, [])
            readers = list(readers) if hresult == scard.SCARD_S_SUCCESS else []
            if self.reader not in readers:
                self.close()
                raise NoReaderError(f"no reader named exactly {self.reader!r}", readers)
        hresult, self._card, self.protocol = scard.SCardConnect(
            self._context, self.reader, self._share, self._protocols
        )
        _check(hresult, f"connect to {self.reader!r}", self.reader)
        self._read_status()

    def _read_status(self) -> None:
        hresult, _reader, _state, protocol, atr = scard.SCardStatus(self._card)
        _check(hresult, "SCardStatus", self.reader)
        self.protocol, self.atr = protocol, bytes(atr)
        self.reader_max_apdu = self._reader_max_apdu()
        limit = f", reader takes APDUs up to {self.reader_max_apdu} bytes" if self.reader_max_apdu else ""
        self._log(f"# {self.reader}: ATR {self.atr.hex().upper()} T={self.protocol_name[-1]}{limit}")

    def _reader_max_apdu(self) -> int | None:
        """The reader's largest command APDU (pcsc-lite SCARD_ATTR_MAXINPUT, from the CCID
        descriptor's dwMaxCCIDMessageLength); None when the driver does not say (vpcd)."""
        hresult, value = scard.SCardGetAttrib(self._card, scard.SCARD_ATTR_MAXINPUT)
        if hresult != scard.SCARD_S_SUCCESS or len(value) < 4:
            return None
        return int.from_bytes(bytes(value[:4]), "little") or None

    @property
    def protocol_name(self) -> str:
        return "T1" if self.protocol == scard.SCARD_PROTOCOL_T1 else "T0"

    @property
    def connected(self) -> bool:
        return self._card is not None

    def reconnect(self, disposition: str = "reset") -> None:
        """SCardReconnect: `reset` (warm reset) or `unpower` (cold reset, like a tear:
        transient memory and selection are lost, persistent state stays) or `leave`."""
        if self._card is None:
            self.connect()
            return
        hresult, self.protocol = scard.SCardReconnect(
            self._card, self._share, self._protocols, DISPOSITIONS[disposition]
        )
        _check(hresult, f"reconnect ({disposition})", self.reader)
        self._read_status()

    # -- exclusive access ---------------------------------------------------------------
    def begin_transaction(self) -> None:
        """SCardBeginTransaction: until end_transaction (or disconnect), no other PC/SC
        client's command reaches the card; theirs wait or fail with a sharing violation.
        A multi-command session (GlobalPlatform secure channel, LOAD) needs this: another
        client's SELECT in between would end the session on the card."""
        if self._card is None:
            raise TransportError(f"{self.reader}: not connected")
        hresult = scard.SCardBeginTransaction(self._card)
        _check(hresult, "SCardBeginTransaction", self.reader)
        self.in_transaction = True

    def end_transaction(self, disposition: str = "leave") -> None:
        if self._card is not None and self.in_transaction:
            scard.SCardEndTransaction(self._card, DISPOSITIONS[disposition])
        self.in_transaction = False

    def disconnect(self, disposition: str = "leave") -> None:
        self.in_transaction = False
        if self._card is not None:
            scard.SCardDisconnect(self._card, DISPOSITIONS[disposition])
            self._card = None

    def close(self, disposition: str = "leave") -> None:
        self.disconnect(disposition)
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

    def __enter__(self) -> Transport:
        if self._card is None:
            self.connect()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- exchanges ----------------------------------------------------------------------
    def use_extended(self, command: CommandAPDU) -> bool:
        """Whether `command` goes as one extended APDU (else chaining / GET RESPONSE)."""
        if command.extended is False or (command.fits_short and not command.extended):
            return False
        if self.protocol_name == "T0":
            if command.extended:
                raise APDUFormatError("T=0 carries no extended APDU (it would need ENVELOPE)")
            return False
        if command.extended or self._extended_setting:
            return True
        if self._extended_setting is None:
            # Many CCID readers carry short APDUs only (e.g. 261-byte messages): chain instead.
            fits_reader = self.reader_max_apdu is None or len(command.encode()) <= self.reader_max_apdu
            return fits_reader and atr_supports_extended_length(self.atr)
        return False

    def bounded_by_reader(self, command: CommandAPDU) -> CommandAPDU:
        """`command` asking for no more than the reader carries back: a reader that states
        its message size (CCID dwMaxCCIDMessageLength, which bounds responses as well as
        commands) gets Ne at most that size less SW1 SW2, and the card announces the rest
        with 61xx (ISO 7816-4 5.3.4). A forced encoding (command.extended set) is kept."""
        if self.reader_max_apdu is None or command.extended is not None or command.ne is None:
            return command
        room = max(self.reader_max_apdu - 2, SHORT_MAX_NE)
        return command.with_ne(room) if command.ne > room else command

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        """Send one logical command and return its complete response (any SW). Through an
        extended-length reader an Ne above 256 goes as one extended Le and the answer comes
        whole (ISO 7816-4 5.1); otherwise short APDUs ask for 256 and GET RESPONSE fetches
        the rest."""
        command = self.bounded_by_reader(command)
        if not self.use_extended(command) and not command.fits_short:
            pieces = command.with_short_le().chain()
            for piece in pieces[:-1]:
                response = self.exchange(piece)
                if response.sw != 0x9000:  # a chain ends at the first error (7816-4 5.1.1.1)
                    return response
            command = pieces[-1]
        response = self.exchange(command)
        if response.sw1 == 0x6C:
            # Wrong Le: re-send the same command with Le = SW2 (ISO 7816-3 12.2.1 / 7816-4 5.3.4).
            response = self.exchange(command.with_ne(response.sw2 or 256))
        data = bytearray(response.data)
        while response.sw1 == 0x61:
            if len(data) > MAX_RESPONSE:
                raise TransportError(f"card keeps answering 61xx after {len(data)} bytes")
            get_response = CommandAPDU(
                command.cla & 0x03, INS_GET_RESPONSE, 0, 0, ne=response.sw2 or 256, sensitive=command.is_secret
            )
            response = self.exchange(get_response)
            data += response.data
        return ResponseAPDU(bytes(data), response.sw)

    def send(self, command: CommandAPDU, *, name: str = "", expect: int = 0x9000) -> bytes:
        """transmit() and return the data, or raise CardError if the SW is not `expect`."""
        response = self.transmit(command)
        if response.sw != expect:
            raise CardError(response.sw, name or f"{command.cla:02X} {command.ins:02X}", expect)
        return response.data

    def exchange(self, command: CommandAPDU) -> ResponseAPDU:
        """Exactly one SCardTransmit, traced; no 61xx/6Cxx/chaining handling."""
        if self._card is None:
            raise TransportError(f"{self.reader}: not connected")
        raw = command.encode() if self.use_extended(command) or command.fits_short else None
        if raw is None:
            raise APDUFormatError("command needs extended length, which this card/reader is not using")
        secret = command.is_secret
        self._log("> " + command.trace())
        started = time.perf_counter()
        hresult, response = scard.SCardTransmit(self._card, self.protocol, list(raw))
        elapsed = (time.perf_counter() - started) * 1000
        if hresult == scard.SCARD_E_NOT_TRANSACTED:
            self._diagnose_failed_transmit(command)
        _check(hresult, f"transmit {command.cla:02X} {command.ins:02X}", self.reader)
        if len(response) < 2:
            # No status word: the reader lost the card mid-command (vpcd answers an empty frame).
            self._diagnose_failed_transmit(command)
        result = ResponseAPDU.from_bytes(response)
        self._log(f"< {result.trace(secret)} [{elapsed:.1f} ms]")
        return result

    def exchange_raw(self, raw: bytes) -> ResponseAPDU:
        """Exactly one SCardTransmit of bytes that need not form a valid APDU (the fuzzer's
        Lc/Le mismatches); traced as hex, so never pass secrets here outside tests."""
        if self._card is None:
            raise TransportError(f"{self.reader}: not connected")
        self._log(f"> raw {bytes(raw).hex().upper()}")
        hresult, response = scard.SCardTransmit(self._card, self.protocol, list(raw))
        _check(hresult, f"transmit raw {bytes(raw[:2]).hex().upper()}", self.reader)
        result = ResponseAPDU.from_bytes(response)
        self._log(f"< {result.trace()}")
        return result

    def _diagnose_failed_transmit(self, command: CommandAPDU, wait: float = 2.0) -> None:
        """SCardTransmit failed mid-command: tell a removed card from a mute one. pcscd polls
        the reader for presence, so give it up to `wait` seconds to notice a removal."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            hresult, _reader, state, _protocol, _atr = scard.SCardStatus(self._card)
            if hresult in (scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD) or (
                hresult == scard.SCARD_S_SUCCESS and not state & SCARD_STATUS_PRESENT
            ):
                raise CardRemovedError(
                    f"{self.reader}: card removed during {command.cla:02X} {command.ins:02X}; "
                    "it may or may not have executed"
                )
            time.sleep(0.05)
        raise TransportError(f"{self.reader}: the card did not answer {command.cla:02X} {command.ins:02X}")

    def _log(self, line: str) -> None:
        if self.trace:
            self._sink(line)
