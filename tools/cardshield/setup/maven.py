"""Java dependencies from Maven Central, pinned by version AND sha256, copied into lib/.

`mvn dependency:copy` is the ordinary client (it honours the machine's Maven mirror and
proxy settings); the sha256 pin makes a changed artifact fail loudly instead of running.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cardshield import paths
from cardshield.console import step
from cardshield.setup import SetupError

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str
    sha256: str
    # Entries the jar must contain for the project to work with it.
    required_entries: tuple[str, ...] = ()

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.name}:{self.version}"

    @property
    def path(self) -> Path:
        return paths.LIB_DIR / f"{self.name}-{self.version}.jar"


# jcardsim (maintained fork): the Java Card API to compile against and the simulator
# the virtual card host drives. Its main jar shades BouncyCastle.
JCARDSIM = Artifact(
    "com.klinec",
    "jcardsim",
    "3.0.6.0",
    "db6de7ffde71651c45d00df7e160771685cec3e14e444bf36b796658d289942f",
    required_entries=(
        "com/licel/jcardsim/base/Simulator.class",
        "com/licel/jcardsim/remote/VSmartCard.class",
        "javacard/framework/Applet.class",
        "javacard/framework/APDU.class",
        "javacard/security/KeyPair.class",
        "javacardx/apdu/ExtendedLength.class",
        "javacardx/crypto/Cipher.class",
    ),
)

# ASM (OW2): the strict virtual card rewrites the applet's classes at load time so that its
# persistent writes go through the card's journal and tear points (docs/virtual-card.md).
ASM = Artifact(
    "org.ow2.asm",
    "asm",
    "9.7.1",
    "8cadd43ac5eb6d09de05faecca38b917a040bb9139c7edeb4cc81c740b713281",
    required_entries=("org/objectweb/asm/ClassReader.class", "org/objectweb/asm/ClassWriter.class"),
)

ARTIFACTS: tuple[Artifact, ...] = (JCARDSIM, ASM)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verify(artifact: Artifact) -> None:
    actual = _sha256(artifact.path)
    if actual != artifact.sha256:
        artifact.path.unlink()
        raise SetupError(
            f"{artifact.coordinates}: sha256 {actual} does not match the pinned {artifact.sha256}; "
            "the download was removed. If the version was changed on purpose, update the pin in "
            "tools/cardshield/setup/maven.py"
        )
    with zipfile.ZipFile(artifact.path) as jar:
        names = set(jar.namelist())
    absent = [entry for entry in artifact.required_entries if entry not in names]
    if absent:
        raise SetupError(f"{artifact.path} lacks {', '.join(absent)}")


def ensure_artifacts(artifacts: tuple[Artifact, ...] = ARTIFACTS) -> None:
    paths.LIB_DIR.mkdir(exist_ok=True)
    for artifact in artifacts:
        if artifact.path.exists() and _sha256(artifact.path) == artifact.sha256:
            continue
        mvn = shutil.which("mvn")
        if not mvn:
            raise SetupError("mvn not found (apt-get install maven)")
        with step(f"downloading {artifact.coordinates} from Maven Central"):
            result = subprocess.run(
                [mvn, "-B", "-q", "-Dstyle.color=never", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={artifact.coordinates}",
                 f"-DoutputDirectory={paths.LIB_DIR}", "-Dmdep.overWriteReleases=true"],
                stdin=subprocess.DEVNULL,
                cwd=paths.LIB_DIR,
                capture_output=True,
                text=True,
            )
            if result.returncode != 0 or not artifact.path.exists():
                raise SetupError(f"mvn could not fetch {artifact.coordinates}:\n{result.stdout}{result.stderr}")
        _verify(artifact)


def classpath(*artifacts: Artifact) -> str:
    return ":".join(str(artifact.path) for artifact in (artifacts or ARTIFACTS))
