"""Selector: gitignore-style excludes on absolute paths, tag files, one file system, errors, speed."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from safehold.engine.fs.patterns import PatternMatcher
from safehold.engine.fs.select import CACHEDIR_SIGNATURE, Selector, _match_prefix
from safehold.errors import ConfigError


def touch(path: Path, data: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def walk(sel: Selector, root: Path) -> list[str]:
    """Every selected path below root, relative, '/'-separated, dirs with a trailing slash."""
    out: list[str] = []
    rb = os.fsencode(root)

    def rec(d: bytes, st: os.stat_result, rel: str) -> None:
        for name, cst in sel.scan(d, st):
            crel = rel + os.fsdecode(name)
            if stat.S_ISDIR(cst.st_mode):
                out.append(crel + "/")
                rec(os.path.join(d, name), cst, crel + "/")
            else:
                out.append(crel)

    rec(rb, os.lstat(rb), "")
    return out


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = tmp_path / "www" / "app"
    for rel in [
        "index.php",
        "error.log",
        "keep.log",
        "logs/a.log",
        "logs/keep.log",
        "vendor/pkg/x.php",
        "src/vendor",  # a *file* named vendor: 'vendor/' must not exclude it
        "src/lib/vendor/y.php",
        "storage/cache/c1",
        "storage/app/u.jpg",
        "other/storage/cache/c2",
    ]:
        touch(root / rel)
    return root


def test_no_patterns_selects_everything_sorted_with_bytes_names(tmp_path: Path) -> None:
    touch(tmp_path / "b")
    touch(tmp_path / "a")
    (tmp_path / "d").mkdir()
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    with open(raw, "wb"):
        pass
    sel = Selector([tmp_path])
    entries = sel.scan(os.fsencode(tmp_path), os.lstat(tmp_path))
    assert [n for n, _ in entries] == [b"a", b"b", b"caf\xe9", b"d"]
    assert all(isinstance(n, bytes) for n, _ in entries)
    assert stat.S_ISDIR(entries[3][1].st_mode)
    assert sel.errors == []


def test_patterns_anywhere_negation_and_dir_only(app: Path) -> None:
    sel = Selector([app], excludes=["*.log", "!keep.log", "vendor/"])
    got = walk(sel, app)
    assert "error.log" not in got and "logs/a.log" not in got
    assert "keep.log" in got and "logs/keep.log" in got
    assert "vendor/" not in got and "src/lib/vendor/" not in got
    assert "src/vendor" in got  # a file is not matched by a dir-only pattern
    assert "index.php" in got and "storage/cache/c1" in got


def test_anchored_absolute_pattern(app: Path) -> None:
    anchored = "/" + str(app / "storage" / "cache").lstrip("/")
    got = walk(Selector([app], excludes=[anchored]), app)
    assert "storage/cache/" not in got
    assert "storage/app/u.jpg" in got
    assert "other/storage/cache/c2" in got  # anchored: only that one path


def test_mid_slash_pattern_is_anchored_at_root_and_double_star_is_not(app: Path) -> None:
    got = walk(Selector([app], excludes=["storage/cache"]), app)
    assert "storage/cache/c1" in got  # git semantics: anchored at '/', which is not here
    got = walk(Selector([app], excludes=["**/storage/cache"]), app)
    assert "storage/cache/" not in got and "other/storage/cache/" not in got
    assert "storage/app/u.jpg" in got


def test_excluded_dir_is_not_descended_so_nothing_below_is_reincluded(app: Path) -> None:
    got = walk(Selector([app], excludes=["logs/", "!keep.log"]), app)
    assert not any(p.startswith("logs") for p in got)
    assert "keep.log" in got


def test_wildcards_and_star_star(app: Path) -> None:
    got = walk(Selector([app], excludes=["/**/storage/*", "!/**/storage/app"]), app)
    assert "storage/cache/" not in got
    assert "storage/app/u.jpg" in got


def test_invalid_pattern_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Selector([tmp_path], excludes=["!"])
    with pytest.raises(ConfigError):
        Selector([tmp_path], exclude_if_present=["a/b"])


def test_root_selected(app: Path, tmp_path: Path) -> None:
    sel = Selector([app], excludes=["*.log", "/" + str(tmp_path / "www").lstrip("/") + "/skip/"])
    assert sel.root_selected(os.fsencode(app))
    assert not sel.root_selected(os.fsencode(app / "error.log"))
    (tmp_path / "www" / "skip" / "inner").mkdir(parents=True)
    assert not sel.root_selected(os.fsencode(tmp_path / "www" / "skip" / "inner"))  # ancestor excluded
    assert sel.errors == []
    assert not sel.root_selected(os.fsencode(tmp_path / "missing"))
    assert sel.errors and sel.errors[0][0].endswith(b"missing")


def test_exclude_caches_keeps_dir_and_tag_only(tmp_path: Path) -> None:
    touch(tmp_path / "cache" / "CACHEDIR.TAG", CACHEDIR_SIGNATURE + b"\n# a comment\n")
    touch(tmp_path / "cache" / "blob1")
    touch(tmp_path / "cache" / "sub" / "blob2")
    touch(tmp_path / "fake" / "CACHEDIR.TAG", b"Signature: not-the-right-one")
    touch(tmp_path / "fake" / "data")
    (tmp_path / "linked").mkdir()
    os.symlink(tmp_path / "cache" / "CACHEDIR.TAG", tmp_path / "linked" / "CACHEDIR.TAG")
    touch(tmp_path / "linked" / "data")
    got = walk(Selector([tmp_path], exclude_caches=True), tmp_path)
    assert "cache/" in got and "cache/CACHEDIR.TAG" in got
    assert not any(p.startswith("cache/blob") or p.startswith("cache/sub") for p in got)
    assert "fake/data" in got  # wrong signature: not a cache
    assert "linked/data" in got  # a symlinked tag does not count
    got = walk(Selector([tmp_path]), tmp_path)
    assert "cache/blob1" in got  # off by default


def test_exclude_if_present(tmp_path: Path) -> None:
    touch(tmp_path / "a" / ".nobackup")
    touch(tmp_path / "a" / "big.iso")
    (tmp_path / "a" / "d").mkdir()
    touch(tmp_path / "b" / "kept")
    got = walk(Selector([tmp_path], exclude_if_present=[".nobackup"]), tmp_path)
    assert got == ["a/", "a/.nobackup", "b/", "b/kept"]


def _devices_differ(a: str, b: str) -> bool:
    try:
        return os.stat(a).st_dev != os.stat(b).st_dev and os.path.ismount(b)
    except OSError:
        return False


@pytest.mark.skipif(not _devices_differ("/dev", "/dev/shm"), reason="/dev/shm is not a separate mount")
def test_one_file_system_keeps_mount_point_as_empty_dir_real_mount() -> None:
    sel = Selector([b"/dev"], one_file_system=True)
    entries = dict(sel.scan(b"/dev", os.lstat(b"/dev")))
    assert b"shm" in entries  # the mount point itself is kept
    assert sel.scan(b"/dev/shm", entries[b"shm"]) == []  # but not what is mounted there
    everything = Selector([b"/dev"])
    assert dict(everything.scan(b"/dev", os.lstat(b"/dev"))).keys() == entries.keys()


class _FakeEntry:
    def __init__(self, de: os.DirEntry[Any], dev: int | None) -> None:
        self.name = de.name
        self._de = de
        self._dev = dev

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        st = self._de.stat(follow_symlinks=follow_symlinks)
        if self._dev is None:
            return st
        fields = list(st)
        fields[2] = self._dev
        return os.stat_result(fields)


def test_one_file_system_simulated_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "local")
    touch(tmp_path / "bindmounted-file")
    touch(tmp_path / "mnt" / "inside")
    real_scandir = os.scandir
    other_dev = os.lstat(tmp_path).st_dev + 1000

    class _Scan:
        def __init__(self, fd: Any) -> None:
            self._it = real_scandir(fd)

        def __enter__(self) -> Iterator[_FakeEntry]:
            return (
                _FakeEntry(de, other_dev if de.name in ("mnt", "bindmounted-file") else None)
                for de in self._it
            )

        def __exit__(self, *a: object) -> None:
            self._it.close()

    monkeypatch.setattr(os, "scandir", _Scan)
    sel = Selector([tmp_path], one_file_system=True)
    entries = dict(sel.scan(os.fsencode(tmp_path), os.lstat(tmp_path)))
    assert set(entries) == {b"local", b"mnt"}  # other-device file left out, mount point kept
    assert sel.scan(os.fsencode(tmp_path / "mnt"), entries[b"mnt"]) == []
    off = Selector([tmp_path], one_file_system=False)
    assert set(dict(off.scan(os.fsencode(tmp_path), os.lstat(tmp_path)))) == {
        b"local",
        b"mnt",
        b"bindmounted-file",
    }


def test_errors_are_reported_not_raised(tmp_path: Path) -> None:
    seen: list[tuple[bytes, str]] = []
    sel = Selector([tmp_path], on_error=lambda p, m: seen.append((p, m)))
    touch(tmp_path / "file")
    missing = os.fsencode(tmp_path / "gone")
    assert sel.scan(missing, os.lstat(tmp_path)) == []
    assert sel.scan(os.fsencode(tmp_path / "file"), os.lstat(tmp_path)) == []
    assert len(sel.errors) == 2 and seen == sel.errors
    assert sel.errors[0][0] == missing and "No such file" in sel.errors[0][1]
    assert "Not a directory" in sel.errors[1][1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory")
def test_unreadable_directory_is_an_error(tmp_path: Path) -> None:
    d = tmp_path / "locked"
    d.mkdir()
    os.chmod(d, 0)
    try:
        sel = Selector([tmp_path])
        assert sel.scan(os.fsencode(d), os.lstat(d)) == []
        assert sel.errors and "Permission denied" in sel.errors[0][1]
    finally:
        os.chmod(d, 0o700)


PATTERN_POOL = [
    "*.log",
    "!keep.log",
    "vendor/",
    "!vendor/",
    "cache",
    "/tmp/a/b",
    "**/b/c",
    "a/**/d",
    "[ab].txt",
    "*",
    "!*.txt",
    "d*/",
    "**/x",
    "/tmp/**/keep.log",
    "c?",
    "!/tmp/a/",
    "a/*",
    "/tmp/*/c",
    "b/**",
    "d*/x/",
    "**/c/**",
    "/tmp",
    "/b",
    "x/a.txt",
    "**/a/*.log",
    "/tmp/a/**/e.log",
    "!**/b/",
]
NAME_POOL = ["a", "b", "c", "d", "x", "vendor", "cache", "keep.log", "e.log", "a.txt", "b.txt", "ca", "d1"]


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(st.sampled_from(PATTERN_POOL), min_size=1, max_size=6),
    parts=st.lists(st.sampled_from(NAME_POOL), min_size=1, max_size=5),
    is_dir=st.booleans(),
)
def test_prefilter_agrees_with_pathspec(patterns: list[str], parts: list[str], is_dir: bool) -> None:
    """The fast path never changes a verdict for a path whose ancestors are selected (as in a walk)."""
    m = PatternMatcher(patterns)
    full = ["tmp", *parts]
    for i in range(1, len(full)):  # every ancestor directory must itself be selected
        assume(not m.spec.match_file("/".join(full[:i]) + "/"))
    parent = _match_prefix(os.fsencode("/" + "/".join(full[:-1])))
    expected = bool(m.spec.match_file("/".join(full) + ("/" if is_dir else "")))
    assert m.excluded(parent, full[-1], is_dir) == expected


@pytest.fixture
def fast_tmp(tmp_path: Path) -> Iterator[Path]:
    """A scratch folder on tmpfs (/dev/shm) when there is one: creating 50,000 files there is quick."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        d = Path(tempfile.mkdtemp(prefix="safehold-fs-", dir=shm))
        try:
            yield d
        finally:
            shutil.rmtree(d)
    else:
        yield tmp_path


