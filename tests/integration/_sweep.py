"""Shared pieces of the fault sweeps: a small source tree, repositories with small packs, the checks.

A sweep runs one operation many times, each time with one :class:`Fault` firing on backend call number
N (counting every call: create, exists, save, load, stat, list, remove), for N over the calls of a clean
run. The operation goes through the wrapper stack of :func:`compose` (retry -> limit -> faulty -> local),
as a real run would, with a retry policy whose waits are milliseconds.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from safehold.backends.base import Backend
from safehold.backends.faulty import ALL_OPS, Fault, FaultKind, FaultyBackend
from safehold.backends.local import LocalBackend
from safehold.backends.registry import compose
from safehold.backends.wrappers import RetryPolicy
from safehold.engine.check.checker import Checker
from safehold.engine.format.repository import Repository
from safehold.engine.format.treewalk import find_node
from safehold.engine.restore.restorer import Restorer
from safehold.errors import SafeholdError
from safehold.operations.backup.paths import BackupOptions, backup_paths
from tests.helpers.treecompare import compare_trees

PASSWORD = "fault sweep passphrase"
#: Retries in milliseconds, so that a sweep of hundreds of runs stays fast.
FAST_RETRY = RetryPolicy(attempts=4, initial_delay=0.001, max_delay=0.004, max_total=10.0)
#: Small packs: a small backup then writes many packs and at least one intermediate index file.
SMALL_PACK = 48 * 1024
SWEEP_SAMPLE = int(os.environ.get("SAFEHOLD_SWEEP_SAMPLE", "5"))


@dataclass(frozen=True)
class Kind:
    """One fault kind of the sweep; ``must_succeed``: a single such fault is always survived."""

    name: str
    kind: FaultKind
    transient: bool
    must_succeed: bool


KINDS = [
    Kind("fail-permanent", FaultKind.FAIL, False, False),
    Kind("fail-transient", FaultKind.FAIL, True, True),
    Kind("timeout", FaultKind.TIMEOUT, True, True),
    Kind("partial-transient", FaultKind.PARTIAL, True, True),
    Kind("enospc", FaultKind.ENOSPC, False, False),
    Kind("corrupt", FaultKind.CORRUPT, True, False),
]


def make_source(root: Path, seed: int = 7) -> Path:
    """~20 small files in 3 folders, two files of several chunks, a symlink and an empty folder."""
    rng = random.Random(seed)
    for d in range(3):
        sub = root / f"dir{d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(6):
            (sub / f"f{f}.bin").write_bytes(rng.randbytes(rng.randint(0, 30_000)))
    (root / "big1.bin").write_bytes(rng.randbytes(1_300_000))
    (root / "big2.bin").write_bytes(rng.randbytes(700_000) * 2)  # a repeated chunk dedups
    (root / "empty").mkdir()
    (root / "link").symlink_to("dir0/f0.bin")
    return root


def stack(path: Path, faults: list[Fault]) -> tuple[FaultyBackend, Backend]:
    """``(faulty, composed)``: a local backend under the faulty double under retry and limit."""
    faulty = FaultyBackend(LocalBackend(str(path)), faults)
    return faulty, compose(faulty, retry=FAST_RETRY)


def fault(kind: Kind, at: int) -> Fault:
    return Fault(kind.kind, at=at, ops=ALL_OPS, transient=kind.transient)


def backup(backend: Backend, src: Path) -> str:
    """Open the repository on ``backend`` and back up ``src`` with small packs; the snapshot id."""
    repo = Repository.open(backend, PASSWORD)
    repo.config.pack_size = SMALL_PACK
    return backup_paths(repo, BackupOptions(paths=[str(src)], use_cache=False)).snapshot.id


def sample(total: int, k: int, seed: int) -> list[int]:
    """Call numbers 1..total: all when ``k`` is 0 or covers them, else first, last and a spread."""
    if k <= 0 or total <= k:
        return list(range(1, total + 1))
    rng = random.Random(seed)
    stride = total / k
    picks = {1, total} | {1 + int(i * stride + rng.random() * stride) for i in range(k)}
    return sorted(p for p in picks if 1 <= p <= total)


def check_errors(path: Path) -> list[str]:
    """The errors of a full read-data check of the repository at ``path`` (no faults)."""
    repo = Repository.open(LocalBackend(str(path)), PASSWORD)
    return Checker(repo).run(read_data=True).errors


def restore_to(backend: Backend, snap_id: str, target: Path) -> tuple[list[str], BaseException | None]:
    """Restore a snapshot; ``(per-file errors, exception)`` — never raises a SafeholdError."""
    try:
        repo = Repository.open(backend, PASSWORD)
        snap = repo.find_snapshot(snap_id)
        node = find_node(repo, bytes.fromhex(snap.tree), "")
        stats = Restorer(repo, restore_owner=False).restore(node, os.fsencode(target))
        return list(stats.errors), None
    except SafeholdError as exc:
        return [], exc


def restored_root(target: Path, src: Path) -> Path:
    return target / str(src).lstrip("/")


def wrong_files(target: Path, src: Path) -> list[str]:
    """Regular files at their final path below ``target`` whose bytes differ from the source's."""
    root = restored_root(target, src)
    bad = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink() or name.endswith(".safehold-partial"):
                continue
            rel = p.relative_to(root)
            s = src / rel
            if not s.is_file() or s.read_bytes() != p.read_bytes():
                bad.append(str(rel))
    return bad


def restores_identically(path: Path, src: Path, work: Path) -> list[str]:
    """Restore every snapshot of the repository at ``path`` (no faults); the differences found."""
    repo = Repository.open(LocalBackend(str(path)), PASSWORD)
    problems = []
    for i, snap in enumerate(repo.snapshots()):
        target = work / f"restore-{snap.short_id}-{i}"
        errors, exc = restore_to(LocalBackend(str(path)), snap.id, target)
        if exc is not None or errors:
            problems.append(f"snapshot {snap.short_id} does not restore: {exc or errors}")
            continue
        diff = compare_trees(src, restored_root(target, src), check_owner=False)
        if diff:
            problems.append(f"snapshot {snap.short_id} differs: {diff[:3]}")
    return problems


def clear_message(exc: BaseException) -> str | None:
    """None when ``exc`` is a SafeholdError with a message and a failing exit code, else why not."""
    if not isinstance(exc, SafeholdError):
        return f"not a SafeholdError: {type(exc).__name__}: {exc}"
    if not exc.message.strip() or exc.exit_code == 0:
        return f"unclear error: {exc!r} (exit {exc.exit_code})"
    return None


def run_sweep(
    total: int,
    kinds: list[Kind],
    k: int,
    trial: Callable[[Kind, int], tuple[list[str], bool]],
) -> list[str]:
    """Run ``trial(kind, n)`` -> ``(problems, fault fired)`` for each kind and sampled n.

    Returns every problem, prefixed with kind and n, plus one when too few injected faults fired (calls
    are counted across threads, so a late N may now and then fall past the last call, but rarely).
    """
    problems = []
    fired = trials = 0
    for j, kind in enumerate(kinds):
        for n in sample(total, k, seed=j):
            found, did_fire = trial(kind, n)
            problems += [f"{kind.name} at call {n}: {p}" for p in found]
            trials += 1
            fired += did_fire
    if fired < 0.8 * trials:
        problems.append(f"only {fired} of {trials} injected faults fired: the sweep tests little")
    return problems
