"""requirements/*.txt: the hashed lock files every install reads, in step with the pins they were made from.

Offline: compares names and versions written in pyproject.toml, requirements/*.in and the locks (uv's
`# via` annotations name which lock entries come straight from an input), never asks an index.
"""

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "requirements"
PYPROJECT_INPUT = "retail-platform (pyproject.toml)"

# lock file -> (pyproject extras it is made from, or None for its requirements/<name>.in; lock it is
# constrained to). Keep in step with the `lock` target of the Makefile.
LOCKED: dict[str, tuple[tuple[str, ...] | None, str | None]] = {
    "pip.txt": (None, None),
    "uv.txt": (None, None),
    "dev.txt": (("services", "platform", "dev"), None),
    "bench.txt": (("services", "platform", "dev", "bench"), "dev.txt"),
    "services.txt": (("services",), "dev.txt"),
    "platform.txt": (("platform",), "dev.txt"),
    "checkov.txt": (None, None),
}


@dataclass
class Entry:
    version: str
    hashes: int
    via: list[str] = field(default_factory=list)


def _parse_lock(path: Path) -> dict[NormalizedName, list[Entry]]:
    """Each requirement of a pip-compile style lock: its version, hash count and `# via` sources."""
    entries: dict[NormalizedName, list[Entry]] = {}
    current: Entry | None = None
    logical = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            source = line.lstrip("#").strip()
            if current is not None and source:
                current.via.append(source.removeprefix("via").strip())
            continue
        logical += " " + line.removesuffix("\\")
        if line.endswith("\\"):
            continue
        if logical.strip():
            spec, *options = logical.split(" --hash=")
            req = Requirement(spec.strip())
            (pin,) = req.specifier  # a lock holds one exact version per line
            assert pin.operator == "==", f"{path.name}: {spec.strip()!r} is not an exact pin"
            current = Entry(pin.version, sum(o.strip().startswith("sha256:") for o in options))
            entries.setdefault(canonicalize_name(req.name), []).append(current)
        logical = ""
    return entries


def _inputs(lock: str) -> dict[NormalizedName, str]:
    """The exact pins a lock is made from: pyproject.toml's extras or requirements/<name>.in."""
    extras, _ = LOCKED[lock]
    if extras is None:
        lines = (LOCKS / lock.replace(".txt", ".in")).read_text().splitlines()
        specs = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    else:
        optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        specs = [spec for extra in extras for spec in optional[extra]]
    pins: dict[NormalizedName, str] = {}
    for spec in specs:
        req = Requirement(spec)
        versions = [s.version for s in req.specifier if s.operator == "=="]
        assert len(versions) == 1, f"{spec!r}: the inputs of a lock pin exact versions"
        pins[canonicalize_name(req.name)] = versions[0]
    return pins


def _direct(lock: str, entries: dict[NormalizedName, list[Entry]]) -> set[NormalizedName]:
    source = PYPROJECT_INPUT if LOCKED[lock][0] is not None else f"-r requirements/{lock.replace('.txt', '.in')}"
    return {name for name, found in entries.items() if any(source in e.via for e in found)}


def test_every_environment_has_a_lock_and_nothing_else_lies_in_requirements() -> None:
    assert {p.name for p in LOCKS.glob("*.txt")} == set(LOCKED)
    assert {p.name for p in LOCKS.glob("*.in")} == {k.replace(".txt", ".in") for k, v in LOCKED.items() if v[0] is None}


@pytest.mark.parametrize("lock", sorted(LOCKED))
def test_lock_holds_exactly_the_input_pins_and_hashes_every_entry(lock: str) -> None:
    entries = _parse_lock(LOCKS / lock)
    pins = _inputs(lock)
    locked = {name: sorted({e.version for e in entries.get(name, [])}) for name in pins}
    stale = {name: (version, locked[name]) for name, version in pins.items() if locked[name] != [version]}
    assert not stale, f"input pin vs {lock} (run `make lock`): {stale}"
    # A dependency dropped from the inputs must leave the lock: the entries uv marks as coming straight
    # from the input are exactly the input's names.
    assert _direct(lock, entries) == set(pins), f"{lock} was made from other inputs (run `make lock`)"
    unhashed = [name for name, found in entries.items() for e in found if e.hashes == 0]
    assert not unhashed, f"{lock}: no hash for {unhashed}"


@pytest.mark.parametrize("lock", sorted(k for k, v in LOCKED.items() if v[1]))
def test_constrained_lock_has_the_versions_ci_tested(lock: str) -> None:
    """bench (same venv), services (the images) and platform (the policy pack) run dev's versions."""
    base = {name: {e.version for e in found} for name, found in _parse_lock(LOCKS / str(LOCKED[lock][1])).items()}
    entries = _parse_lock(LOCKS / lock)
    differ = {
        n: (sorted(v), sorted(base[n]))
        for n, found in entries.items()
        if n in base and (v := {e.version for e in found}) != base[n]
    }
    assert not differ, f"{lock} vs {LOCKED[lock][1]}: {differ}"


def test_installs_read_the_locks_with_hashes_required() -> None:
    """make (CI runs `make test`), the image and the policy pack install from the locks, never from loose pins."""
    makefile = (ROOT / "Makefile").read_text()
    assert "PIP_LOCKED := pip install -q --require-hashes --no-deps" in makefile
    for lock in ("pip.txt", "dev.txt", "bench.txt", "checkov.txt", "uv.txt"):
        assert re.search(rf"-m \$\(PIP_LOCKED\) -r requirements/{re.escape(lock)}$", makefile, re.M), lock
    # The one install that is not a lock: this repository itself, editable, without dependencies, built by the
    # locked setuptools (no build isolation, so nothing unlocked is fetched).
    own = "$(PY) -m pip install -q --no-deps --no-build-isolation -e ."
    assert makefile.count(own) == 1
    others = makefile.replace(own, "")
    assert not re.search(r"pip install .*(-e |==|--upgrade)", others), "an install outside the locks"
    dockerfile = (ROOT / "services" / "Dockerfile").read_text()
    installs = re.findall(r"pip install (.*) -r (\S+)", dockerfile)
    assert [lock for _, lock in installs] == ["pip.txt", "services.txt"]
    assert all("--require-hashes" in options and "--only-binary=:all:" in options for options, _ in installs)
    pack = [
        line
        for line in (ROOT / "policies" / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert pack == ["-r ../requirements/platform.txt"]