def test_scan_50k_files_fast(fast_tmp: Path) -> None:
    """50,000 files: well under a second of CPU (process time, so a loaded machine does not fail it)."""
    root = fast_tmp / "many"
    for d in range(50):
        sub = root / f"module{d}"
        sub.mkdir(parents=True)
        for i in range(1000):
            os.close(os.open(sub / f"file{i}.php", os.O_CREAT | os.O_WRONLY, 0o644))
    dirs = [os.fsencode(root / f"module{d}") for d in range(50)]
    stats = [os.lstat(d) for d in dirs]

    t0 = time.process_time()
    for path in dirs:
        with os.scandir(path) as it:
            [(de.name, de.stat(follow_symlinks=False)) for de in it]
    baseline = time.process_time() - t0

    excludes = ["*.log", "!keep.log", "vendor/", "node_modules/", ".git/", "*.tmp", "__pycache__/"]
    excludes += ["/var/www/app/storage/cache", "**/storage/framework/sessions/*", "*.pyc"]
    for pats in ([], excludes):
        sel = Selector([root], excludes=pats)
        t0 = time.process_time()
        count = sum(len(sel.scan(d, s)) for d, s in zip(dirs, stats, strict=True))
        elapsed = time.process_time() - t0
        assert count == 50_000
        assert elapsed < 1.0, f"scan of 50k files took {elapsed:.2f}s CPU with {len(pats)} patterns"
        assert elapsed < 3 * baseline + 0.1, f"{elapsed:.2f}s vs bare scandir+lstat {baseline:.2f}s"


