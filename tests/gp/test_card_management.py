"""Card management on the plain virtual ISD, over PC/SC: a session no other client can
break, installs that leave nothing behind when refused, secrets only under C-DECRYPTION,
PUT KEY and SET STATUS, and the generic install/delete commands of the CLI."""
from __future__ import annotations

import threading

import pytest

from cardshield.card.apdu import CommandAPDU
from cardshield.card.transport import Transport
from cardshield.gp import commands as gp
from cardshield.gp.errors import AuthenticationFailed, GPError
from cardshield.gp.keys import StaticKeys

from .cards import manager_with_test_key as manager

pytestmark = [pytest.mark.virtual_only, pytest.mark.card]

SCP02_KEYSET, SCP03_KEYSET = 0x20, 0x30
INS_ECHO = 0x10


def select(transport, aid) -> int:
    return transport.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid, ne=256)).sw


def echo(transport, aid, payload=b"GlobalPlatform"):
    assert select(transport, aid) == 0x9000
    response = transport.transmit(CommandAPDU(0x80, INS_ECHO, 0x00, 0x00, payload, ne=256))
    return response.data, response.sw


def empty_the_card(transport):
    with manager(transport, SCP03_KEYSET) as m:
        for entry in m.registry().load_files:
            m.delete(entry.aid, related=True)


class IntruderDuringLoad:
    """Passes commands to the card; after the second LOAD block, another PC/SC client (its
    own connection, as another program would have) SELECTs the ISD, which on a card ends
    any secure channel. It gets up to two seconds to get its command in."""

    def __init__(self, transport, reader):
        self.transport = transport
        self.intruder = Transport(reader)
        self.intruder.connect()
        self.loads = 0
        self.thread: threading.Thread | None = None
        self.answer: list[int] = []

    def transmit(self, command):
        response = self.transport.transmit(command)
        if command.ins == gp.INS_LOAD:
            self.loads += 1
            if self.loads == 2:
                self.thread = threading.Thread(target=lambda: self.answer.append(select(self.intruder, gp.ISD_AIDS[0])))
                self.thread.start()
                self.thread.join(2.0)
        return response

    def __getattr__(self, name):
        return getattr(self.transport, name)


def test_another_clients_select_during_load_cannot_break_the_session(factory_card, reader_name, probe_load_file,
                                                                    probe_applet):
    empty_the_card(factory_card)
    link = IntruderDuringLoad(factory_card, reader_name)
    try:
        with manager(link, SCP03_KEYSET, block_size=64) as m:
            result = m.install(probe_load_file)
            assert link.answer == []  # held off while the session runs
        link.thread.join(10)
        assert link.answer == [0x9000]  # and served once the session released the card
    finally:
        link.intruder.close()
    assert result.load_blocks > 2
    assert echo(factory_card, probe_applet.module_aid) == (b"GlobalPlatform", 0x9000)


def test_a_refused_install_leaves_no_package(factory_card, card_stack):
    from cardshield.config import load_applet_config
    from cardshield.gp.project import install_project_applet

    config = load_applet_config()
    if not any(a.package_aid == config.package_aid for a in card_stack.applets):
        pytest.skip("the CardShield applet is not built into this virtual card")
    empty_the_card(factory_card)
    # the applet's install() refuses a certificate size out of range (docs/apdu.md install tag 80)
    with pytest.raises(GPError, match=r"6A80.*deleted again"):
        install_project_applet(factory_card, force=False, applet_data=bytes.fromhex("80020001"))
    with manager(factory_card, SCP03_KEYSET) as m:
        registry = m.registry()
    assert registry.load_files == [] and registry.applications == []


def test_secret_install_parameters_are_refused_under_c_mac_only(factory_card, probe_load_file):
    secret = bytes.fromhex("C021") + bytes([0x01]) + bytes(range(0xA0, 0xC0))
    m = manager(factory_card, SCP03_KEYSET, "mac")
    with pytest.raises(GPError, match="--security-level enc"):
        m.install(probe_load_file, applet_data=secret, secret_parameters=True)
    assert m.apdus == 0  # refused before anything reached the card
    m.authenticate()
    with pytest.raises(GPError, match="C-DECRYPTION"):  # also the low-level path
        m.send(gp.install_for_install(probe_load_file.package_aid, probe_load_file.applet_aids[0],
                                      probe_load_file.applet_aids[0], secret), secret=True)
    m.close()


def test_project_install_treats_the_perso_key_set_as_secret(factory_card):
    from cardshield.gp.project import carries_key_set, install_project_applet

    key_set = bytes.fromhex("C021") + bytes([0x01]) + bytes(32) + bytes.fromhex("C108") + bytes(8)
    assert carries_key_set(key_set) and not carries_key_set(bytes.fromhex("80021000"))
    with pytest.raises(GPError, match="--security-level enc"):
        install_project_applet(factory_card, force=True, applet_data=key_set, security_level="mac")


@pytest.mark.parametrize("session_keyset,new_key", [(SCP03_KEYSET, bytes(range(0x10, 0x30))),
                                                    (SCP03_KEYSET, bytes(range(0x10, 0x20))),
                                                    (SCP02_KEYSET, bytes(range(0x10, 0x20)))])
