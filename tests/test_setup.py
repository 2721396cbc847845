"""The setup steps that can be checked without changing the machine."""

from cardshield.setup import apt, maven


def test_missing_packages_are_found_by_dpkg():
    assert apt.missing_packages(["pcscd", "cardshield-no-such-package"]) == ["cardshield-no-such-package"]


def test_every_needed_debian_package_is_installed_after_setup():
    assert apt.missing_packages(list(apt.PACKAGES)) == []


def test_jcardsim_jar_is_the_pinned_one_with_the_classes_we_use():
    maven.ensure_artifacts()  # verifies the sha256 and the required entries
    assert maven.JCARDSIM.path.exists()
