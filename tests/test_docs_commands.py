"""Every command line of README.md and docs/*.md, run as printed in a plain shell (no .venv
on PATH, no PYTHONPATH), so the docs cannot drift from the tools.

A command line is a line of a fenced or indented code block whose first word is a shell
command (RULES below). Each one must match a rule, which says how it is checked:
- run: for real, in the order of its block, in one shell (state in temporary directories);
- help: it needs what this machine cannot give a test (a physical card, a Java Card SDK, a
  long-running server or campaign, files of the user's), or it is a synopsis with
  placeholders: `COMMAND --help` must succeed and list every --flag the line uses. The
  reason is in the rule; long ones are run for real by the test named there;
- forbidden: a form that does not work as printed (the message says which form does).
A new command line without a rule fails this test: add the rule with its reason.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_WORDS = {"./cardshield", "cardshield", "python", "python3", ".venv/bin/cardshield", ".venv/bin/python",
               "eval", "export", "opensc-tool", "ant", "inv", "invoke", "openssl", "curl", "pcsc_scan", "printf",
               "touch", "chmod", "mkdir"}

# (pattern on the line, kind, reason); the first match decides.
RULES: list[tuple[str, str, str]] = [
    (r"^(python3?|cardshield) ", "forbidden",
     "outside .venv only ./cardshield (or .venv/bin/cardshield) works as printed"),
    (r"^ant plan\b", "run", "prints what `ant` would run; needs no SDK and no ant-javacard jar"),
    (r"^\.venv/bin/cardshield attestation-ca (init|show|import)\b", "run", "needs no card: run for real"),
    (r"\[|\.\.\.|\bAID\b|\bDIR\b|\bNAME\b|CARD_ID|PAYMENT_ID|/path/to|\bR\b|\bF\b|\bCAP\b|0f3a",
     "help", "a synopsis or placeholders (DIR, NAME, [--option], ...): filled in by the reader"),
    (r"^\./cardshield test -- -k \w+$", "run", "a small selection of the suite: run for real"),
    (r"^\./cardshield test -- tests/applet --card-profile \w+$", "help",
     "the applet suite on a strict profile: tests/robustness/test_applet_suite_on_strict_card.py runs it as printed"),
    (r"^\./cardshield (demo|test)$", "help", "the demo and the whole suite: tests/e2e/test_demo.py and CI run them"),
    (r"--reader|perso install|^\./cardshield (info|install|list|uninstall)\b|gp (lock|unlock)-card", "help",
     "needs a physical card in a reader (the virtual card path is tests/gp, tests/perso)"),
    (r"perso (compile|certify|receipts) ", "help",
     "needs the user's script, or the report of a run on a card (tests/perso runs them on the virtual card)"),
    (r"^openssl verify .*card-attestation\.pem", "help", "checks the certificate a card run wrote just before"),
    (r"^JC_HOME=|^ant\b", "help", "needs a Java Card SDK; build.xml is checked by tests/test_build_xml.py"),
    (r"^\./cardshield fuzz\b", "help", "a 100,000-case campaign; tests/robustness/test_fuzz.py runs 20,000"),
    (r"^\./cardshield bench\b", "help", "benchmarks take minutes and rewrite docs/benchmarks.md (`inv bench`)"),
    (r"^\./cardshield server run\b|^\./cardshield terminal serve\b|demo --browser", "help",
     "serves until stopped, on a fixed port (tests/server, tests/terminal start their own)"),
    (r"^\./cardshield terminal (enroll|pay)\b", "help", "needs a card and a running server (tests/terminal)"),
    (r"^export CARDSHIELD_TERMINAL_TOKEN=\.\.\.", "help", "a placeholder token"),
    (r"^export CARDSHIELD_TERMINAL_TOKEN=\$\(", "help", "needs `./cardshield server init` first (the README's "
     "server block runs init and client for real)"),
    (r"^\./cardshield server cards (import|revoke)\b", "help",
     "needs the record file a personalization run on a card writes (`perso run --record`); tests/server import them"),
    (r"^\./cardshield (attestation-ca (init|show)|server (trust-attestation-ca|user|cards list))\b", "run",
     "needs no card: run for real"),
    (r"^\./cardshield (build|server (init|client|clients|migrate))\b|^eval |^\.venv/bin/cardshield card send"
     r"|^opensc-tool --list-readers|^\./cardshield sim", "run",
     "needs no card: run for real"),
]


@dataclass(frozen=True)
class DocCommand:
    path: Path
    line: int
    block: int
    text: str  # without the trailing comment

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.text}"


def _strip_comment(line: str) -> str:
    return re.split(r"\s+#\s", line, maxsplit=1)[0].strip()


def extract(path: Path) -> list[DocCommand]:
    """Command lines of fenced (```) and indented (4 spaces after a blank line) code blocks."""
    commands: list[DocCommand] = []
    lines = path.read_text().splitlines()
    fenced = indented = False
    block = 0
    pending = ""
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            fenced = not fenced
            block += 1
            continue
        if not fenced:
            if line.startswith("    ") and (indented or number == 1 or not lines[number - 2].strip()):
                if not indented:
                    block += 1
                indented = True
            elif line.strip():
                indented = False
        if not (fenced or indented):
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        words = text.split()
        first = next((word for word in words if not re.match(r"^[A-Z_]+=", word)), "")
        if words and first in SHELL_WORDS:
            commands.append(DocCommand(path, number, block, _strip_comment(text)))
    return commands


# A block that starts the private virtual card is a walk-through: every line runs for real.
WALKTHROUGH = re.compile(r"^eval \"\$\(\./cardshield sim\b")


def classify(command: DocCommand) -> tuple[str, str]:
    first = next(c for c in ALL_BY_BLOCK[(command.path, command.block)])
    if WALKTHROUGH.match(first.text) and not re.match(RULES[0][0], command.text):
        return "run", "a walk-through on a private virtual card: run for real"
    for pattern, kind, reason in RULES:
        if re.search(pattern, command.text):
            return kind, reason
    return "unclassified", "add a rule to tests/test_docs_commands.py"


ALL = [command for path in DOCS for command in extract(path)]
ALL_BY_BLOCK: dict[tuple[Path, int], list[DocCommand]] = {}
for _command in ALL:
    ALL_BY_BLOCK.setdefault((_command.path, _command.block), []).append(_command)


def plain_shell_env(tmp_path: Path) -> dict[str, str]:
    """A user's shell: no .venv on PATH, no PYTHONPATH; state of the run in tmp_path."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PCSCLITE_CSOCK_NAME", "CARDSHIELD_READER")}
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep)
                                  if not part.startswith(str(ROOT / ".venv")))
    env["CARDSHIELD_SERVER_DIR"] = str(tmp_path / "server")
    env["CARDSHIELD_SIM_DIR"] = str(tmp_path / "sim")
    env.pop("CARDSHIELD_DATABASE_URL", None)
    return env


def test_every_documented_command_line_is_classified():
    assert len(ALL) > 30, "the extractor found too few command lines"
    unclassified = [str(command) for command in ALL if classify(command)[0] == "unclassified"]
    assert not unclassified, "command lines without a rule:\n" + "\n".join(unclassified)


def test_no_documented_command_line_needs_a_form_that_does_not_work():
    forbidden = [f"{command}  ({classify(command)[1]})" for command in ALL if classify(command)[0] == "forbidden"]
    assert not forbidden, "\n".join(forbidden)


HELP = [command for command in ALL if classify(command)[0] == "help"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def _help_argv(text: str) -> list[str] | None:
    """`./cardshield` and the line's sub-commands (as argparse knows them) with --help: values,
    positionals and placeholders dropped, since argparse checks a positional before --help.
    None if the line is not a cardshield command."""
    from cardshield.cli import build_parser
    from cardshield.taskrunner import SHORTCUTS

    inner = re.search(r"\$\((.*)\)", text)  # export X=$(COMMAND)
    text = inner.group(1) if inner else text
    words = [word for word in shlex.split(re.sub(r"\[[^\]]*\]", " ", text)) if not re.match(r"^[A-Z_]+=", word)]
    if not words or words[0] not in ("./cardshield", ".venv/bin/cardshield"):
        return None
    if len(words) < 2:
        return [*words, "--help"]
    parser = build_parser()
    for word in SHORTCUTS.get(words[1], (words[1],)):  # `install` is `gp install`
        parser = _subparsers(parser).get(word, parser)
    path = [words[1]]
    for word in words[2:]:
        choices = _subparsers(parser)
        if word not in choices:
            break
        parser = choices[word]
        path.append(word)
    return [words[0], *path, "--help"]


@pytest.mark.parametrize("command", HELP, ids=str)
def test_command_lines_that_cannot_run_here_have_every_flag_they_use(command, tmp_path):
    argv = _help_argv(command.text)
    if argv is None:
        pytest.skip(f"not a cardshield command: {classify(command)[1]}")
    result = subprocess.run(argv, cwd=ROOT, env=plain_shell_env(tmp_path), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    for flag in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", command.text))):
        assert flag in result.stdout, f"{command}: {flag} is not an option of `{' '.join(argv)}`"


RUN_BLOCKS: dict[Path, dict[int, list[DocCommand]]] = {}
for _command in ALL:
    if classify(_command)[0] == "run":
        RUN_BLOCKS.setdefault(_command.path, {}).setdefault(_command.block, []).append(_command)


def shadow_root(directory: Path) -> Path:
    """A directory that looks like the repository root (its entries linked), so lines that
    write files (attestation-ca/, card.yaml, ...) write them here and not into the clone."""
    directory.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("var", ".git"):
            (directory / entry.name).symlink_to(entry)
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("path", list(RUN_BLOCKS), ids=lambda path: str(path.relative_to(ROOT)))
def test_command_lines_that_need_no_card_run_as_printed(path, tmp_path):
    """The card-free blocks of one document in order, each in one shell (a block's later lines
    use what earlier ones started or wrote); a virtual card a block started is stopped
    whatever happens."""
    shared = shadow_root(tmp_path / "root")
    for number, block in RUN_BLOCKS[path].items():
        # a walk-through is self-contained ("from the repository root"): it starts afresh
        cwd = shadow_root(tmp_path / f"walk-through-{number}") if WALKTHROUGH.match(block[0].text) else shared
        script = "set -euo pipefail\ntrap './cardshield sim --stop >/dev/null 2>&1 || true' EXIT\n"
        script += "\n".join(f"echo '>>> {command.line}'\n{command.text}" for command in block)
        result = subprocess.run(["bash", "-c", script], cwd=cwd, env=plain_shell_env(tmp_path), capture_output=True,
                                text=True, timeout=600)
        failed_at = re.findall(r">>> (\d+)", result.stdout)
        assert result.returncode == 0, (f"{path.name} line {failed_at[-1] if failed_at else '?'} failed (exit "
                                        f"{result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        assert "Traceback" not in result.stderr
