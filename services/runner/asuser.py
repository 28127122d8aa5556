"""``python -m services.runner.asuser USER ARGV...``: run ARGV as USER, started as root.

The supervisor starts every child through this when it runs as root, so no service keeps root's powers
(reading the others' keys, ``/proc/*/environ``, the whole disk). It drops the supplementary groups, the
group and the user, in that order, then:

- runs a Python module in this very interpreter (ARGV = ``python -m module ...``), or
- replaces itself with any other program (``os.execv``), keeping its pid for the supervisor.

Why the Python case does not simply ``exec`` as USER: the interpreter may live where USER cannot enter
(pyenv under ``/root``, mode 0700). Before dropping privileges this process opens each such directory of
``sys.path`` and reaches it through ``/proc/self/fd/N`` afterwards: a process may always follow its own
descriptors, and the permissions of the files and directories below still apply. USER gains the
interpreter's library and nothing else of that home.
"""

from __future__ import annotations

import os
import pwd
import runpy
import stat
import sys
from pathlib import Path


def traversable_by_others(path: Path) -> bool:
    """Whether a user with no special rights can enter ``path``: it and every ancestor searchable by
    "others"."""
    path = path.resolve()
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def readable_by_others(directory: Path) -> bool:
    return traversable_by_others(directory) and bool(directory.stat().st_mode & stat.S_IROTH)


def keep_import_paths_reachable() -> None:
    """Point every ``sys.path`` directory that others cannot reach at a descriptor opened while still root
    (and every already-imported package's ``__path__`` with it, for its submodules)."""
    moved: dict[str, str] = {}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and not readable_by_others(Path(entry)):
            fd = os.open(entry, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            moved[entry] = f"/proc/self/fd/{fd}"

    def move(path: str) -> str:
        for old, new in moved.items():
            if path == old or path.startswith(old + os.sep):
                return new + path[len(old) :]
        return path

    sys.path[:] = [move(p) for p in sys.path]
    for module in list(sys.modules.values()):
        paths = getattr(module, "__path__", None)
        if isinstance(paths, list):
            paths[:] = [move(p) for p in paths]
    sys.path_importer_cache.clear()


def drop_to(user: str) -> None:
    entry = pwd.getpwnam(user)
    if entry.pw_uid == 0:
        raise SystemExit(f"asuser: refusing to run as {user!r}, which is root")
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    # setuid(2) from root changes all three user ids; make sure none of root's survived.
    if 0 in os.getresuid() or 0 in os.getresgid():
        raise SystemExit("asuser: root privileges survived the switch")
    os.environ["HOME"] = entry.pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = user


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m services.runner.asuser USER PROGRAM [ARGS...]")
    user, program = argv[0], argv[1:]
    if program[:2] == [sys.executable, "-m"] and len(program) > 2:
        keep_import_paths_reachable()
        drop_to(user)
        sys.argv = [program[2], *program[3:]]
        runpy.run_module(program[2], run_name="__main__", alter_sys=True)
        return
    drop_to(user)
    os.execv(program[0], program)  # noqa: S606 - the program the supervisor was asked to run


if __name__ == "__main__":
    main(sys.argv[1:])
