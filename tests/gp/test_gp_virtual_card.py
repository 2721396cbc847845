"""GlobalPlatform card management end to end: our GP client against the virtual card's ISD,
through the private pcscd + vpcd stack (the same PC/SC path a card in a USB reader takes).

Every test starts from the factory state (PRISTINE) and leaves the card there, so the
other test modules keep their preinstalled applets.
"""
import time
from dataclasses import replace

import pytest

from cardshield.card.apdu import CommandAPDU
from cardshield.gp import commands as gp
from cardshield.gp.cap import read_cap
from cardshield.gp.devloadfile import write_development_load_file
from cardshield.gp.errors import AlreadyInstalled, AuthenticationFailed, CardLocked, GPError, GPKeyError
from cardshield.gp.keys import TEST_KEY, StaticKeys, resolve_keys
from cardshield.gp.manager import CardManager
from cardshield.protocol.command import Command

pytestmark = [pytest.mark.virtual_only, pytest.mark.card]

SCP02_KEYSET, SCP03_KEYSET = 0x20, 0x30
INS_ECHO = 0x10  # the probe applet echoes its data


def manager(transport, keyset, level="mac", keys=None):
    keys = keys or resolve_keys(test_card=True, key_version=keyset, environ={})
    return CardManager(transport, keys, security_level=level)


def echo(transport, aid, payload=b"GlobalPlatform"):
    assert transport.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid, ne=256)).sw == 0x9000
    response = transport.transmit(CommandAPDU(0x80, INS_ECHO, 0x00, 0x00, payload, ne=256))
    return response.data, response.sw


def empty_the_card(transport):
    m = manager(transport, SCP03_KEYSET)
    for entry in m.registry().load_files:
        m.delete(entry.aid, related=True)
    return m


@pytest.mark.parametrize("keyset,level", [(SCP02_KEYSET, "mac"), (SCP02_KEYSET, "enc"),
                                          (SCP03_KEYSET, "mac"), (SCP03_KEYSET, "enc")])
def test_install_select_run_reinstall_delete(factory_card, probe_load_file, probe_applet, keyset, level):
    empty_the_card(factory_card)
    m = manager(factory_card, keyset, level)
    registry = m.registry()
    assert registry.isd.aid == gp.ISD_AIDS[0] and registry.isd.life_cycle_name == "SECURED"
    assert registry.applications == [] and registry.load_files == []  # an empty card

    result = m.install(probe_load_file)
    assert result.development_load_file and not result.replaced
    registry = m.registry()
    assert [a.aid for a in registry.applications] == [probe_applet.module_aid]
    assert registry.applications[0].life_cycle_name == "SELECTABLE"
    assert registry.load_files[0].modules == (probe_applet.module_aid,)
    assert echo(factory_card, probe_applet.module_aid) == (b"GlobalPlatform", 0x9000)

    m = manager(factory_card, keyset, level)
    with pytest.raises(AlreadyInstalled, match="--force"):
        m.install(probe_load_file)
    assert m.install(probe_load_file, force=True).replaced
    assert echo(factory_card, probe_applet.module_aid, b"again") == (b"again", 0x9000)

    m = manager(factory_card, keyset, level)
    m.uninstall(probe_applet.package_aid, [probe_applet.module_aid])
    assert m.registry().load_files == []
    select = factory_card.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, probe_applet.module_aid, ne=256))
    assert select.sw == 0x6A82


def test_factory_instances_are_listed_and_deletable(factory_card, probe_applet):
    m = manager(factory_card, SCP03_KEYSET)
    assert probe_applet.instance_aid in [a.aid for a in m.registry().applications]
    m.delete(probe_applet.instance_aid, related=False)
    with pytest.raises(GPError, match="6985"):  # the package still exists with no instance: fine;
        m.delete(gp.ISD_AIDS[0], related=False)  # the ISD itself can never be deleted
    assert probe_applet.instance_aid not in [a.aid for a in m.registry().applications]


def test_install_parameters_reach_install(factory_card, probe_load_file, probe_applet):
    # install() gets Li AID | Lc privileges | La C9-value; an oversized block is refused by the card
    empty_the_card(factory_card)
    m = manager(factory_card, SCP03_KEYSET, "enc")
    with pytest.raises(GPError, match="6A80"):
        m.install(probe_load_file, applet_data=bytes(120))
    m = manager(factory_card, SCP03_KEYSET, "enc")
    m.install(probe_load_file, applet_data=b"\x80\x02\x0C\x00", force=True)
    assert echo(factory_card, probe_applet.module_aid)[1] == 0x9000


