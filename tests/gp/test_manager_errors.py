"""Client-side refusals that need no card: a card without a reachable ISD (a USIM managed
only over the air), and keys refused before anything is sent."""
import pytest

from cardshield.card.apdu import ResponseAPDU
from cardshield.gp.errors import GPError
from cardshield.gp.manager import CardManager


class CardWithoutIsd:
    """Stands for a USIM whose ISD answers no SELECT on the contact interface."""

    def __init__(self):
        self.commands = []

    def transmit(self, command):
        self.commands.append(command)
        return ResponseAPDU(b"", 0x6A82)


def test_no_isd_on_the_contact_interface_points_to_ota():
    card = CardWithoutIsd()
    with pytest.raises(GPError, match="over the air") as error:
        CardManager(card).info()
    assert "A000000151000000 -> 6A82" in str(error.value) and "A000000003000000 -> 6A82" in str(error.value)
    # the default selection first (GPCS 11.9: the ISD is often default-selected), then the known AIDs
    assert [c.data.hex().upper() for c in card.commands] == ["", "A000000151000000", "A000000003000000"]


def test_unknown_security_level_is_refused():
    with pytest.raises(GPError, match="security level"):
        CardManager(CardWithoutIsd(), security_level="rmac")
