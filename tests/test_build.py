"""The applet build: javac + subset check always; a CAP only with a Java Card SDK."""

import os
import zipfile

import pytest

from cardshield import paths
from cardshield.build.converter import converter_aid
from cardshield.build.pipeline import build
from cardshield.build.sdk import SdkError, find_sdk
from cardshield.config import load_applet_config


def test_without_sdk_the_applet_is_checked_and_no_cap_is_claimed(monkeypatch, capsys):
    monkeypatch.delenv("JC_HOME", raising=False)
    result = build()
    config = load_applet_config()
    assert (result.applet_classes / (config.applet_class.replace(".", "/") + ".class")).exists()
    assert result.cap is None and not paths.CAP_FILE.exists()
    assert "no CAP file produced" in capsys.readouterr().err


def test_a_wrong_jc_home_is_refused_before_any_work(tmp_path):
    with pytest.raises(SdkError, match="not a Java Card 3.x SDK"):
        build(tmp_path)


def test_converter_aid_syntax():
    assert converter_aid(bytes.fromhex("F04341")) == "0xF0:0x43:0x41"


@pytest.mark.skipif(not os.environ.get("JC_HOME"), reason="needs a Java Card SDK in JC_HOME")
def test_sdk_build_makes_a_verified_cap_with_the_configured_aids():
    result = build(development_load_file=False)
    config = load_applet_config()
    assert result.cap == paths.CAP_FILE and result.load_file_size > 0
    with zipfile.ZipFile(result.cap) as cap:
        header = next(cap.read(name) for name in cap.namelist() if name.endswith("/Header.cap"))
    assert config.package_aid in header  # Header component carries the package AID (JCVM 6.3)
    assert find_sdk() is not None