def test_wrong_keys_are_refused_and_the_card_locks_after_ten_attempts(factory_card, probe_applet):
    wrong = StaticKeys(bytes(16), bytes(16), bytes(16), SCP03_KEYSET, source="test")
    for attempt in range(10):
        with pytest.raises(AuthenticationFailed, match="counted this attempt"):
            manager(factory_card, SCP03_KEYSET, keys=wrong).authenticate()
    # a good authentication before the limit would have reset the counter; now the limit is reached
    with pytest.raises(CardLocked, match="6983"):
        manager(factory_card, SCP03_KEYSET).authenticate()
    # locked card management: even the right keys are refused, and applets can no longer be selected
    with pytest.raises(CardLocked):
        manager(factory_card, SCP02_KEYSET).authenticate()
    select = factory_card.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, probe_applet.instance_aid, ne=256))
    assert select.sw == 0x6A82  # CARD_LOCKED: only the ISD is selectable (GPCS 5.1.1.4)


def test_successful_authentication_resets_the_failure_counter(factory_card):
    wrong = StaticKeys(bytes(16), bytes(16), bytes(16), SCP02_KEYSET, source="test")
    for _ in range(3):
        for _ in range(9):
            with pytest.raises(AuthenticationFailed):
                manager(factory_card, SCP02_KEYSET, keys=wrong).authenticate()
        manager(factory_card, SCP02_KEYSET).authenticate()  # 9 failures + success: never locked


def test_wrong_host_cryptogram_gets_6300(factory_card):
    # a host that sends EXTERNAL AUTHENTICATE anyway gets the GPCS 11.8.3 status
    m = manager(factory_card, SCP03_KEYSET)
    m.select_isd()
    m.send(gp.initialize_update(SCP03_KEYSET, bytes(8)))
    bogus = CommandAPDU(0x84, 0x82, 0x01, 0x00, bytes(16))
    assert factory_card.transmit(bogus).sw == 0x6300


def test_unknown_key_version_is_named(factory_card):
    with pytest.raises(GPKeyError, match="0x7f"):
        manager(factory_card, 0x7F).authenticate()


def _load_raw(m, load_file: bytes, blocks: list[tuple[int, int, bytes]], package_aid: bytes):
    m.expect(gp.install_for_load(package_aid, m.isd_aid))
    sws = []
    for p1, p2, data in blocks:
        sws.append(m.send(Command(0x80, gp.INS_LOAD, p1, p2, data, gp.ALL, "LOAD"))[1])
    return sws


def test_truncated_or_corrupted_load_is_refused(factory_card, probe_load_file, probe_applet):
    empty_the_card(factory_card)
    full = probe_load_file.load_file()
    m = manager(factory_card, SCP03_KEYSET)
    m.authenticate()
    # truncated: the last block misses 10 bytes of the announced C4 length
    assert _load_raw(m, full, [(0x00, 0, full[:200]), (0x80, 1, full[200:-10])], probe_applet.package_aid)[-1] \
        == 0x6A80
    # corrupted: the Header's DECAFFED magic damaged
    bad = bytearray(full)
    bad[bad.index(b"\xDE\xCA\xFF\xED")] ^= 0xFF
    assert _load_raw(m, bytes(bad), [(0x80, 0, bytes(bad[:200])), ], probe_applet.package_aid)[-1] in (0x6A80,)
    # blocks out of sequence
    assert _load_raw(m, full, [(0x00, 0, full[:100]), (0x80, 2, full[100:])], probe_applet.package_aid)[-1] \
        == 0x6A86
    assert m.registry().load_files == []  # nothing was half-loaded


def test_development_load_file_refused_for_a_real_card(probe_load_file, monkeypatch, factory_card):
    # the card is not the virtual one (as far as the client can tell): the dev file never leaves the host
    from cardshield.gp.cardprofiles import GENERIC_CARD

    monkeypatch.setattr(CardManager, "card_profile", lambda self: GENERIC_CARD)
    m = manager(factory_card, SCP03_KEYSET)
    with pytest.raises(GPError, match="development load file"):
        m.install(probe_load_file)
    assert m.apdus == 1  # only SELECT was sent (CPLC check patched out): no authentication, no LOAD


def test_info_needs_no_keys(factory_card):
    info = CardManager(factory_card).info()
    assert info.virtual_card and info.isd_aid == gp.ISD_AIDS[0]
    assert {(s.scp, s.i) for s in info.card_data.scp} == {(0x02, 0x55), (0x03, 0x10)}
    assert {k.version for k in info.key_information} == {SCP02_KEYSET, SCP03_KEYSET}


