"""build.xml, the Ant release path for SDK holders, checked as far as a machine without an
Oracle Java Card SDK and without ant-javacard allows: the file parses and every property it
reads is defined; `ant -p` and the SDK-free `plan` target run; without a kit it stops with
the fix; with a stand-in kit (jcardsim's javacard API as the kit's API jar, an empty
tools.jar) the compile target builds the applet for real and the ant-javacard branch hands
a stand-in of the task (tests/ant_javacard_stub, same attribute names as ant-javacard
v25.12.01) exactly applet/applet.properties' values. Not covered: the conversion and
verification themselves, which need the real kit and jar."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from cardshield import paths
from cardshield.config import load_applet_config
from cardshield.setup import maven
from cardshield.setup.java import jdk_bin

ROOT = Path(__file__).resolve().parents[1]
BUILD_XML = ROOT / "build.xml"
ANT = shutil.which("ant")
needs_ant = pytest.mark.skipif(ANT is None, reason="ant is not installed (apt-get install ant)")


def _properties(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def ant(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([ANT, "-noinput", "-f", str(BUILD_XML), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_build_xml_parses_and_every_property_it_reads_is_defined():
    project = ET.parse(BUILD_XML).getroot()
    targets = {target.get("name"): target for target in project.iter("target")}
    assert {"plan", "check-sdk", "compile", "convert-sdk", "convert-ant-javacard", "cap", "clean"} <= set(targets)
    assert project.get("default") == "cap"
    # cap makes both CAPs: the default (extended length) and the SIM one (no javacardx.apdu)
    assert targets["cap"].get("depends") == "cap-default,cap-sim"
    assert targets["cap-default"].get("depends") == "convert-sdk,convert-ant-javacard"
    assert targets["cap-sim"].get("depends") == "compile-sim"
    # exactly one conversion branch runs, chosen by -Dant-javacard.jar
    assert targets["convert-sdk"].get("unless") == "use.ant-javacard"
    assert targets["convert-ant-javacard"].get("if") == "use.ant-javacard"
    taskdef = targets["convert-ant-javacard"].find("taskdef")
    assert taskdef.get("classname") == "pro.javacard.ant.JavaCard"

    defined = set(_properties(paths.APPLET_PROPERTIES))
    for element in project.iter():
        for attribute in ("name", "property", "to", "addproperty"):
            if element.tag in ("property", "condition", "available", "pathconvert", "length", "loadresource",
                               "converter-aid") and element.get(attribute):
                defined.add(element.get(attribute))
    defined |= {"ant-javacard.jar", "jc.home", "plan.package.aid", "plan.applet.aid", "package.aid.converter",
                "applet.aid.converter"}  # given with -D, or set by the converter-aid macro
    used = set(re.findall(r"\$\{([^}@]+)\}", BUILD_XML.read_text()))
    undefined = {name for name in used if not name.startswith("env.")} - defined
    assert not undefined, f"build.xml reads properties nobody defines: {sorted(undefined)}"


@needs_ant
def test_ant_lists_its_targets_and_plans_both_branches_without_an_sdk():
    listing = ant("-p")
    assert listing.returncode == 0 and "cap" in listing.stdout and "plan" in listing.stdout
    config = load_applet_config()
    plain = ant("plan")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "branch: the SDK converter via java" in plain.stdout
    converter_aid = ":".join(f"0x{byte:02X}" for byte in config.package_aid)
    assert f"{config.package_name} {converter_aid} {config.package_version}" in plain.stdout
    branch = ant("plan", "-Dant-javacard.jar=/opt/ant-javacard.jar")
    assert "branch: ant-javacard (/opt/ant-javacard.jar)" in branch.stdout


@needs_ant
def test_without_a_kit_ant_stops_and_says_how_to_give_one(tmp_path):
    result = ant("-Dbuild.dir=" + str(tmp_path / "ant"), "-Dcap.file=" + str(tmp_path / "x.cap"))
    assert result.returncode != 0
    assert "No Java Card SDK: set JC_HOME or pass -Djc.home=" in result.stdout + result.stderr
    assert not (tmp_path / "x.cap").exists()


@pytest.fixture
def stand_in_kit(tmp_path) -> Path:
    """A directory shaped like a Java Card 3.1 kit for what build.xml looks at: lib/tools.jar
    and lib/api_classic-3.0.4.jar (here jcardsim's jar, which holds the javacard.* API)."""
    if not maven.JCARDSIM.path.exists():
        pytest.skip("lib/ has no jcardsim (run ./cardshield setup)")
    kit = tmp_path / "kit"
    (kit / "lib").mkdir(parents=True)
    with zipfile.ZipFile(kit / "lib" / "tools.jar", "w"):
        pass
    shutil.copy(maven.JCARDSIM.path, kit / "lib" / f"api_classic-{load_applet_config().javacard_target}.jar")
    return kit


@pytest.fixture
def task_stub(tmp_path) -> Path:
    classes = tmp_path / "stub-classes"
    source = Path(__file__).parent / "ant_javacard_stub" / "pro" / "javacard" / "ant" / "JavaCard.java"
    subprocess.run([jdk_bin("javac"), "-nowarn", "-cp", "/usr/share/ant/lib/ant.jar", "-d", str(classes), str(source)],
                   check=True, capture_output=True)
    jar = tmp_path / "ant-javacard-stub.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        for path in classes.rglob("*.class"):
            archive.write(path, path.relative_to(classes))
    return jar


@needs_ant
def test_the_sim_build_compiles_without_javacardx_apdu(tmp_path, stand_in_kit):
    """ant compile-sim: applet/src with applet/variants/sim's CardShieldApplet in place: the
    class files name no javacardx.apdu (the default build's applet class does)."""
    from cardshield.build.jcsubset import check_no_package

    result = ant(f"-Djc.home={stand_in_kit}", f"-Dbuild.dir={tmp_path / 'ant'}", "compile-sim", "compile")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert check_no_package(tmp_path / "ant" / "classes-sim", ("javacardx/apdu/",), "sim") == []
    assert check_no_package(tmp_path / "ant" / "classes", ("javacardx/apdu/",), "default") != []


@needs_ant
def test_ant_javacard_branch_compiles_the_applet_and_passes_applet_properties(tmp_path, stand_in_kit, task_stub):
    config = load_applet_config()
    cap = tmp_path / "out" / "cardshield.cap"
    cap.parent.mkdir()
    result = ant(f"-Djc.home={stand_in_kit}", f"-Dant-javacard.jar={task_stub}", f"-Dbuild.dir={tmp_path / 'ant'}",
                 f"-Dcap.file={cap}", "convert-ant-javacard")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Compiling" in result.stdout  # the compile target ran javac on applet/src
    applet_class = tmp_path / "ant" / "classes" / (config.applet_class.replace(".", "/") + ".class")
    assert applet_class.exists()
    assert applet_class.read_bytes()[6:8] == (51).to_bytes(2, "big")  # Java 7 class files, as converters want
    passed = _properties(Path(f"{cap}.stub"))
    assert passed["javacard.jckit"] == str(stand_in_kit)
    assert passed["cap.targetsdk"] == config.javacard_target
    assert passed["cap.aid"] == config.package_aid.hex().upper()
    assert passed["cap.package"] == config.package_name
    assert passed["cap.version"] == config.package_version
    assert passed["cap.output"] == str(cap)
    assert Path(passed["cap.classes"]) == tmp_path / "ant" / "classes"
    assert passed[f"applet.{config.applet_class}"] == config.applet_aid.hex().upper()
