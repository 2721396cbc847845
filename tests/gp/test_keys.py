"""Where card keys may come from, and the refusals that protect real cards."""
import pytest

from cardshield.gp.errors import GPKeyError
from cardshield.gp.keys import TEST_KEY, resolve_keys

OTHER = "00112233445566778899AABBCCDDEEFF"


def test_no_keys_is_refused_for_a_real_card():
    with pytest.raises(GPKeyError, match="--test-card"):
        resolve_keys(environ={})


def test_test_key_only_for_declared_test_card():
    assert resolve_keys(test_card=True, environ={}).enc == TEST_KEY
    with pytest.raises(GPKeyError, match="not declared a test card"):
        resolve_keys(key=TEST_KEY.hex(), environ={})


def test_option_beats_environment_and_env_beats_file(tmp_path):
    key_file = tmp_path / "card.keys"
    key_file.write_text("ENC=" + "11" * 16 + "\nMAC=" + "22" * 16 + "\nDEK=" + "33" * 16 + "\nVERSION=0x20\n")
    key_file.chmod(0o600)
    env = {"CARDSHIELD_GP_KEY": OTHER, "CARDSHIELD_GP_KEY_FILE": str(key_file)}
    assert resolve_keys(key="AA" * 16, environ=env).enc == bytes([0xAA]) * 16
    assert resolve_keys(environ=env).enc == bytes.fromhex(OTHER)
    from_file = resolve_keys(environ={"CARDSHIELD_GP_KEY_FILE": str(key_file)})
    assert (from_file.mac, from_file.version) == (b"\x22" * 16, 0x20)


def test_key_file_readable_by_others_is_refused(tmp_path):
    key_file = tmp_path / "card.keys"
    key_file.write_text("KEY=" + OTHER + "\n")
    key_file.chmod(0o644)
    with pytest.raises(GPKeyError, match="chmod 600"):
        resolve_keys(key_file=str(key_file), environ={})


def test_keys_never_appear_in_their_text():
    keys = resolve_keys(key=OTHER, environ={})
    assert OTHER.lower() not in repr(keys).lower() and OTHER not in str(keys)


@pytest.mark.parametrize("bad,message", [("1234", "16, 24 or 32"), ("zz" * 16, "hexadecimal")])
def test_malformed_key_named(bad, message):
    with pytest.raises(GPKeyError, match=message):
        resolve_keys(key=bad, environ={})