def test_default_key_version_uses_scp03(factory_card):
    m = manager(factory_card, 0)
    m.authenticate()
    assert type(m.session).__name__ == "SCP03Session"


def test_project_applet_installs_through_the_demo_path(factory_card, card_stack):
    """What `./cardshield install` and the demo run: the CardShield applet, from build/cardshield.cap when a
    Java Card SDK converted it, else from the development load file (CI)."""
    from cardshield.config import load_applet_config
    from cardshield.gp.project import install_project_applet, project_load_file
    from cardshield.protocol import tlv

    config = load_applet_config()
    if not any(a.package_aid == config.package_aid for a in card_stack.applets):
        pytest.skip("the CardShield applet is not built into this virtual card")
    cap = project_load_file()
    assert cap.package_aid == config.package_aid and config.applet_aid in cap.applet_aids
    assert cap.javacard_version == "3.0.4"
    with pytest.raises(AlreadyInstalled):  # the factory instance is there
        install_project_applet(factory_card, force=False)
    # maximum certificate size 4096 (docs/apdu.md install tag 80)
    result = install_project_applet(factory_card, force=True, applet_data=bytes.fromhex("80021000"))
    assert result.replaced and result.instance_aid == config.instance_aid
    select = factory_card.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, config.instance_aid, ne=256))
    assert select.sw == 0x9000
    fci = tlv.require(select.data, 0x6F, "FCI")
    assert tlv.find(fci, 0x84) == config.instance_aid
    assert tlv.find(tlv.require(fci, 0xA5, "FCI A5"), 0x83) == bytes.fromhex("1000")  # the parameter arrived
    # an install parameter the applet refuses (certificate size out of range) fails the INSTALL, not later
    with pytest.raises(GPError, match="6A80"):
        install_project_applet(factory_card, force=True, applet_data=bytes.fromhex("80020001"))


def test_cap_for_a_newer_java_card_is_refused_naming_the_version(factory_card, probe_applet):
    from cardshield.gp.cap import IMPORT, parse_components
    from cardshield.gp.devloadfile import build_components

    components, custom = build_components(probe_applet.package_aid, (1, 0),
                                          [probe_applet.module_aid], ["java/lang", "javacard/framework"])
    framework_304 = bytes.fromhex("05 01 07 A0000000620101")
    components[IMPORT] = components[IMPORT].replace(framework_304, bytes.fromhex("08 01 07 A0000000620101"))
    java_card_31 = parse_components(components, custom, "jc31.cap")
    assert java_card_31.javacard_version == "3.1.0"
    empty_the_card(factory_card)
    with pytest.raises(GPError, match=r"6985.*Java Card 3\.1\.0"):
        manager(factory_card, SCP03_KEYSET).install(java_card_31)


def test_get_status_pages_a_long_registry_with_6310(factory_card, probe_load_file, probe_applet):
    empty_the_card(factory_card)
    m = manager(factory_card, SCP02_KEYSET)
    m.install(probe_load_file)
    instances = [probe_applet.package_aid + bytes([0x10, n]) for n in range(8)]
    for aid in instances:
        m.expect(gp.install_for_install(probe_applet.package_aid, probe_applet.module_aid, aid, b""))
    first, sw = m.send(gp.get_status(gp.STATUS_APPLICATIONS))
    assert sw == gp.SW_MORE_DATA and len(first) <= 240  # more than one response's worth
    listed = [a.aid for a in m.registry().applications]
    assert listed == [probe_applet.module_aid, *instances]
    assert echo(factory_card, instances[-1]) == (b"GlobalPlatform", 0x9000)


def test_install_parameters_never_appear_in_the_trace(factory_card, probe_load_file):
    # install parameters may carry the personalization key set (docs/apdu.md tag C0)
    lines = []
    factory_card.trace, factory_card._sink = True, lines.append
    secret = bytes.fromhex("C021") + bytes([0x01]) + bytes(range(0xA0, 0xC0))
    empty_the_card(factory_card)
    manager(factory_card, SCP02_KEYSET, "enc").install(probe_load_file, applet_data=secret, secret_parameters=True)
    install_lines = [line for line in lines if line.startswith("> 84 E6 0C")]
    assert install_lines and all("masked" in line for line in install_lines)
    assert secret.hex().upper()[8:40] not in "\n".join(lines)
