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


def test_both_variants_are_built_and_only_the_default_imports_javacardx_apdu(monkeypatch, capsys):
    """The SIM build links on cards without the optional javacardx.apdu package: its class
    files must not name it. The default build keeps extended length (it must name it)."""
    from cardshield.build.jcsubset import check_no_package
    from cardshield.build.variants import DEFAULT, SIM

    monkeypatch.delenv("JC_HOME", raising=False)
    result = build()
    config = load_applet_config()
    applet_class = config.applet_class.replace(".", "/") + ".class"
    for variant in (DEFAULT, SIM):
        assert (result.variant_classes[variant.name] / applet_class).exists()
    assert check_no_package(result.variant_classes[SIM.name], ("javacardx/apdu/",), "SIM") == []
    imports = check_no_package(result.variant_classes[DEFAULT.name], ("javacardx/apdu/",), "default")
    assert [violation.class_name for violation in imports] == [config.applet_class.replace(".", "/")]
    err = capsys.readouterr().err
    assert "applet build 'default'" in err and "applet build 'sim'" in err


def test_the_checker_refuses_javacardx_apdu_in_the_sim_build(tmp_path, monkeypatch):
    """The build fails, naming the class, if the SIM build's sources ever import javacardx.apdu."""
    import dataclasses

    from cardshield.build import pipeline
    from cardshield.build.jcsubset import SubsetError
    from cardshield.build.variants import DEFAULT, SIM

    default_as_sim = dataclasses.replace(SIM, overlay=None, classes_dir=tmp_path / "classes")
    monkeypatch.setattr(pipeline, "VARIANTS", (DEFAULT, default_as_sim))
    monkeypatch.delenv("JC_HOME", raising=False)
    with pytest.raises(SubsetError, match="CardShieldApplet: refers to javacardx.apdu"):
        build(development_load_file=False)


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
    assert result.variant_caps["sim"].exists()  # the SIM build is converted and verified too
    with zipfile.ZipFile(result.cap) as cap:
        header = next(cap.read(name) for name in cap.namelist() if name.endswith("/Header.cap"))
    assert config.package_aid in header  # Header component carries the package AID (JCVM 6.3)
    assert find_sdk() is not None
