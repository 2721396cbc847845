"""Install parameters: an instance installed with tag 80 = 4096 stores and serves 4096-byte
certificates and refuses larger ones (virtual card: the instance is set up by the session)."""

import pytest

from applet_instances import LARGE_CERTIFICATE_AID, LARGE_CERTIFICATE_SIZE
from applet_support import PIN, PUK, RELAXED_PAYMENT_SLOT, certificate_of_size
from cardshield.card.client import CardShield
from cardshield.card.errors import CardError
from cardshield.protocol import Lifecycle

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]


def test_install_parameter_sets_the_certificate_capacity(virtual_card, transport, reference, server_key):
    reference.valid = False  # the wipe below also resets the reference card
    virtual_card.pristine()
    transport.reconnect("reset")
    card = CardShield(transport, aid=LARGE_CERTIFICATE_AID)
    fci = card.select()
    assert fci.aid == LARGE_CERTIFICATE_AID and fci.lifecycle is Lifecycle.PERSONALIZATION
    assert fci.max_certificate_size == LARGE_CERTIFICATE_SIZE
    card.personalize_development_card(PIN, PUK, slots=RELAXED_PAYMENT_SLOT)
    card.verify_pin(PIN)
    key = card.generate_key(1)
    largest = certificate_of_size(key, server_key, LARGE_CERTIFICATE_SIZE)
    card.write_certificate(1, largest)
    assert card.read_certificate(1) == largest
    with pytest.raises(CardError) as error:
        card.write_certificate(1, certificate_of_size(key, server_key, LARGE_CERTIFICATE_SIZE + 1))
    assert error.value.sw == 0x6A84
    assert card.read_certificate(1) == largest
