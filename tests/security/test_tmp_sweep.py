"""Private temporary folders (``fsutil.private_dir``: the MySQL option file with the password, a copy of a
SQLite database, a git bundle) that a killed process left behind are removed by the next run, and the sweep
never touches anything else in the world-writable temporary folder: another user's folder or symlink of the
same name pattern, a folder whose process still runs, a fresh one, a folder that is not private. A symlink
inside a stale folder is removed, never followed (sentinel fingerprint)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from safehold.fsutil import STALE_AFTER, private_dir, sweep_private_dirs
from safehold.sources.mysql.client import Conn
from tests.security.sentinel import World

NOBODY = 65534
OLD = 1_500_000_000  # seconds: long before STALE_AFTER
KILLED = r"""
import os, signal, sys
from safehold.sources.mysql.client import Conn
with Conn("127.0.0.1", 3306, None, "root", "pa55word").option_file() as path:
    print(path, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the cleanup never runs
"""


@pytest.fixture
def tmpdir_(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private stand-in for /tmp (mode 1777, like /tmp) that tempfile and child processes use."""
    d = tmp_path / "tmp"
    d.mkdir()
    os.chmod(d, 0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    monkeypatch.setenv("TMPDIR", str(d))
    return d


def _age(path: Path) -> None:
    os.utime(path, (OLD, OLD), follow_symlinks=False)


def test_option_file_of_a_killed_dump_is_swept_by_the_next_run(tmpdir_: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", KILLED], check=False, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == -signal.SIGKILL
    left = Path(r.stdout.strip())
    assert left.read_text().count("pa55word") == 1  # the password file a killed run leaves behind
    folder = left.parent
    assert folder.parent == tmpdir_ and folder.name.startswith("safehold-my-")
    with Conn("127.0.0.1", 3306, None, "root", "x").option_file():
        assert folder.exists()  # too recent: a margin before it counts as stale
    _age(folder)
    with Conn("127.0.0.1", 3306, None, "root", "x").option_file() as path:
        assert not folder.exists()
        assert Path(path).parent.name.startswith(f"safehold-my-{os.getpid()}.")
    assert [p.name for p in tmpdir_.iterdir()] == []  # this run's own folder is gone too


@pytest.mark.skipif(os.geteuid() != 0, reason="another user's folders need root to make")
def test_sweep_touches_only_our_stale_folders(tmpdir_: Path, world: World) -> None:
    dead = "safehold-my-999999999.1-abc123"  # no such process
    # ours, stale: removed, and a symlink inside it is removed, not followed
    stale = tmpdir_ / dead
    stale.mkdir(mode=0o700)
    (stale / "client.cnf").write_text("[client]\npassword=x\n")
    (stale / "link").symlink_to(world.outside / "etc")
    (stale / "sub").mkdir()
    (stale / "sub" / "deep").symlink_to(world.outside / "secret")
    _age(stale)
    keep: list[Path] = []
    # another user's folder and symlinks with names of the pattern (they can make those in /tmp)
    theirs = tmpdir_ / "safehold-my-999999999.2-abc123"
    theirs.mkdir(mode=0o700)
    (theirs / "file").write_text("theirs\n")
    os.chown(theirs / "file", NOBODY, NOBODY)
    os.chown(theirs, NOBODY, NOBODY)
    link_to_folder = tmpdir_ / "safehold-my-999999999.3-abc123"
    link_to_folder.symlink_to(world.outside / "etc")
    os.lchown(link_to_folder, NOBODY, NOBODY)
    roots_link = tmpdir_ / "safehold-my-999999999.4-abc123"
    roots_link.symlink_to(world.outside)
    # ours but: the process still runs (this one), fresh, not private, not our pattern
    with open(f"/proc/{os.getpid()}/stat", "rb") as f:
        start = int(f.read().rsplit(b")", 1)[1].split()[19])
    live = tmpdir_ / f"safehold-my-{os.getpid()}.{start}-abc123"
    fresh = tmpdir_ / "safehold-my-999999999.5-abc123"
    public = tmpdir_ / "safehold-my-999999999.6-abc123"
    other = tmpdir_ / "safehold-my-notanumber-abc123"
    for p, mode in ((live, 0o700), (fresh, 0o700), (public, 0o755), (other, 0o700)):
        p.mkdir()
        os.chmod(p, mode)
        (p / "client.cnf").write_text("x\n")
    for p in (theirs, link_to_folder, roots_link, live, public, other):
        _age(p)
        keep.append(p)
    keep.append(fresh)
    world.before = world.fingerprint()

    assert sweep_private_dirs("safehold-my-") == [dead]
    assert not os.path.lexists(stale)
    assert all(os.path.lexists(p) for p in keep)
    assert (theirs / "file").read_text() == "theirs\n"
    world.assert_untouched()


def test_private_dir_is_private_and_named_for_its_process(tmpdir_: Path) -> None:
    with private_dir("safehold-test-") as d:
        assert d.parent == tmpdir_ and (d.stat().st_mode & 0o777) == 0o700
        assert d.name.startswith(f"safehold-test-{os.getpid()}.")
    assert not d.exists()
    assert STALE_AFTER >= 60
