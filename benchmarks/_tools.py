"""The command lines of each benchmarked tool (safehold, restic, borg) behind one small interface.

A ``Tool`` builds the argv for init, backup, restore and check of one repository, and the environment
that keeps the password and every cache inside the run's work directory. The runner times whatever
these return; nothing here runs a timed command itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PASSWORD = "benchmark-password"  # a throwaway repository password, not a secret


@dataclass
class Tool:
    """One tool under test. ``cache`` holds its caches and config for this run (removed afterwards)."""

    name: str
    exe: str
    cache: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def available(self) -> bool:
        return bool(shutil.which(self.exe))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "BORG_", "SAFEHOLD_"))}
        env["XDG_CACHE_HOME"] = str(self.cache / "xdg-cache")
        env["XDG_CONFIG_HOME"] = str(self.cache / "xdg-config")
        env.update(self.extra_env)
        return env

    def version(self) -> str:
        for flag in ("version", "--version"):
            try:
                res = subprocess.run(
                    [self.exe, flag], check=False, capture_output=True, text=True, env=self.env(), timeout=60
                )
            except (OSError, subprocess.TimeoutExpired):
                continue
            if res.returncode == 0 and res.stdout.strip():
                return res.stdout.strip().splitlines()[0]
        return "unknown"

    def init(self, repo: Path) -> list[str]:
        raise NotImplementedError

    def backup(self, repo: Path, src: Path) -> list[str]:
        raise NotImplementedError

    def backup_timed(self, repo: Path, src: Path, first_read: Path) -> tuple[list[str], dict[str, str]]:
        """argv and environment of a backup that also notes when it first reads a file (where the tool
        can tell; ``first_read`` then holds the seconds from process start)."""
        return self.backup(repo, src), self.env()

    def restore(self, repo: Path, target: Path) -> tuple[list[str], Path | None]:
        """argv and working directory of a full restore of the latest snapshot into ``target``."""
        raise NotImplementedError

    def check(self, repo: Path) -> list[str]:
        raise NotImplementedError


#: The newest restic Debian ships (trixie), unpacked into a private prefix so that it does not replace
#: the system's: ``apt-get download restic`` with trixie in a private sources list, then
#: ``dpkg-deb -x restic_*.deb /opt/restic-new`` (see benchmarks/README.md). ``$RESTIC_NEW`` overrides.
RESTIC_NEW = "/opt/restic-new/usr/bin/restic"


class Restic(Tool):
    def __init__(self, cache: Path, name: str = "restic", exe: str = "restic") -> None:
        super().__init__(name, exe, cache, {"RESTIC_PASSWORD": PASSWORD})

    def init(self, repo: Path) -> list[str]:
        return [self.exe, "-r", str(repo), "init"]

    def backup(self, repo: Path, src: Path) -> list[str]:
        return [self.exe, "-r", str(repo), "backup", str(src)]

    def restore(self, repo: Path, target: Path) -> tuple[list[str], Path | None]:
        return [self.exe, "-r", str(repo), "restore", "latest", "--target", str(target)], None

    def check(self, repo: Path) -> list[str]:
        return [self.exe, "-r", str(repo), "check", "--read-data"]


class ResticNew(Restic):
    def __init__(self, cache: Path) -> None:
        super().__init__(cache, "restic-new", os.environ.get("RESTIC_NEW", RESTIC_NEW))


class Borg(Tool):
    def __init__(self, cache: Path) -> None:
        super().__init__(
            "borg", "borg", cache,
            {"BORG_PASSPHRASE": PASSWORD, "BORG_BASE_DIR": str(cache / "borg-base"),
             "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"},
        )  # fmt: skip

    def init(self, repo: Path) -> list[str]:
        return [self.exe, "init", "-e", "repokey", str(repo)]

    def backup(self, repo: Path, src: Path) -> list[str]:
        return [self.exe, "create", "--compression", "zstd,3", f"{repo}::b{{now:%Y%m%dT%H%M%S.%f}}", str(src)]

    def restore(self, repo: Path, target: Path) -> tuple[list[str], Path | None]:
        # borg extract needs an archive name: looking it up is not part of the timed restore.
        res = subprocess.run(
            [self.exe, "list", "--last", "1", "--short", str(repo)],
            capture_output=True, text=True, env=self.env(), check=True,
        )  # fmt: skip
        return [self.exe, "extract", f"{repo}::{res.stdout.strip()}"], target

    def check(self, repo: Path) -> list[str]:
        return [self.exe, "check", "--verify-data", str(repo)]


class Safehold(Tool):
    """The CLI contract: ``safehold --repo REPO init | --json backup PATH | restore latest --target DIR |
    check --read-data``, password from SAFEHOLD_PASSWORD, the executable next to ``sys.executable``."""

    def __init__(self, cache: Path) -> None:
        exe = str(Path(sys.executable).parent / "safehold")
        super().__init__("safehold", exe, cache, {"SAFEHOLD_PASSWORD": PASSWORD})

    def available(self) -> bool:
        if not os.access(self.exe, os.X_OK):
            return False
        compile_bytecode()
        return True

    def init(self, repo: Path) -> list[str]:
        return [self.exe, "--repo", str(repo), "init"]

    def backup(self, repo: Path, src: Path) -> list[str]:
        # --json is a global option of the safehold CLI (before the command), not one of ``backup``.
        return [self.exe, "--repo", str(repo), "--json", "backup", str(src)]

    def backup_timed(self, repo: Path, src: Path, first_read: Path) -> tuple[list[str], dict[str, str]]:
        launcher = str(Path(__file__).resolve().parent / "_first_read.py")
        argv = self.backup(repo, src)
        return [sys.executable, launcher, *argv[1:]], {
            **self.env(),
            "SAFEHOLD_BENCH_FIRST_READ": str(first_read),
        }

    def restore(self, repo: Path, target: Path) -> tuple[list[str], Path | None]:
        return [self.exe, "--repo", str(repo), "restore", "latest", "--target", str(target)], None

    def check(self, repo: Path) -> list[str]:
        return [self.exe, "--repo", str(repo), "check", "--read-data"]


def compile_bytecode() -> None:
    """Write the bytecode of safehold's modules, as installing a package does (pip, Debian's packages).

    A checkout run from its source folder with ``PYTHONDONTWRITEBYTECODE`` set (as some CI and sandbox
    environments have it) would otherwise compile every module it imports again in every timed command,
    about 0.3 s of start-up that no installed copy pays.
    """
    import compileall

    import safehold

    compileall.compile_dir(str(Path(safehold.__file__).parent), quiet=2)


TOOL_ORDER = ("safehold", "restic", "restic-new", "borg")
_CLASSES: dict[str, type[Tool]] = {
    "safehold": Safehold, "restic": Restic, "restic-new": ResticNew, "borg": Borg,
}  # fmt: skip


def make_tool(name: str, cache: Path) -> Tool:
    """The tool called ``name`` (one of TOOL_ORDER) with its caches under ``cache``."""
    try:
        return _CLASSES[name](cache)  # type: ignore[call-arg]
    except KeyError:
        raise ValueError(f"unknown tool {name!r}; known: {', '.join(TOOL_ORDER)}") from None


def find_restored(target: Path, src: Path, marker: Path) -> Path | None:
    """Where in ``target`` a restore put the tree backed up from ``src``.

    restic and borg keep the absolute path (``target/<src without leading />``); other layouts are
    found by looking for ``marker`` (a path relative to the tree root) at most six levels down.
    """
    for cand in (target / src.relative_to(src.anchor), target / src.name, target):
        if (cand / marker).exists():
            return cand
    base_depth = len(target.parts)
    for dirpath, dirs, _files in os.walk(target):
        if (Path(dirpath) / marker).exists():
            return Path(dirpath)
        if len(Path(dirpath).parts) - base_depth >= 6:
            dirs.clear()
    return None
