"""A throw-away PostgreSQL cluster for the server tests (stdlib only).

`./cardshield test` starts one when CARDSHIELD_TEST_POSTGRES_URL is not given, so the
PostgreSQL variants of the server tests run on a fresh machine: Debian's postgresql is
installed by the setup module if missing, a cluster is created in a temp directory
(initdb; as the postgres user when running as root, since PostgreSQL refuses to run as
root), started on a private loopback port with its socket in that directory, and
removed at the end. Nothing else on the machine sees it or is disturbed by it.

    python -m cardshield.testing.postgres start   -> export lines (URL, directory)
    python -m cardshield.testing.postgres stop DIR
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cardshield.errors import UserError

URL_ENV = "CARDSHIELD_TEST_POSTGRES_URL"
DIR_ENV = "PG_TEST_DIR"
PORT_ENV = "CARDSHIELD_TEST_PG_PORT"  # a fixed port instead of a random private one
SERVER_USER = "postgres"  # the account Debian's package creates
PORT_TRIES = 5


class PostgresError(UserError):
    """The private cluster cannot be made or started; the message says why."""


@dataclass(frozen=True)
class Cluster:
    url: str
    directory: Path

    def exports(self) -> dict[str, str]:
        return {URL_ENV: self.url, DIR_ENV: str(self.directory)}


def bin_dir() -> Path | None:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else None


def _ensure_installed() -> Path:
    if bin_dir() is None:
        from cardshield.setup import SetupError, apt

        try:
            apt.ensure_packages(["postgresql"])
        except SetupError as exc:
            raise PostgresError(f"Debian's postgresql is not installed and could not be: {exc}") from None
    found = bin_dir()
    if found is None:
        raise PostgresError("postgresql is installed but no /usr/lib/postgresql/*/bin/pg_ctl was found")
    return found


def _as_server_user(command: list[str]) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool as the postgres account when root (initdb refuses root)."""
    if os.geteuid() == 0:
        command = ["su", SERVER_USER, "-s", "/bin/sh", "-c", shlex.join(command)]
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)


def start(*, durable: bool = False) -> Cluster:
    """Create and start a private cluster; trust authentication, loopback only. Tests
    run without fsync; `durable` (benchmarks) keeps PostgreSQL's crash-safe defaults."""
    bin_path = _ensure_installed()
    directory = Path(tempfile.mkdtemp(prefix="cardshield-pg."))
    if os.geteuid() == 0:
        shutil.chown(directory, SERVER_USER)
    data = directory / "data"
    init = _as_server_user([str(bin_path / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                            "--no-sync", "-E", "UTF8"])
    if init.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise PostgresError(f"initdb failed: {init.stdout}{init.stderr}")
    for _ in range(PORT_TRIES):  # a random private port; another one if it is taken
        port = int(os.environ.get(PORT_ENV) or random.randrange(55000, 55900))
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} "
                   f"-c fsync={'on' if durable else 'off'} -c max_connections=200")
        started = _as_server_user([str(bin_path / "pg_ctl"), "-D", str(data), "-l", str(directory / "log"),
                                   "-w", "-o", options, "start"])
        if started.returncode == 0:
            return Cluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", directory)
    log = (directory / "log").read_text(errors="replace") if (directory / "log").exists() else ""
    stop(directory)
    last_lines = "\n  ".join(log.strip().splitlines()[-3:])
    raise PostgresError(f"PostgreSQL did not start on a private port ({PORT_TRIES} tries); its log ends:\n  {last_lines}")


def stop(directory: Path) -> None:
    """Stop the cluster (fast shutdown) and delete it."""
    bin_path = bin_dir()
    if bin_path and (directory / "data" / "postmaster.pid").exists():
        _as_server_user([str(bin_path / "pg_ctl"), "-D", str(directory / "data"), "-m", "fast", "-w", "stop"])
    shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"] and len(argv) == 1:
        try:
            cluster = start()
        except PostgresError as exc:
            print(f"postgres: {exc}", file=sys.stderr)
            return 1
        for name, value in cluster.exports().items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if argv[:1] == ["stop"] and len(argv) == 2:
        stop(Path(argv[1]))
        return 0
    print("usage: python -m cardshield.testing.postgres start | stop DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
