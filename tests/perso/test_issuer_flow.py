"""The issuer's whole path on the virtual card: install an applet instance with its
personalization key set through GlobalPlatform (SCP03 with C-DECRYPTION, so the keys are
never in clear on the wire), then personalize it with a bundle, to ISSUED."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cardshield.gp import commands as gp
from cardshield.gp.errors import GPError
from cardshield.gp.keys import resolve_keys
from cardshield.gp.manager import CardManager
from cardshield.perso import cli as perso_cli
from cardshield.perso import keys, runner
from cardshield.perso.script import issuance_script
from cardshield.protocol import commands
from cardshield.protocol.constants import APPLET_AID, PACKAGE_AID

from . import vectors as v
from .instance import KEYED_AID, card_keys

pytestmark = [pytest.mark.card, pytest.mark.virtual_only]

ISSUER_AID = APPLET_AID[:-1] + b"\x03"
SCP03_KEYSET = 0x30
SERVER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # the virtual ISD's SCP03 test key set (40..4F)


class WireRecorder:
    """Passes commands to the transport and keeps the bytes that went on the wire."""

    def __init__(self, transport):
        self.transport = transport
        self.sent: list[bytes] = []

    def transmit(self, command):
        self.sent.append(command.encode())
        return self.transport.transmit(command)

    def __getattr__(self, name):
        return getattr(self.transport, name)


def _issuance_script(folder):
    """PIN, PUK, the server's request key (ISSUE needs it for slot 01's default policy), ISSUE."""
    (folder / "server.pem").write_bytes(SERVER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    script = folder / "card.yaml"
    script.write_text(issuance_script({"server_key": "server.pem"}))
    return script


def _manager(link) -> CardManager:
    manager = CardManager(link, resolve_keys(test_card=True, key_version=SCP03_KEYSET, environ={}),
                          security_level="enc")
    manager.select_isd()
    manager.authenticate()
    return manager


def test_install_with_key_set_under_c_decryption_then_personalize(factory_card, tmp_path, store):
    wire = WireRecorder(factory_card)
    manager = _manager(wire)
    # a 32 kB SIM holds two CardShield instances (tests/applet_instances.py): the issuer
    # frees the room of the keyed test instance first (GPCS 11.2 DELETE)
    manager.delete(KEYED_AID, related=False)
    params = keys.install_parameters(card_keys(), v.CARD_ID)
    manager.expect(gp.install_for_install(PACKAGE_AID, APPLET_AID, ISSUER_AID, params), sensitive=True)
    on_the_wire = b"".join(wire.sent)
    assert card_keys().enc not in on_the_wire and card_keys().mac not in on_the_wire
    assert params not in on_the_wire

    state = runner.read_card_state(factory_card, ISSUER_AID)
    assert (state.card_id, state.key_version, state.counter) == (v.CARD_ID, 1, 0)
    script = _issuance_script(tmp_path)
    bundle = perso_cli.compile_file(script, state.card_id, store, applet_aid=ISSUER_AID)
    report = runner.Runner(factory_card, bundle, store=store, progress=lambda _: None).run()
    assert report.succeeded and report.final_lifecycle == "ISSUED" and report.final_counter == 4


@pytest.mark.parametrize("params, why", [
    (bytes([0xC0, 33]) + bytes([1]) + bytes(32), "key set without the card identity"),
    (bytes([0xC0, 32]) + bytes([1]) + bytes(31) + bytes([0xC1, 8]) + v.CARD_ID, "key set of 32 bytes"),
    (bytes([0xC0, 33]) + bytes(33) + bytes([0xC1, 8]) + v.CARD_ID, "key version 0"),
    (bytes([0xC0, 33]) + bytes([1]) + bytes(32) + bytes([0xC1, 7]) + v.CARD_ID[:7], "card id of 7 bytes"),
    (bytes([0xC0, 33]) + bytes([1]) + bytes(32) + bytes([0xC1, 17]) + bytes(17), "card id of 17 bytes"),
])
def test_inconsistent_install_parameters_fail_the_install(factory_card, params, why):
    manager = _manager(factory_card)
    with pytest.raises(GPError) as refused:
        manager.expect(gp.install_for_install(PACKAGE_AID, APPLET_AID, ISSUER_AID, params), sensitive=True)
    assert refused.value.sw == 0x6A80, why
    assert factory_card.transmit(commands.select_applet(ISSUER_AID).apdu()).sw == 0x6A82, why  # no instance


def test_perso_install_diversifies_by_cplc_then_the_card_personalizes(factory_card, virtual_card, tmp_path,
                                                                       monkeypatch, capsys, store):
    from cardshield.cli import main
    from cardshield.perso.cli import card_id_from_cplc

    monkeypatch.setenv("CARDSHIELD_SECRET_ISSUER_MK", v.MASTER_KEY.hex())
    assert main(["perso", "install", "--reader", virtual_card.info.reader, "--card-id", "cplc",
                 "--key-version", "0x30", "--force"]) == 0
    out = capsys.readouterr().out
    state = runner.read_card_state(factory_card, APPLET_AID)
    cplc = _manager(factory_card).send(gp.get_data(gp.TAG_CPLC))[0]
    assert state.card_id == card_id_from_cplc(gp.parse_cplc(cplc).raw)
    assert f"for card {state.card_id.hex().upper()}" in out and v.MASTER_KEY.hex() not in out.lower()
    script = _issuance_script(tmp_path)
    bundle = perso_cli.compile_file(script, state.card_id, store)
    assert runner.Runner(factory_card, bundle, store=store, progress=lambda _: None).run().final_lifecycle == "ISSUED"
