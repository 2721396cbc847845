"""Packaging of tools/: runtime dependencies apart from the test, bench and e2e extras, every
imported package declared in the right group, the whole tree locked by hash, the licence."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
PROJECT = tomllib.loads((TOOLS / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(text) for text in PROJECT["dependencies"]]
EXTRAS = {name: [Requirement(text) for text in texts] for name, texts in PROJECT["optional-dependencies"].items()}
TEST_ONLY = {"pytest", "playwright", "schemathesis", "pkilint", "matplotlib", "httpx"}
# Code that may use an extra: the package (or tests/) that only runs with it installed.
EXTRA_USERS = {"bench": [TOOLS / "cardshield" / "bench"], "test": [ROOT / "tests"], "e2e": [ROOT / "tests"]}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _third_party_imports(directory: Path) -> dict[str, set[Path]]:
    """Top-level modules imported by the .py files under directory that are neither stdlib nor ours."""
    found: dict[str, set[Path]] = {}
    for path in directory.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "cardshield":
                    found.setdefault(top, set()).add(path)
    return found


def _declared_groups(module: str) -> set[str]:
    distributions = {_norm(name) for name in packages_distributions().get(module, [])}
    groups = {"runtime"} if distributions & {_norm(r.name) for r in RUNTIME} else set()
    groups |= {extra for extra, reqs in EXTRAS.items() if distributions & {_norm(r.name) for r in reqs}}
    return groups


def test_runtime_dependencies_hold_no_test_tool_and_the_extras_exist():
    assert {_norm(r.name) for r in RUNTIME}.isdisjoint(TEST_ONLY)
    assert {"test", "bench", "e2e"} <= set(EXTRAS)
    assert {_norm(r.name) for reqs in EXTRAS.values() for r in reqs} >= TEST_ONLY


def test_every_package_imported_by_the_tools_is_declared_in_the_right_group():
    wrong = []
    for module, users in sorted(_third_party_imports(TOOLS / "cardshield").items()):
        groups = _declared_groups(module)
        if "runtime" in groups:
            continue
        allowed = [extra for extra in groups if all(any(user.is_relative_to(d) for d in EXTRA_USERS.get(extra, []))
                                                     for user in users)]
        if not allowed:
            wrong.append(f"{module} (imported by {sorted(str(u.relative_to(ROOT)) for u in users)}; "
                         f"declared in {sorted(groups) or 'nothing'})")
    assert not wrong, "declare these in tools/pyproject.toml dependencies:\n" + "\n".join(wrong)


def test_every_package_the_tests_import_is_declared():
    local = {path.stem for path in (ROOT / "tests").rglob("*")} | {"tests"}  # test modules and packages
    missing = [module for module in _third_party_imports(ROOT / "tests")
               if module not in local and not _declared_groups(module)]
    assert not missing, f"declare in tools/pyproject.toml (the test extra): {missing}"


def _lock() -> dict[str, tuple[str, list[str]]]:
    text = (TOOLS / "requirements.lock").read_text()
    entries = {}
    for match in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)", text, re.M):
        entries[_norm(match[1])] = (match[2], re.findall(r"sha256:([0-9a-f]{64})", match[3]))
    return entries


@pytest.mark.parametrize("requirement", [*RUNTIME, *(r for reqs in EXTRAS.values() for r in reqs)], ids=str)
def test_each_declared_dependency_is_pinned_and_locked_by_hash(requirement):
    pins = [spec for spec in requirement.specifier if spec.operator == "=="]
    assert pins, f"{requirement} is not pinned with =="
    version, hashes = _lock().get(_norm(requirement.name), (None, []))
    assert version == pins[0].version, f"{requirement.name}: tools/requirements.lock has {version}; regenerate it"
    assert hashes, f"{requirement.name} has no hash in tools/requirements.lock"


def test_every_lock_entry_has_a_hash_so_pip_require_hashes_accepts_it():
    text = (TOOLS / "requirements.lock").read_text()
    pinned = re.findall(r"^[A-Za-z0-9_.-]+==\S+", text, re.M)
    assert len(pinned) == len(_lock()) > 50


def test_the_setup_reinstalls_when_the_lock_changes(tmp_path, monkeypatch):
    from cardshield import paths
    from cardshield.setup import venv

    for name in venv.STAMPED:
        (tmp_path / name).write_bytes((TOOLS / name).read_bytes())
    monkeypatch.setattr(paths, "TOOLS_DIR", tmp_path)
    before = venv._wanted_stamp()
    (tmp_path / "requirements.lock").write_text((TOOLS / "requirements.lock").read_text() + "\n# changed\n")
    assert venv._wanted_stamp() != before


def test_licence_is_apache_2_and_declared():
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert PROJECT["license"] == "Apache-2.0"
    for key in ("description", "requires-python", "authors", "classifiers", "keywords"):
        assert PROJECT.get(key), key
