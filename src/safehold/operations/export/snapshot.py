"""``safehold export``: a snapshot as plain files in the original plan's layout, for people and tools
without safehold.

:func:`export_snapshot` writes a folder, or one ``.tar`` / ``.tar.gz`` / ``.tar.zst`` whose entries sit
below ``safehold-export-<short id>/``. Where each component goes is decided by
:mod:`.layout`; how bytes reach the output (and their SHA-256) by :mod:`.sink`; the
``RESTORE.md`` text by :mod:`.guide`. At the export's root: ``metadata.json`` and ``RESTORE.md``
(the snapshot's own metadata.json is copied when it has one; its own RESTORE.md is appended to the export's
guide), and ``checksums.txt`` with one ``sha256sum`` line per regular file, which
``sha256sum -c checksums.txt`` verifies from inside the export's folder.

Contract:

* The output must not exist (a folder may exist when empty). Nothing is ever overwritten: the export is
  written under a temporary name beside the output and moved into place only when complete; on any
  error the partial output is removed.
* Contents are streamed blob by blob from the repository (every blob verified against its id); no file
  is held whole in memory, and a tar export never builds the tree on disk (see :mod:`.sink`
  for the one spooled entry at a time).
* Inner archives (``app/application.tar.gz``...) keep modes, owners (ids and names), nanosecond mtimes
  (pax), symlinks, hard links, device nodes, FIFOs and extended attributes (``SCHILY.xattr``; extract
  with GNU tar's ``--xattrs --xattrs-include='*'``). Folder exports keep symlinks as symlinks, modes and
  mtimes of files, not owners.
* The repository is read under a shared lock (a prune cannot remove data the export still reads).
* The export is NOT encrypted: :attr:`ExportResult.secrets` and the export's RESTORE.md name the files
  that hold secrets.

Raises :class:`ExportTargetExists` (an output in the way), :class:`~safehold.errors.UsageError` (an
unknown archive suffix, a missing parent folder), :class:`~safehold.errors.NotFound` (no such snapshot),
:class:`~safehold.errors.IntegrityError` (damaged repository data; nothing is left behind).
"""

from __future__ import annotations

import errno
import gzip
import os
import shlex
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from safehold.engine.format.pack import DATA
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import DIR, FILE, SYMLINK, Node
from safehold.engine.format.treewalk import walk
from safehold.engine.progress import NullProgress, Progress
from safehold.errors import SafeholdError, UsageError
from safehold.operations.export.guide import generated_metadata, restore_guide
from safehold.operations.export.layout import Planner
from safehold.operations.export.sink import (
    CHECKSUMS,
    COPY_BUFFER,
    ChunkReader,
    DirSink,
    HashingWriter,
    Sink,
    TarSink,
    pax_time,
    sized,
    tar_special,
)
from safehold.sources.export import BYTES, FOLDER, GZIP, LINK, PLAIN, TREE_TAR, Entry, Part, secret_reason

FORMATS = {".tar.gz": "tar.gz", ".tgz": "tar.gz", ".tar.zst": "tar.zst", ".tzst": "tar.zst", ".tar": "tar"}
_REFUSED = (".zip", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".gz", ".zst", ".7z")


class ExportTargetExists(UsageError):
    default_hint = "Choose a new path (or an empty folder); safehold never overwrites an export."


@dataclass
class ExportOptions:
    snapshot: str
    output: str
    gzip_level: int = 6
    zstd_level: int = 3


@dataclass
class ExportResult:
    snapshot: Snapshot
    output: str
    format: str
    top: str
    files: int = 0
    bytes: int = 0
    size: int = 0
    secrets: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    layout: dict[str, str] = field(default_factory=dict)

    @property
    def verify_command(self) -> str:
        """The shell command that checks the export with coreutils alone."""
        q = _shell_quote(self.output)
        if self.format == "dir":
            return f"cd {q} && sha256sum -c {CHECKSUMS}"
        x = {"tar.gz": "tar -xzf", "tar.zst": "tar --zstd -xf", "tar": "tar -xf"}[self.format]
        return f"{x} {q} && cd {self.top} && sha256sum -c {CHECKSUMS}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot.id,
            "output": self.output,
            "format": self.format,
            "top_folder": self.top or None,
            "files": self.files,
            "bytes": self.bytes,
            "size": self.size,
            "secrets": self.secrets,
            "encrypted": False,
            "warnings": self.warnings,
            "layout": self.layout,
            "verify_command": self.verify_command,
        }