def test_put_key_adds_then_replaces_a_key_set(factory_card, session_keyset, new_key):
    version = 0x31 if session_keyset == SCP03_KEYSET else 0x21
    with manager(factory_card, session_keyset) as m:
        added = m.put_keys(new_key, new_key, new_key, version)
    assert added.version == version and added.replaced is None
    new = StaticKeys(new_key, new_key, new_key, version, source="test")
    from cardshield.gp.manager import CardManager

    with CardManager(factory_card, new) as m:
        m.authenticate()
        assert {k.version for k in m.info().key_information} >= {version, SCP02_KEYSET, SCP03_KEYSET}
    # replace the key set the issuer uses (the card's test keys) with the new keys
    with CardManager(factory_card, new) as m:
        replaced = m.put_keys(new_key, new_key, new_key, 0x32 if session_keyset == SCP03_KEYSET else 0x22,
                              replace_version=version)
    assert replaced.replaced == version
    with pytest.raises(GPError, match="6A88"):  # the old version is gone
        manager(factory_card, version).authenticate()


def test_put_key_with_a_damaged_key_check_value_is_refused(factory_card):
    key = bytes(range(0x10, 0x20))
    with manager(factory_card, SCP03_KEYSET) as m:
        m.authenticate()
        components = [m.session.key_component(key) for _ in range(3)]
        components[1] = components[1][:-1] + bytes([components[1][-1] ^ 1])
        assert m.send(gp.put_key(0, bytes([0x33]) + b"".join(components)))[1] == 0x6A80
        assert 0x33 not in {k.version for k in m.info().key_information}


class AnswerTamperer:
    """Changes one byte of the card's answer to PUT KEY (a card or reader that lies)."""

    def __init__(self, transport):
        self.transport = transport

    def transmit(self, command):
        response = self.transport.transmit(command)
        if command.ins == gp.INS_PUT_KEY and response.data:
            from cardshield.card.apdu import ResponseAPDU

            return ResponseAPDU(response.data[:-1] + bytes([response.data[-1] ^ 1]), response.sw)
        return response

    def __getattr__(self, name):
        return getattr(self.transport, name)


def test_put_key_answer_with_other_key_check_values_is_reported(factory_card):
    key = bytes(range(0x10, 0x20))
    with manager(AnswerTamperer(factory_card), SCP03_KEYSET) as m:
        with pytest.raises(GPError, match="not key set 0x35 with the key check values"):
            m.put_keys(key, key, key, 0x35)


def test_lock_and_unlock_an_application(factory_card, probe_applet):
    with manager(factory_card, SCP03_KEYSET) as m:
        m.set_application_locked(probe_applet.instance_aid, True)
        assert m.registry().application(probe_applet.instance_aid).life_cycle_name == "LOCKED"
    assert select(factory_card, probe_applet.instance_aid) == 0x6A82
    with manager(factory_card, SCP02_KEYSET) as m:
        m.set_application_locked(probe_applet.instance_aid, False)
    assert echo(factory_card, probe_applet.instance_aid) == (b"GlobalPlatform", 0x9000)


def test_wrong_keys_for_put_key_never_reach_it(factory_card):
    wrong = StaticKeys(bytes(16), bytes(16), bytes(16), SCP03_KEYSET, source="test")
    from cardshield.gp.manager import CardManager

    with pytest.raises(AuthenticationFailed):
        CardManager(factory_card, wrong).put_keys(bytes(16), bytes(16), bytes(16), 0x34)


def test_cli_install_cap_and_delete(factory_card, virtual_card, probe_load_file, probe_applet, capsys):
    from cardshield.cli import main

    empty_the_card(factory_card)
    instance = probe_applet.package_aid + b"\x42"
    reader = ["--reader", virtual_card.info.reader, "--test-card", "--key-version", "0x30"]
    assert main(["gp", "install-cap", probe_load_file.source, *reader, "--applet", probe_applet.module_aid.hex(),
                 "--instance", instance.hex(), "--privileges", "00", "--params", "0102", "--block-size", "100"]) == 0
    assert f"installed {instance.hex().upper()}" in capsys.readouterr().out
    assert echo(factory_card, instance) == (b"GlobalPlatform", 0x9000)
    assert main(["gp", "delete", probe_applet.package_aid.hex(), *reader, "--related"]) == 0
    assert select(factory_card, instance) == 0x6A82


@pytest.mark.parametrize("argv, message", [
    (["--instance", "F0"], "an AID has 5 to 16"),
    (["--privileges", "XY"], "is not hexadecimal"),
    (["--block-size", "300"], "outside 1..255"),
])
def test_cli_bad_input_is_a_usage_error_naming_the_fix(argv, message, capsys, tmp_path):
    from cardshield.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["gp", "install-cap", str(tmp_path / "x.cap"), *argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_cli_install_parameters_too_long_are_refused_before_load(factory_card, virtual_card, probe_load_file,
                                                                 capsys):
    from cardshield.cli import main

    empty_the_card(factory_card)
    code = main(["gp", "install-cap", probe_load_file.source, "--reader", virtual_card.info.reader, "--test-card",
                 "--params", "00" * 120])
    err = capsys.readouterr().err
    assert code != 0 and "shorten --params" in err and "Traceback" not in err
    with manager(factory_card, SCP03_KEYSET) as m:
        assert m.registry().load_files == []  # nothing was loaded
