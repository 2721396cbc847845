"""Install parameters: an instance installed with tag 80 = 4096 stores and serves 4096-byte
certificates and refuses larger ones. The instance is installed through GlobalPlatform in
place of the card's CardShield instances, which a 32 kB SIM could not hold beside it
(tests/applet_instances.py); the card is wiped back to the session's instances afterwards."""

import pytest

from applet_instances import LARGE_CERTIFICATE_AID, LARGE_CERTIFICATE_PARAMETERS, LARGE_CERTIFICATE_SIZE, \
    replace_cardshield_instances
from applet_support import PIN, PUK, RELAXED_PAYMENT_SLOT, certificate_of_size
from cardshield.card.client import CardShield
from cardshield.card.errors import CardError
from cardshield.protocol import APPLET_AID, Lifecycle

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]


@pytest.fixture
def large_certificate_card(virtual_card, transport, reference) -> CardShield:
    reference.valid = False  # the reference card is deleted below and rebuilt by the next test
    virtual_card.pristine()
    transport.reconnect("reset")
    deleted = replace_cardshield_instances(transport, LARGE_CERTIFICATE_AID, LARGE_CERTIFICATE_PARAMETERS)
    assert APPLET_AID in deleted
    transport.reconnect("reset")
    try:
        yield CardShield(transport, aid=LARGE_CERTIFICATE_AID)
    finally:
        virtual_card.pristine()


def test_install_parameter_sets_the_certificate_capacity(large_certificate_card, server_key):
    card = large_certificate_card
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