def _shell_quote(s: str) -> str:
    return shlex.quote(s)


def output_format(path: str) -> str:
    """``dir``, ``tar``, ``tar.gz`` or ``tar.zst``, from the output's name."""
    low = path.lower()
    for suffix, fmt in FORMATS.items():
        if low.endswith(suffix):
            return fmt
    if low.endswith(_REFUSED):
        raise UsageError(
            f"cannot export to {path}: unsupported archive type",
            hint="Give a folder, or a file ending in .tar.gz, .tar.zst or .tar.",
        )
    return "dir"


def check_output(path: str, fmt: str) -> bytes:
    """The absolute output path; raises when something is in the way or the parent folder is missing."""
    final = os.path.abspath(os.fsencode(path)).rstrip(b"/") or b"/"
    if fmt == "dir" and os.path.isdir(final) and not os.path.islink(final):
        if os.listdir(final):
            raise ExportTargetExists(f"{path} exists and is not empty")
    elif os.path.lexists(final):
        raise ExportTargetExists(f"{path} already exists")
    parent = os.path.dirname(final)
    if not os.path.isdir(parent):
        raise UsageError(f"folder {os.fsdecode(parent)} does not exist", hint="Create it first.")
    return final


def export_snapshot(repo: Repository, opts: ExportOptions, progress: Progress | None = None) -> ExportResult:
    """Export snapshot ``opts.snapshot`` to ``opts.output``; see the module docstring."""
    fmt = output_format(opts.output)
    final = check_output(opts.output, fmt)
    progress = progress or NullProgress()
    repo.load_index()
    snap = repo.find_snapshot(opts.snapshot)
    top = f"safehold-export-{snap.short_id}"
    lock = repo.lock(exclusive=False, operation="export")
    try:
        planner = Planner(repo, snap)
        parts, root_files = planner.plan()
        mtime_ns = int(snap.datetime.timestamp()) * 1_000_000_000
        sink: Sink
        if fmt == "dir":
            sink = DirSink(final)
        else:
            comp = {"tar.gz": "gz", "tar.zst": "zst", "tar": ""}[fmt]
            sink = TarSink(
                final, top, comp, gzip_level=opts.gzip_level, zstd_level=opts.zstd_level, mtime_ns=mtime_ns
            )
        result = ExportResult(snap, os.fsdecode(final), fmt, "" if fmt == "dir" else top)
        writer = _Writer(repo, sink, progress, opts.gzip_level, mtime_ns)
        try:
            progress.start("export", total_bytes=snap.summary.get("bytes_total"))
            for part in parts:
                for entry in part.entries:
                    lock.check()
                    writer.write(entry, part)
            result.secrets = [s for p in parts for s in p.secrets]
            result.warnings = planner.warnings + sink.warnings + writer.warnings
            meta = root_files.get("metadata.json")
            if meta is not None:
                writer.write(Entry("metadata.json", PLAIN, meta, mode=0o644), None)
            else:
                writer.write(
                    Entry("metadata.json", BYTES, data=generated_metadata(snap, parts), mode=0o644), None
                )
            own = root_files.get("RESTORE.md")
            own_text = b"".join(writer.blobs(own)) if own is not None else None
            guide = restore_guide(
                snap, parts, result.secrets, own_text, result.warnings, repo.backend.properties.location
            )
            writer.write(Entry("RESTORE.md", BYTES, data=guide, mode=0o644), None)
            sums = sink.checksums()
            sink.add_file(CHECKSUMS, len(sums), [sums], mode=0o644, mtime_ns=mtime_ns, record=False)
            lock.confirm()
            _commit(sink, opts.output)
        except BaseException:
            sink.abort()
            raise
        finally:
            progress.finish()
    finally:
        lock.release()
    result.files, result.bytes = sink.files, sink.bytes_written
    result.size = os.path.getsize(final) if fmt != "dir" else result.bytes
    result.layout = {p.component: p.kind for p in parts}
    return result


def _commit(sink: Sink, output: str) -> None:
    try:
        sink.commit()
    except FileExistsError:
        raise ExportTargetExists(f"{output} appeared while exporting; the export was not written") from None
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise ExportTargetExists(
                f"{output} appeared while exporting; the export was not written"
            ) from None
        raise


