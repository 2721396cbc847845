"""Script parsing, key stores and compilation into a bundle that holds no secret."""
import json
import os

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cardshield.perso import bundle as bundle_mod
from cardshield.perso import compiler, keys, keystore, script as script_mod
from cardshield.perso import secure_messaging as sm

from . import vectors as v

PIN, PUK = "482913", "80417256"


@pytest.fixture
def store():
    return keystore.MappingKeyStore(
        {"ISSUER_MK": v.MASTER_KEY.hex(), "CARD_PIN": PIN, "CARD_PUK": PUK}, "test", "add {name}"
    )


@pytest.fixture
def server_key_file(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "server.pem"
    path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path, key.public_key().public_numbers()


FULL = script_mod.issuance_script(
    {"slot_config": {"slot": 1, "algorithm": "RSA-2048", "pin_per_signature": True, "server_signed_transactions": True}},
    {"slot_config": {"slot": 2, "algorithm": "RSA-2048"}},
    {"server_key": "server.pem"},
    issue_expect="9000")


def _compile(tmp_path, text, store, **opts):
    path = tmp_path / "card.yaml"
    path.write_text(text)
    scr = script_mod.load(path)
    return compiler.compile_script(scr, store, compiler.Options(card_id=v.CARD_ID, **opts), text)


def test_full_script_compiles_to_increasing_secured_commands(tmp_path, store, server_key_file):
    b = _compile(tmp_path, FULL, store, first_counter=10)
    assert [s["action"] for s in b.steps] == [
        "set_pin", "set_puk", "slot_config", "slot_config", "server_key", "issue"]
    assert b.secured_counters == [10, 11, 12, 13, 14, 15]
    card = keys.diversify(keys.software_master(v.MASTER_KEY), 1, v.CARD_ID)
    plain = []
    last = 9
    for step in b.steps:
        apdu = bytes.fromhex(step["apdu"])
        data = apdu[7:-2] if apdu[4] == 0 else apdu[5:-1]  # without Lc and Le
        out = sm.unwrap(card, apdu[:4], data, last)
        last = out.counter
        plain.append((apdu[1], apdu[2], apdu[3], out.data))
    assert plain[0] == (0xE0, 1, 0, PIN.encode())
    assert plain[1] == (0xE0, 2, 0, PUK.encode())
    assert plain[2] == (0xE0, 3, 1, bytes([0x01, 0x03]))
    assert plain[3] == (0xE0, 3, 2, bytes([0x01, 0x00]))
    n = server_key_file[1].n.to_bytes(256, "big")
    assert plain[4][3] == b"\x7f\x49\x82\x01\x09\x81\x82\x01\x00" + n + b"\x82\x03\x01\x00\x01"
    assert plain[5] == (0xE2, 0, 0, b"")


def test_bundle_holds_no_secret_and_round_trips(tmp_path, store, server_key_file):
    b = _compile(tmp_path, FULL, store, scp80_tar=bytes.fromhex("435301"))
    text = b.to_json()
    card = keys.diversify(keys.software_master(v.MASTER_KEY), 1, v.CARD_ID)
    # Hex fields are searched for the secrets' byte encodings; every other text field for the
    # secrets as typed. (A bare digit string inside random hex would match by chance.)
    hex_secrets = [s.lower() for s in (PIN.encode().hex(), PUK.encode().hex(), v.MASTER_KEY.hex(),
                                       card.enc.hex(), card.mac.hex())]
    for value in _strings(json.loads(text)):
        is_hex = len(value) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in value)
        for secret in hex_secrets if is_hex else [PIN, PUK, *hex_secrets]:
            assert secret not in value.lower(), "a secret appears in the bundle"
    again = bundle_mod.from_json(text)
    assert again.steps == b.steps and again.card_id == v.CARD_ID
    assert json.loads(text)["steps"][0]["apdu"].startswith("84E00100")
    assert len(b.scp80["packets"]) == 6 and b.scp80["kic"] == "12"


