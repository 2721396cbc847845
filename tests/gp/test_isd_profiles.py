"""The GlobalPlatform client against security domains that behave like the real cards it
meets (the virtual ISD's profiles, IsdProfile.java), each over the private pcscd + vpcd
stack: a GP 2.1.1 card, an SCP03 S16 card at a proprietary AID, a Delegated Management /
DAP security domain, a locked card, a card with small command buffers."""
from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardshield.card.apdu import CommandAPDU
from cardshield.gp import commands as gp
from cardshield.gp.errors import GPError, GPKeyError
from cardshield.gp.manager import CardManager

from .cards import manager_with_test_key as manager

pytestmark = [pytest.mark.virtual_only, pytest.mark.card]

INS_ECHO = 0x10  # the probe applet echoes its data


def echo(transport, aid, payload=b"GlobalPlatform"):
    select = transport.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid, ne=256))
    if select.sw != 0x9000:
        return b"", select.sw
    response = transport.transmit(CommandAPDU(0x80, INS_ECHO, 0x00, 0x00, payload, ne=256))
    return response.data, response.sw


class TestGp211LegacyCard:
    """GP 2.1.1: legacy GET STATUS only, no P1=10, one SCP02 i=15 key set 01 that answers
    whatever version is asked, and firmware that ends the registry with an empty 6310."""
    ISD_PROFILE = "gp211"

    def test_install_list_and_delete_through_the_legacy_format(self, isd_transport, probe_load_file, probe_applet):
        warnings = []
        with manager(isd_transport, warnings=warnings) as m:
            result = m.install(probe_load_file)
            registry = m.registry()
            assert type(m.session).__name__ == "SCP02Session"
        assert m.isd_aid == bytes.fromhex("A000000003000000")  # found through the default selection
        assert registry.isd.aid == m.isd_aid and registry.isd.life_cycle_name == "SECURED"
        assert [(a.aid, a.life_cycle_name) for a in registry.applications] == [(probe_applet.module_aid,
                                                                                "SELECTABLE")]
        assert [e.aid for e in registry.load_files] == [probe_applet.package_aid]  # from P1=20 after 10 got 6A86
        assert any("6310" in w and "without data" in w for w in warnings)  # the endless 6310 was ended
        assert result.block_size == 247  # no 9F65: a short APDU less the C-MAC
        assert echo(isd_transport, probe_applet.module_aid) == (b"GlobalPlatform", 0x9000)
        with manager(isd_transport) as m:
            m.delete(probe_applet.package_aid, related=True)
            assert m.registry().load_files == []

    def test_card_refuses_what_the_old_client_sent(self, isd_transport):
        # what the client sent before: tagged GET STATUS P1=10 only. This card refuses it.
        m = manager(isd_transport)
        m.authenticate()
        assert m.send(gp.get_status(gp.STATUS_LOAD_FILES_AND_MODULES))[1] == 0x6A86
        assert m.send(gp.get_status(gp.STATUS_LOAD_FILES, tagged=False))[1] == 0x6A88  # legacy P1=20: empty card
        m.close()

    def test_key_version_mismatch_is_named(self, isd_transport):
        with pytest.raises(GPKeyError, match=r"asked for key set 0x20.*answered .*key set 0x01"):
            manager(isd_transport, key_version=0x20).authenticate()


class TestScp03S16Card:
    """SCP03 in S16 mode only, at a proprietary ISD AID named only by the default selection."""
    ISD_PROFILE = "s16"

    @pytest.mark.parametrize("level", ["mac", "enc"])
    def test_s16_session_installs_and_runs(self, isd_transport, probe_load_file, probe_applet, level):
        with manager(isd_transport, level=level) as m:
            info = m.info()
            assert info.isd_aid == bytes.fromhex("A0000001515350")
            assert [(o.scp, o.i, o.s16) for o in info.card_data.scp] == [(0x03, 0x11, True)]
            m.install(probe_load_file)
            assert m.session.mac_length == 16 and type(m.session).__name__ == "SCP03Session"
            assert [a.aid for a in m.registry().applications] == [probe_applet.module_aid]
        assert echo(isd_transport, probe_applet.module_aid) == (b"GlobalPlatform", 0x9000)

    def test_s16_is_taken_from_initialize_update_without_card_data(self, isd_transport, monkeypatch):
        # a card that does not say S16 in GET DATA 66: the 8-byte challenge is refused (6700)
        # before any key is used, and the 16-byte one opens an S16 session
        monkeypatch.setattr(CardManager, "card_data", lambda self: gp.CardData())
        sent = []
        m = manager(isd_transport)
        original = m.send
        m.send = lambda command, **kw: (sent.append(command), original(command, **kw))[1]
        m.authenticate()
        assert [len(c.data) for c in sent if c.ins == gp.INS_INITIALIZE_UPDATE] == [8, 16]
        assert m.session.mac_length == 16
        m.close()

    def test_sd_option_and_a_wrong_one(self, isd_transport):
        with manager(isd_transport, sd_aid=bytes.fromhex("A0000001515350")) as m:
            m.authenticate()
        with pytest.raises(GPError, match=r"A000000151000000 given with --sd does not answer"):
            manager(isd_transport, sd_aid=gp.ISD_AIDS[0]).select_isd()

    def test_fixed_aids_alone_find_no_isd(self, isd_transport):
        # what the client did before: SELECT the two standard AIDs only
        for aid in gp.ISD_AIDS:
            assert isd_transport.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid, ne=256)).sw == 0x6A82

    def test_put_key_in_s16_mode(self, isd_transport):
        new = bytes(range(0x60, 0x70))
        with manager(isd_transport) as m:
            result = m.put_keys(new, new, new, 0x31)
        assert result.version == 0x31
        from cardshield.gp.keys import StaticKeys

        with CardManager(isd_transport, StaticKeys(new, new, new, 0x31, source="test")) as m:
            m.authenticate()
            assert m.session.mac_length == 16