class _Writer:
    """Writes planned entries into a sink, reading contents blob by blob."""

    def __init__(self, repo: Repository, sink: Sink, progress: Progress, level: int, mtime_ns: int) -> None:
        self.repo = repo
        self.sink = sink
        self.progress = progress
        self.level = level
        self.mtime_ns = mtime_ns
        self.warnings: list[str] = []

    def blobs(self, node: Node) -> Iterator[bytes]:
        for blob_id in node.content:
            data = self.repo.load_blob(DATA, blob_id)
            self.progress.advance(nbytes=len(data))
            yield data
        self.progress.advance(files=1)

    def write(self, e: Entry, part: Part | None) -> None:
        node = e.node
        if e.what == BYTES:
            self.sink.add_file(e.dest, len(e.data), [e.data], mode=e.mode or 0o644, mtime_ns=self.mtime_ns)
            return
        assert node is not None
        mode = e.mode if e.mode is not None else node.mode
        if e.what == FOLDER:
            self.sink.add_dir(e.dest)
        elif e.what == PLAIN:
            self.sink.add_file(e.dest, node.size, self.blobs(node), mode=mode, mtime_ns=node.mtime_ns)
        elif e.what == LINK:
            self.sink.add_symlink(e.dest, node.linktarget or b"", mtime_ns=node.mtime_ns)
        elif e.what == GZIP:
            with self.sink.open_stream(e.dest, mode=mode, mtime_ns=node.mtime_ns) as out:
                gz = gzip.GzipFile(
                    fileobj=out, mode="wb", compresslevel=self.level, mtime=node.mtime_ns // 10**9
                )
                chunks = sized(self.blobs(node), node.size, e.dest)
                for chunk in e.transform(chunks) if e.transform else chunks:
                    gz.write(chunk)
                gz.close()
        elif e.what == TREE_TAR:
            with self.sink.open_stream(e.dest, mode=mode, mtime_ns=self.mtime_ns) as out:
                found = self.tree_tar(node, out, e.dest)
            if part is not None:
                part.secrets += [f"{e.dest}: contains {s}" for s in found]
        else:
            self.sink.add_special(e.dest, node)

    def tree_tar(self, root: Node, out: HashingWriter, dest: str) -> list[str]:
        """A gzip tar of the folder ``root``'s contents; returns the names inside that hold secrets."""
        gz = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=self.level, mtime=self.mtime_ns // 10**9)
        tar = tarfile.TarFile(
            fileobj=gz,
            mode="w",
            format=tarfile.PAX_FORMAT,
            encoding="utf-8",
            errors="surrogateescape",
            copybufsize=COPY_BUFFER,
        )
        links: dict[tuple[int, int], str] = {}
        secrets: list[str] = []
        assert root.subtree is not None
        for rel, node in walk(self.repo, root.subtree):
            name = os.fsdecode(rel)
            info = _tarinfo(name, node)
            reader = None
            if node.type == FILE:
                key = (node.device, node.inode)
                if node.links > 1 and key in links:
                    info.type, info.linkname = tarfile.LNKTYPE, links[key]
                else:
                    if node.links > 1:
                        links[key] = name
                    info.size = node.size
                    reader = ChunkReader(sized(self.blobs(node), node.size, f"{dest}:{name}"))
                if (reason := secret_reason(name)) is not None and len(secrets) < 20:
                    secrets.append(f"{name}: {reason}")
            elif node.type == DIR:
                info.type = tarfile.DIRTYPE
            elif node.type == SYMLINK:
                info.type, info.linkname = tarfile.SYMTYPE, os.fsdecode(node.linktarget or b"")
            elif not tar_special(info, node):
                self.warnings.append(f"{dest}: {name}: a {node.type} cannot be stored in a tar archive")
                continue
            tar.addfile(info, reader)
            tar.getmembers().clear()  # (the writer's own list) never looked up again: keeps memory flat for large trees
            if reader is not None and not reader.exhausted():
                raise SafeholdError(f"{dest}: {name}: the snapshot holds more bytes than its recorded size")
        tar.close()
        gz.close()
        return secrets


def _tarinfo(name: str, node: Node) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = node.mode & 0o7777
    info.uid, info.gid = node.uid, node.gid
    info.uname, info.gname = node.user, node.group
    info.mtime = node.mtime_ns // 1_000_000_000
    pax = {"mtime": pax_time(node.mtime_ns)}
    for key, value in node.xattrs:
        pax["SCHILY.xattr." + key.decode("utf-8", "surrogateescape")] = value.decode(
            "utf-8", "surrogateescape"
        )
    info.pax_headers = pax
    return info
