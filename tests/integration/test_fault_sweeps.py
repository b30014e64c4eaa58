"""Fault sweeps: one fault on backend call N, for N over a whole backup, restore and copy.

For every fault kind (permanent and transient failures, timeouts, partial writes, a full disk, silent
corruption) and every sampled N (all N with ``-m slow``):

* the operation completes, or raises a SafeholdError with a message and a failing exit code;
* a single transient fault (failure, timeout, a partial write then a dropped connection) is survived
  through the retry wrapper: the operation completes;
* the repository stays consistent: a read-data check of the undisturbed storage finds no error, except
  that silent corruption by the storage must be *detected* by that check;
* every snapshot that was written restores byte-identically (or, after corruption, fails loudly);
* a restore never leaves a wrong file at its final path; a copy interrupted by a fault completes when
  run again.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest

from safehold.backends.faulty import Fault, FaultKind, FaultyBackend, Injected
from safehold.backends.local import LocalBackend
from safehold.engine.format.repository import Repository
from safehold.errors import SafeholdError
from safehold.operations.maintenance.copy import copy_snapshots
from tests.helpers.treecompare import compare_trees
from tests.integration._sweep import (
    KINDS,
    PASSWORD,
    SMALL_PACK,
    SWEEP_SAMPLE,
    Kind,
    backup,
    check_errors,
    clear_message,
    fault,
    make_source,
    restore_to,
    restored_root,
    restores_identically,
    run_sweep,
    stack,
    wrong_files,
)


@pytest.fixture(params=["sample", pytest.param("all", marks=pytest.mark.slow)])
def per_kind(request: pytest.FixtureRequest) -> int:
    """How many call numbers to try per fault kind: a stratified sample, or all of them (slow)."""
    return SWEEP_SAMPLE if request.param == "sample" else 0


def _detected(errors: list[str], injected: list[Injected]) -> list[str]:
    """For the corrupt kind: a corrupted repository file (not a lock) must show up in the check."""
    corrupted = [
        i
        for i in injected
        if i.kind is FaultKind.CORRUPT and i.op == "save" and not i.what.startswith("locks/")
    ]
    if corrupted and not errors:
        return [f"check did not detect the corruption of {corrupted[0].what}"]
    return []


def test_backup_sweep(tmp_path: Path, per_kind: int) -> None:
    src = make_source(tmp_path / "src")
    clean = tmp_path / "clean"
    Repository.init(LocalBackend(str(clean)), PASSWORD)
    faulty, be = stack(clean, [])
    backup(be, src)
    total = sum(faulty.calls.values())
    assert faulty.calls["save"] >= 10 and total >= 20, faulty.calls  # many packs and an index
    assert check_errors(clean) == []
    n_run = itertools.count()

    def trial(kind: Kind, n: int) -> tuple[list[str], bool]:
        path = tmp_path / f"repo{next(n_run)}"
        Repository.init(LocalBackend(str(path)), PASSWORD)
        faulty, be = stack(path, [fault(kind, n)])
        problems: list[str] = []
        try:
            backup(be, src)
        except Exception as exc:
            problems += [p for p in [clear_message(exc)] if p]
            if kind.must_succeed:
                problems.append(f"a single transient fault was not survived: {exc}")
        errors = check_errors(path)
        if kind.kind is FaultKind.CORRUPT:
            problems += _detected(errors, list(faulty.injected))
            work = path.with_name(path.name + "-restore")
            try:
                repo = Repository.open(LocalBackend(str(path)), PASSWORD)
                snaps = [s.id for s in repo.snapshots()]
            except SafeholdError:
                snaps = []  # a corrupted snapshot file: listing fails loudly
            for sid in snaps:
                restore_to(LocalBackend(str(path)), sid, work)
                problems += [f"wrong file after restore: {f}" for f in wrong_files(work, src)]
        else:
            problems += [f"check: {e}" for e in errors[:3]]
            problems += restores_identically(path, src, tmp_path / f"{path.name}-restore")
        shutil.rmtree(path)
        return problems, bool(faulty.injected)

    problems = run_sweep(total, KINDS, per_kind, trial)
    assert not problems, "\n".join(problems[:20])


@pytest.fixture(scope="module")
def source_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A repository (small packs) holding one clean snapshot of the sweep's source tree."""
    root = tmp_path_factory.mktemp("source")
    src = make_source(root / "src")
    path = root / "repo"
    Repository.init(LocalBackend(str(path)), PASSWORD)
    _faulty, be = stack(path, [])
    snap = backup(be, src)
    return path, src, snap


