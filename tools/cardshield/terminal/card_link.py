"""Which card the terminal talks to, opened fresh for every flow, so a reader change or a
re-inserted card between two flows is simply picked up. The reader is named exactly (or
by index); without a name, CARDSHIELD_READER (exported by `cardshield sim`) is used, else
the one reader holding a card."""
from __future__ import annotations

import os

from cardshield.card.errors import CardShieldCardError, NoCardError, NoReaderError
from cardshield.card.transport import Transport, list_readers, resolve_reader

READER_ENV = "CARDSHIELD_READER"


class CardUnavailable(Exception):
    """No card to talk to; the message tells the card holder what to do."""


def choose_reader(selector: str | None) -> str:
    readers = list_readers()
    selector = selector or os.environ.get(READER_ENV) or None
    if selector is not None:
        return resolve_reader(selector, readers)
    with_card = [name for name in readers if _has_card(name)]
    if len(with_card) == 1:
        return with_card[0]
    if not readers:
        raise NoReaderError("no smart-card reader is connected: plug one in (or start the virtual card with "
                            "`./cardshield sim`)", readers)
    raise NoReaderError(("no reader holds a card: insert your card" if not with_card else
                         "several readers hold a card: choose one with --reader"), readers)


def _has_card(reader: str) -> bool:
    try:
        with Transport(reader) as _transport:
            return True
    except CardShieldCardError:
        return False


def open_card(selector: str | None) -> Transport:
    """A connected transport, or CardUnavailable with a message for the card holder."""
    try:
        transport = Transport(choose_reader(selector))
        transport.connect()
        return transport
    except NoCardError as error:
        raise CardUnavailable(f"no card in the reader ({error.reader}): insert your card and try again") from None
    except CardShieldCardError as error:
        raise CardUnavailable(str(error)) from None
