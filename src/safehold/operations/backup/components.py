"""Components on the real engine: the ComponentWriter/ComponentReader a source gets, and a backup of
several components into one snapshot.

Each component owns one top-level folder of the snapshot. A component whose source raises is *failed*:
its folder is dropped from the snapshot (a half-written dump never looks like a good one), its error is
recorded in the snapshot's ``components`` metadata, and the snapshot is marked partial.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from safehold.engine.backup.archiver import VirtualDir
from safehold.engine.format.pack import DATA
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import DIR, FILE, Node, path_problem
from safehold.engine.format.treewalk import find_node, load_tree
from safehold.engine.fs.meta import apply_metadata
from safehold.engine.fs.safedir import O_DIR, in_the_way, in_the_way_above
from safehold.engine.fs.select import Selector
from safehold.engine.progress import Progress
from safehold.engine.restore.restorer import Restorer
from safehold.errors import LockLost, NotFound, SafeholdError, UsageError
from safehold.operations.backup.paths import Session, backup_session, commit, current_user, snapshot_time
from safehold.sources.base import Source, SourceContext
from safehold.sources.component import StreamStats


def _split(path: str) -> list[bytes]:
    """The names of a path inside a component (the path-safety rule of stored names applies)."""
    problem = path_problem(path.strip("/"))
    if problem is not None:
        raise UsageError(f"invalid path inside a component: {path!r} {problem}")
    return [os.fsencode(p) for p in path.strip("/").split("/")]


class EngineComponentWriter:
    """Writes one component's folder of the snapshot being made (see ``safehold.sources.base``)."""

    def __init__(self, session: Session, name: str) -> None:
        self._session = session
        self._arch = session.archiver
        self.folder = session.root.subdir(os.fsencode(name))
        self.lines: list[str] = []
        self._last: tuple[str, str] | None = None
        self.bytes = 0

    def _parent(self, path: str) -> tuple[VirtualDir, bytes]:
        parts = _split(path)
        return self.folder.walk_to(parts[:-1]), parts[-1]

    def add_bytes(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        parent, leaf = self._parent(path)
        parent.add(self._arch.bytes_node(leaf, data, mode))
        self.bytes += len(data)

    def add_stream(self, path: str, stream: IO[bytes], *, mode: int = 0o600) -> StreamStats:
        parent, leaf = self._parent(path)
        result = self._arch.stream_node(leaf, stream, mode)
        parent.add(result.node)
        self.bytes += result.size
        return StreamStats(size=result.size, sha256=result.sha256)

    def add_tree(
        self, path: str, root: Path, *, excludes: list[str] | None = None, one_file_system: bool = False
    ) -> None:
        parent, leaf = self._parent(path)
        fs_root = os.path.abspath(os.fsencode(root))
        selector = Selector([fs_root], excludes=excludes or [], one_file_system=one_file_system)
        before = self._arch.stats.bytes_total
        node = self._arch.archive_path(fs_root, selector, name=leaf)
        self.bytes += self._arch.stats.bytes_total - before
        for p, msg in selector.errors:
            self._session.errors.append(f"{os.fsdecode(p)}: {msg}")
        if node is not None:
            parent.add(node)

    def log(self, message: str) -> None:
        """A line of ``backup.log`` (the writer's channel), stamped with the time it was written."""
        self._append(message, "writer")

    def context_log(self, message: str) -> None:
        """The source context's log during a backup: the same ``backup.log``. Sources send a line to both
        channels (the writer's for the log, the context's for an operator watching), so a line equal to
        the one just written through the other channel is that same line and is not written twice."""
        self._append(message, "context")

    def _append(self, message: str, channel: str) -> None:
        if self._last is not None and self._last == (message, "context" if channel == "writer" else "writer"):
            self._last = None
            return
        self._last = (message, channel)
        self.lines.append(f"{log_time()} {message}")


class EngineComponentReader:
    """Read-only, verified access to one component's folder of a stored snapshot."""

    @staticmethod
    def reapply_folder_metadata(folders: list[tuple[bytes, Node]], restore_owner: bool) -> list[str]:
        """Apply the recorded metadata of restored folders again, deepest first; returns warnings."""
        warnings: list[str] = []
        for path, node in sorted(folders, key=lambda x: x[0].count(b"/"), reverse=True):
            try:  # the folder itself, never what a symlink put in its place points to
                fd = os.open(path, O_DIR)
            except OSError:
                continue
            try:
                warnings += apply_metadata(path, node, restore_owner=restore_owner, fd=fd)
            finally:
                os.close(fd)
        return warnings

    def __init__(
        self,
        repo: Repository,
        snapshot: Snapshot,
        component: str,
        folders: list[tuple[bytes, Node]] | None = None,
    ) -> None:
        repo.load_index()
        #: Folders restored with their metadata, shared across readers so that a whole-server restore can
        #: re-apply it at the end (a later component writing into an earlier one's folder moves its mtime).
        self.folders = folders if folders is not None else []
        self.repo = repo
        self.snapshot = snapshot
        self.component = component
        self.root = find_node(repo, bytes.fromhex(snapshot.tree), component)
        if self.root.type != DIR:
            raise NotFound(f"component {component!r} is not a folder in snapshot {snapshot.short_id}")

    def _node(self, path: str) -> Node:
        node = self.root
        for part in [os.fsencode(p) for p in path.split("/") if p]:
            if node.type != DIR or node.subtree is None:
                raise FileNotFoundError(path)
            match = [n for n in load_tree(self.repo, node.subtree) if n.name == part]
            if not match:
                raise FileNotFoundError(path)
            node = match[0]
        return node

    def listdir(self, path: str = "") -> list[str]:
        node = self._node(path)
        if node.type != DIR or node.subtree is None:
            raise NotADirectoryError(path)
        return sorted(n.display_name for n in load_tree(self.repo, node.subtree))

    def exists(self, path: str) -> bool:
        try:
            self._node(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def read_bytes(self, path: str) -> bytes:
        return b"".join(self.open_stream(path))

    def open_stream(self, path: str) -> Iterator[bytes]:
        for part in self.stream_parts(path):
            yield part()

    def stream_parts(self, path: str) -> list[Callable[[], bytes]]:
        node = self._node(path)
        if node.type != FILE:
            raise IsADirectoryError(path)
        return [functools.partial(self.repo.load_blob, DATA, blob_id) for blob_id in node.content]

    def verify_tree(self, path: str, target: Path) -> list[str]:
        from safehold.engine.restore.readback import verify_tree

        return verify_tree(self.repo, self._node(path), os.fsencode(target))

    def restore_tree(
        self, path: str, target: Path, *, overwrite: str = "if-changed", root: Path | None = None
    ) -> None:
        """See :class:`~safehold.sources.component.ComponentReader`. ``root``: a folder above ``target`` (the
        restore's target root) from which the folders down to ``target`` are walked without following a
        symlink that root does not own."""
        node = self._node(path)
        restorer = Restorer(self.repo, overwrite=overwrite)
        trusted = None if root is None else os.path.abspath(os.fsencode(root))
        dest = os.path.abspath(os.fsencode(target))
        # the folder itself (mode, owner, times) too, after its contents changed its mtime
        stats = restorer.restore(node, dest, trusted=trusted, own_metadata=node.type == DIR)
        if node.type == DIR and not stats.errors:
            self.folders.append((dest, node))
        if stats.errors:
            raise SafeholdError(
                f"restore of {self.component}/{path} incomplete: " + "; ".join(stats.errors[:5])
            )

    def in_the_way(
        self, path: str, target: Path, *, root: Path | None = None, force: bool = False
    ) -> list[str]:
        """For the plan: where a restore of ``path`` into ``target`` (see :meth:`restore_tree`) meets a
        symlink or file where a folder goes, which it refuses (``force``: replaces) and never follows.
        One ``lstat`` per stored folder that exists on disk."""
        found: list[str] = []
        dest = os.path.abspath(os.fsencode(target))
        if root is not None:  # the folders from the target root down to the target
            problem = in_the_way_above(dest, os.path.abspath(os.fsencode(root)), force)
            if problem is not None:
                return [problem]
        node = self._node(path)
        stack = [(dest, node)] if node.type == DIR and node.subtree is not None else []
        while stack and len(found) < 20:
            live, folder = stack.pop()
            assert folder.subtree is not None
            for child in load_tree(self.repo, folder.subtree):
                if child.type != DIR or child.subtree is None:
                    continue
                p = os.path.join(live, child.name)
                problem = in_the_way(p, force, owned_links_ok=False)
                if problem is not None:
                    found.append(problem)
                elif os.path.lexists(p):
                    stack.append((p, child))
        return found


def log_time() -> str:
    """The time stamp of a ``backup.log`` line (UTC, to the second)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ComponentResult:
    name: str
    kind: str
    status: str
    duration: float
    size: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    hint: str | None = None
    log: list[str] = field(default_factory=list)
    optional: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("name", "log")}


def backup_components(
    repo: Repository,
    components: list[tuple[str, Source, bool]],
    *,
    snap_fields: dict[str, Any] | None = None,
    progress: Progress | None = None,
    ctx: SourceContext | None = None,
    root_files: Callable[[list[ComponentResult]], dict[str, bytes]] | None = None,
) -> tuple[Snapshot, list[ComponentResult]]:
    """Back up ``(name, source, optional)`` components into one snapshot. Never raises for a failing
    component: see the module docstring. ``root_files`` may add files at the snapshot root once all
    components ran (metadata, log, restore guide). Returns the snapshot and per-component results."""
    results: list[ComponentResult] = []
    with backup_session(repo, progress=progress) as session:
        for name, source, optional in components:
            writer = EngineComponentWriter(session, name)
            t0 = time.monotonic()
            # each component logs into its own writer; the caller's context is not modified
            sctx = (
                dataclasses.replace(ctx, log=writer.context_log)
                if ctx is not None
                else SourceContext(log=writer.context_log)
            )
            try:
                meta = source.backup(writer, sctx)
                status, err, hint = "ok", None, None
            except LockLost:
                raise  # not the component's failure: the whole snapshot must not be committed
            except SafeholdError as exc:
                meta, status, err, hint = {}, "failed", exc.message, exc.hint
            except OSError as exc:
                meta, status, err, hint = {}, "failed", f"{type(exc).__name__}: {exc}", None
            except Exception as exc:
                meta, status, err, hint = {}, "failed", f"unexpected {type(exc).__name__}: {exc}", None
                writer.log(traceback.format_exc())
            session.archiver.writer.raise_if_failed()
            if status == "failed":
                session.root.children.pop(os.fsencode(name), None)
            duration = round(time.monotonic() - t0, 3)
            writer.log(
                f"{source.kind}: {status} in {duration:.1f}s, {writer.bytes} bytes"
                + (f": {err}" if err else "")
            )
            results.append(
                ComponentResult(
                    name=name,
                    kind=source.kind,
                    status=status,
                    duration=duration,
                    size=writer.bytes,
                    metadata=meta,
                    error=err,
                    hint=hint,
                    log=writer.lines,
                    optional=optional,
                )
            )
        if root_files is not None:
            for fname, data in root_files(results).items():
                session.root.add(session.archiver.bytes_node(os.fsencode(fname), data, 0o600))
        failed_required = [r for r in results if r.status == "failed" and not r.optional]
        fields = {
            "time": snapshot_time(None),
            "paths": [],
            "hostname": socket.gethostname(),
            "username": current_user(),
            **(snap_fields or {}),
            "components": {r.name: r.as_dict() for r in results},
            "partial": bool(failed_required),
        }
        snap = commit(session, fields)
    return snap, results