class TestDelegatedManagementDomain:
    """A security domain that requires the Load File Data Block Hash (GPCS 9.3.5)."""
    ISD_PROFILE = "dm"

    def test_the_card_refuses_a_load_without_hash(self, isd_transport, probe_applet):
        with manager(isd_transport) as m:
            m.authenticate()
            assert m.send(gp.install_for_load(probe_applet.package_aid, m.isd_aid))[1] == 0x6A80

    def test_install_sends_the_sha256_hash(self, isd_transport, probe_load_file, probe_applet):
        with manager(isd_transport) as m:
            result = m.install(probe_load_file)
        assert result.load_file_hash
        assert echo(isd_transport, probe_applet.module_aid) == (b"GlobalPlatform", 0x9000)

    def test_a_load_not_matching_its_hash_is_refused(self, isd_transport, probe_load_file, probe_applet):
        wrong = hashlib.sha256(b"another load file").digest()
        with manager(isd_transport) as m:
            m.authenticate()
            m.expect(gp.install_for_load(probe_applet.package_aid, m.isd_aid, wrong))
            sws = [m.send(block)[1] for block in gp.load_blocks(probe_load_file.load_file(), 200)]
            assert sws[-1] == 0x6A80
            assert m.registry().load_files == []  # nothing half-loaded


DAP_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def dap_signer(key):
    return lambda digest: key.sign(digest, padding.PKCS1v15(), hashes.SHA256())


class TestDapVerification:
    """The dm profile with a DAP key: every load file needs a DAP block (GPCS C.2)."""
    ISD_PROFILE = "dm"
    ISD_PROPERTIES = {"gp.isd.dap.publickey": DAP_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo).hex().upper()}

    def test_signed_load_file_installs(self, isd_transport, probe_load_file, probe_applet):
        with manager(isd_transport) as m:
            result = m.install(probe_load_file, dap_signer=dap_signer(DAP_KEY))
        assert result.dap and result.load_file_hash
        assert echo(isd_transport, probe_applet.module_aid) == (b"GlobalPlatform", 0x9000)

    @pytest.mark.parametrize("signer", [None, dap_signer(rsa.generate_private_key(public_exponent=65537,
                                                                                  key_size=2048))])
    def test_unsigned_or_wrongly_signed_load_file_is_refused(self, isd_transport, probe_load_file, signer):
        with manager(isd_transport) as m:
            with pytest.raises(GPError, match="6982"):
                m.install(probe_load_file, dap_signer=signer)
            assert m.registry().load_files == []


class TestLockedCard:
    ISD_PROFILE = "locked"

    def test_locked_card_is_reported_as_locked_and_can_be_unlocked(self, isd_transport, probe_load_file,
                                                                    probe_applet):
        warnings = []
        with manager(isd_transport, warnings=warnings) as m:
            info = m.info()
            assert info.locked and info.isd_aid == gp.ISD_AIDS[0]
            assert any("CARD_LOCKED" in w and "6283" in w for w in warnings)
            assert m.registry().isd.life_cycle_name == "CARD_LOCKED"
            m.set_card_locked(False)
        with manager(isd_transport) as m:
            assert not m.info().locked
            m.install(probe_load_file)
        assert echo(isd_transport, probe_applet.module_aid)[1] == 0x9000
        with manager(isd_transport) as m:
            m.set_card_locked(True)
        assert echo(isd_transport, probe_applet.module_aid)[1] == 0x6A82  # only the ISD is selectable


class TestSmallCommandBuffer:
    """9F65 = 64: LOAD blocks must fit 64 bytes of command data, C-MAC included."""
    ISD_PROFILE = "small"

    @pytest.mark.parametrize("key_version,level,block", [(0x20, "mac", 56), (0x30, "enc", 47), (0x20, "enc", 55)])
    def test_block_size_follows_9f65(self, isd_transport, probe_load_file, probe_applet, key_version, level, block):
        with manager(isd_transport, key_version=key_version, level=level) as m:
            result = m.install(probe_load_file)
        assert result.block_size == block
        assert echo(isd_transport, probe_applet.module_aid)[1] == 0x9000

    def test_a_block_size_too_big_names_the_option(self, isd_transport, probe_load_file):
        with manager(isd_transport, block_size=200) as m:
            with pytest.raises(GPError, match="6700.*--block-size"):
                m.install(probe_load_file)
        with manager(isd_transport) as m:  # the refused command broke the MAC chain: a new session
            assert m.registry().load_files == []

    def test_block_size_option(self, isd_transport, probe_load_file):
        with manager(isd_transport, block_size=32) as m:
            result = m.install(probe_load_file)
        assert result.block_size == 32 and result.load_blocks == -(-result.load_file_bytes // 32)