def _strings(node):
    """Every string (keys and values) in a decoded JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, str):
        yield node


def test_scp80_export_carries_the_same_steps(tmp_path, store, server_key_file):
    from cardshield.perso import scp80
    b = _compile(tmp_path, FULL, store, scp80_tar=bytes.fromhex("435301"))
    card = keys.diversify(keys.software_master(v.MASTER_KEY), 1, v.CARD_ID)
    packets = b.scp80["packets"]
    decoded = [scp80.decode_command(card.enc, card.mac, bytes.fromhex(p["command_packet"])) for p in packets]
    assert [d.counter for d in decoded] == b.secured_counters
    assert decoded[0].data == bytes.fromhex("80E0010006") + PIN.encode()
    assert decoded[4].data[4] == 0 and len(packets[4]["sms_user_data"]) == 3  # extended APDU, 3 SMS
    assert decoded[5].data == bytes.fromhex("80E20000")


@pytest.mark.parametrize("text, message", [
    ("format: x\n", "format must be"),
    ("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 0\nsteps: [issue: ]\n", "key_version"),
    ("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 1\nsteps: [{set_pin: '1234'}]\n",
     "never its value"),
    ("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 1\nsteps: [{issue: }, {set_pin: P}]\n",
     "must come before issue"),
    ("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 1\nsteps: [{generate_key: {slot: 1}}]\n",
     "needs the PIN"),
    ("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 1\n"
     "steps: [{set_pin: P}, {generate_key: {slot: 1}}, {issue: }]\n", "only once issued"),
    ("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 1\n"
     "steps: [{issue: }, {generate_key: {slot: 1, pin: P}}, {set_pin: P}]\n", "must come before issue"),
    ("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 1\nsteps: [{slot_config: {slot: 3}}]\n",
     "slot must be one of"),
    ("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 1\nsteps: [{set_pin: P, expect: 9X00}]\n",
     "not hexadecimal"),
    ("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 1\nsteps: [{erase: }]\n", "unknown step"),
    ("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 1\n"
     "steps: [{server_key: {file: k.pem, type: ec-p384}}]\n", "type must be one of rsa-2048, ec-p256"),
    ("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 1\nsteps: [{server_key: {type: ec-p256}}]\n",
     "server_key takes"),
])
def test_script_errors_name_the_problem(text, message):
    with pytest.raises(script_mod.ScriptError, match=message):
        script_mod.parse(text)


def test_expect_accepts_lists_and_quoted_words():
    s = script_mod.parse("format: cardshield-perso/1\nissuer_master_key: MK\nkey_version: 1\n"
                         "steps: [{issue: , expect: ['9000', '6985']}]\n")
    assert s.steps[0].expect == (0x9000, 0x6985)


def test_bad_pin_value_is_reported_without_showing_it(tmp_path, server_key_file):
    bad = keystore.MappingKeyStore({"ISSUER_MK": v.MASTER_KEY.hex(), "CARD_PIN": "12a4",
                                    "CARD_PUK": PUK}, "test", "add {name}")
    with pytest.raises(script_mod.ScriptError) as err:
        _compile(tmp_path, FULL, bad)
    assert "PIN must be 4-12 decimal digits" in str(err.value) and "12a4" not in str(err.value)


def test_env_store_and_missing_secret_message():
    s = keystore.env_store({"CARDSHIELD_SECRET_CARD_PIN": "1234"})
    assert s.secret("CARD_PIN") == "1234"
    with pytest.raises(keystore.KeyStoreError, match="set CARDSHIELD_SECRET_CARD_PUK"):
        s.secret("CARD_PUK")


def test_file_store_requires_private_permissions(tmp_path):
    path = tmp_path / "secrets"
    path.write_text(f"# issuer secrets\nISSUER_MK = {v.MASTER_KEY.hex()}\nCARD_PIN = 1234\n")
    os.chmod(path, 0o644)
    with pytest.raises(keystore.KeyStoreError, match="chmod 600"):
        keystore.open_key_store(f"file:{path}")
    os.chmod(path, 0o600)
    s = keystore.open_key_store(f"file:{path}")
    assert s.secret("CARD_PIN") == "1234"
    assert s.master_cmac("ISSUER_MK")(b"x") == keys.software_master(v.MASTER_KEY)(b"x")
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(keystore.KeyStoreError, match="regular file"):
        keystore.open_key_store(f"file:{link}")


class _HsmLike:
    """Stands in for a PKCS#11 binding: computes CMAC without handing out the key."""
    def secret(self, name):
        return {"CARD_PIN": PIN}[name]

    def master_cmac(self, name):
        return keys.software_master(v.MASTER_KEY)


def make_hsm_like():
    return _HsmLike()


def test_hook_store_loads_a_factory():
    s = keystore.open_key_store(f"hook:{__name__}:make_hsm_like")
    card = keys.diversify(s.master_cmac("ISSUER_MK"), 1, v.CARD_ID)
    assert card.enc.hex().upper() == v.K_ENC
    with pytest.raises(keystore.KeyStoreError, match="cannot be loaded"):
        keystore.open_key_store("hook:no.such.module:f")