#: Loads cannot be retried into success when the storage returns short or damaged bytes.
RESTORE_KINDS = [
    Kind(k.name, k.kind, k.transient, k.must_succeed and k.kind is not FaultKind.PARTIAL) for k in KINDS
]


def test_restore_sweep(tmp_path: Path, source_repo: tuple[Path, Path, str], per_kind: int) -> None:
    path, src, snap = source_repo
    faulty, be = stack(path, [])
    errors, exc = restore_to(be, snap, tmp_path / "clean")
    assert (
        exc is None
        and errors == []
        and compare_trees(src, restored_root(tmp_path / "clean", src), check_owner=False) == []
    )
    total = sum(faulty.calls.values())
    assert faulty.calls["load"] >= 10, faulty.calls
    n_run = itertools.count()

    def trial(kind: Kind, n: int) -> tuple[list[str], bool]:
        target = tmp_path / f"t{next(n_run)}"
        faulty, be = stack(path, [fault(kind, n)])
        errors, exc = restore_to(be, snap, target)
        problems = [p for p in [exc and clear_message(exc)] if p]
        problems += [f"wrong file at its final path: {f}" for f in wrong_files(target, src)]
        complete = exc is None and not errors
        if kind.must_succeed and not complete:
            problems.append(f"a single transient fault was not survived: {exc or errors[:2]}")
        if complete:
            problems += [
                f"restored tree differs: {d}"
                for d in compare_trees(src, restored_root(target, src), check_owner=False)
            ]
        if exc is None:
            leftovers = [f for _d, _s, fs in os.walk(target) for f in fs if f.endswith(".safehold-partial")]
            problems += [f"temporary file left behind: {f}" for f in leftovers]
        if target.exists():
            shutil.rmtree(target)
        return problems, bool(faulty.injected)

    problems = run_sweep(total, RESTORE_KINDS, per_kind, trial)
    assert not problems, "\n".join(problems[:20])


def test_copy_sweep(tmp_path: Path, source_repo: tuple[Path, Path, str], per_kind: int) -> None:
    src_path, src, _snap = source_repo

    def copy(target: Path, faults: list[Fault]) -> tuple[FaultyBackend, Exception | None]:
        faulty, be = stack(target, faults)
        try:
            source = Repository.open(LocalBackend(str(src_path)), PASSWORD)
            dst = Repository.open(be, PASSWORD)
            dst.config.pack_size = SMALL_PACK
            copy_snapshots(source, dst)
            return faulty, None
        except Exception as exc:
            return faulty, exc

    def new_target(name: str) -> Path:
        target = tmp_path / name
        source = Repository.open(LocalBackend(str(src_path)), PASSWORD)
        Repository.init(LocalBackend(str(target)), PASSWORD, chunker_from=source.config)
        return target

    faulty, exc = copy(new_target("clean"), [])
    assert exc is None
    total = sum(faulty.calls.values())
    assert faulty.calls["save"] >= 10, faulty.calls
    n_run = itertools.count()

    def trial(kind: Kind, n: int) -> tuple[list[str], bool]:
        target = new_target(f"dst{next(n_run)}")
        faulty, exc = copy(target, [fault(kind, n)])
        problems = [p for p in [exc and clear_message(exc)] if p]
        if kind.must_succeed and exc is not None:
            problems.append(f"a single transient fault was not survived: {exc}")
        errors = check_errors(target)
        if kind.kind is FaultKind.CORRUPT:
            problems += _detected(errors, list(faulty.injected))
        else:
            problems += [f"check: {e}" for e in errors[:3]]
            problems += restores_identically(target, src, tmp_path / f"{target.name}-restore")
            # run again without faults: the copy completes (resuming what arrived)
            _f, again = copy(target, [])
            if again is not None:
                problems.append(f"copy did not complete when run again: {again}")
            problems += [f"check after the second copy: {e}" for e in check_errors(target)[:3]]
            dst = Repository.open(LocalBackend(str(target)), PASSWORD)
            if len(dst.snapshots()) != 1:
                problems.append(f"{len(dst.snapshots())} snapshots in the target after two copies")
        shutil.rmtree(target)
        return problems, bool(faulty.injected)

    problems = run_sweep(total, KINDS, per_kind, trial)
    assert not problems, "\n".join(problems[:20])