def test_unreadable_dir_and_entry_errors_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Works as root too: permission failures are injected where the kernel would raise them."""
    import safehold.engine.fs.select as select_mod

    touch(tmp_path / "ok")
    touch(tmp_path / "denied")
    real_open = select_mod.open_noatime

    def fake_open(path: bytes, flags: int) -> int:
        if path.endswith(b"locked"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags)

    class _Denied(_FakeEntry):
        def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
            if self.name == "denied":
                raise PermissionError(13, "Permission denied")
            return super().stat(follow_symlinks=follow_symlinks)

    real_scandir = os.scandir

    class _Scan:
        def __init__(self, fd: Any) -> None:
            self._it = real_scandir(fd)

        def __enter__(self) -> Iterator[_FakeEntry]:
            return (_Denied(de, None) for de in self._it)

        def __exit__(self, *a: object) -> None:
            self._it.close()

    monkeypatch.setattr(select_mod, "open_noatime", fake_open)
    monkeypatch.setattr(os, "scandir", _Scan)
    sel = Selector([tmp_path])
    assert [n for n, _ in sel.scan(os.fsencode(tmp_path), os.lstat(tmp_path))] == [b"ok"]
    assert sel.errors == [(os.fsencode(tmp_path / "denied"), "cannot stat: Permission denied")]
    assert sel.scan(os.fsencode(tmp_path / "locked"), os.lstat(tmp_path)) == []
    assert sel.errors[1] == (os.fsencode(tmp_path / "locked"), "cannot read directory: Permission denied")