def test_master_key_format_is_checked():
    s = keystore.MappingKeyStore({"MK": "abcd"}, "test", "")
    with pytest.raises(keystore.KeyStoreError, match="32 hex digits"):
        s.master_cmac("MK")


def test_tampered_bundle_counters_are_rejected(tmp_path, store, server_key_file):
    doc = json.loads(_compile(tmp_path, FULL, store).to_json())
    doc["steps"][1]["counter"] = 1
    with pytest.raises(bundle_mod.BundleError, match="strictly increasing"):
        bundle_mod.from_json(json.dumps(doc))


def _por_for(card, tar, counter, status, response):
    """A PoR built independently from TS 31.115 4.3 with raw AES, as a card would send it."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms as alg, modes

    pad = -(5 + 1 + 1 + 8 + len(response)) % 16
    body_plain = counter.to_bytes(5, "big") + bytes([pad, status]) + response + bytes(pad)
    rpl = 1 + 3 + len(body_plain) + 8
    head = b"\x02\x71\x00" + rpl.to_bytes(2, "big") + b"\x12" + tar
    mac = cmac.CMAC(alg.AES(card.mac))
    mac.update(head + body_plain)
    cc = mac.finalize()[:8]
    plain = body_plain[:7] + cc + body_plain[7:]
    enc = Cipher(alg.AES(card.enc), modes.CBC(bytes(16))).encryptor()
    return head + enc.update(plain) + enc.finalize()


def test_cli_checks_a_proof_of_receipt(tmp_path, store, server_key_file, monkeypatch, capsys):
    from cardshield.cli import main

    b = _compile(tmp_path, FULL, store, scp80_tar=bytes.fromhex("435301"))
    path = tmp_path / "card.bundle.json"
    b.save(path)
    monkeypatch.setenv("CARDSHIELD_SECRET_ISSUER_MK", v.MASTER_KEY.hex())
    card = keys.diversify(keys.software_master(v.MASTER_KEY), 1, v.CARD_ID)
    good = _por_for(card, bytes.fromhex("435301"), 1, 0x00, b"\x01\x90\x00")
    assert main(["perso", "por", good.hex(), "--bundle", str(path)]) == 0
    assert "counter 1: PoR OK, 1 command(s), last status word 9000" in capsys.readouterr().out
    refused = _por_for(card, bytes.fromhex("435301"), 2, 0x02, b"")
    assert main(["perso", "por", refused.hex(), "--bundle", str(path)]) == 1
    assert "CNTR low" in capsys.readouterr().out
    forged = bytearray(good)
    forged[-1] ^= 1
    assert main(["perso", "por", bytes(forged).hex(), "--bundle", str(path)]) == 1
    assert "PoR refused" in capsys.readouterr().err


def _write_public(tmp_path, key, name):
    path = tmp_path / name
    path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def test_an_ec_bank_key_compiles_to_its_7f49_point(tmp_path, store):
    key = ec.generate_private_key(ec.SECP256R1())
    _write_public(tmp_path, key, "bank-ec.pem")
    text = script_mod.issuance_script({"server_key": {"file": "bank-ec.pem", "type": "ec-p256"}})
    b = _compile(tmp_path, text, store, first_counter=1)
    card = keys.diversify(keys.software_master(v.MASTER_KEY), 1, v.CARD_ID)
    step = next(s for s in b.steps if s["action"] == "server_key")
    apdu = bytes.fromhex(step["apdu"])
    plain = sm.unwrap(card, apdu[:4], apdu[5:-1] if apdu[4] else apdu[7:-2], 0).data
    point = key.public_key().public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)
    assert plain == b"\x7f\x49\x43\x86\x41" + point


@pytest.mark.parametrize("stated, actual, message", [
    ("ec-p256", "rsa", "holds an rsa-2048 key but the step says type ec-p256"),
    ("rsa-2048", "ec", "holds an ec-p256 key but the step says type rsa-2048"),
    ("ec-p256", "p384", "must be on P-256"),
])
def test_a_bank_key_of_another_type_is_refused_naming_both(tmp_path, store, stated, actual, message):
    key = {"rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
           "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
           "p384": lambda: ec.generate_private_key(ec.SECP384R1())}[actual]()
    _write_public(tmp_path, key, "bank.pem")
    text = script_mod.issuance_script({"server_key": {"file": "bank.pem", "type": stated}})
    with pytest.raises(script_mod.ScriptError, match=message):
        _compile(tmp_path, text, store)
