"""applet/applet.properties: the one place for AIDs and class names, validated."""

import pytest

from cardshield.config import ConfigError, load_applet_config

VALID = """# comment
package.name=org.cardshield.applet
package.aid=F0 43 41 52 44 53 48 4C 44
applet.class=org.cardshield.applet.CardShieldApplet
applet.aid=F04341524453484C4401
"""


def test_the_repository_file_matches_the_interface_contract():
    config = load_applet_config()
    assert config.package_aid == b"\xf0CARDSHLD"
    assert config.applet_aid == config.instance_aid == b"\xf0CARDSHLD\x01"
    assert config.javacard_target == "3.0.4"
    assert config.applet_class.startswith(config.package_name + ".")


def test_spaces_in_aids_are_accepted_and_instance_defaults_to_applet(tmp_path):
    path = tmp_path / "applet.properties"
    path.write_text(VALID)
    config = load_applet_config(path)
    assert config.package_aid.hex().upper() == "F04341524453484C44"
    assert config.instance_aid == config.applet_aid


@pytest.mark.parametrize(
    "change, message",
    [
        (("package.aid=F0 43 41 52 44 53 48 4C 44", "package.aid=F04341"), "5 to 16 bytes"),
        (("package.aid=F0 43 41 52 44 53 48 4C 44", "package.aid=F04341524453484C4"), "hex digits"),
        (("applet.aid=F04341524453484C4401", "applet.aid=A0000000620101"), "RID"),
        (("applet.aid=F04341524453484C4401", "applet.aid=F04341524453484C44"), "must differ"),
        (("applet.class=org.cardshield.applet.CardShieldApplet", "applet.class=other.Main"), "not in package"),
        (("applet.class=org.cardshield.applet.CardShieldApplet\n", ""), "missing applet.class"),
    ],
)
def test_misconfiguration_names_the_key(tmp_path, change, message):
    path = tmp_path / "applet.properties"
    path.write_text(VALID.replace(*change))
    with pytest.raises(ConfigError, match=message):
        load_applet_config(path)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_applet_config(tmp_path / "nope.properties")
