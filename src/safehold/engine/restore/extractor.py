"""Writing restored blobs: reading a pack in runs, and proving and writing blobs in helper processes.

A restore of many small files is a storm of syscalls (create, write, chown, chmod, utime, rename per
file) and of small decrypt/decompress/hash calls; from Python threads, every one of them waits for the
interpreter lock. So a large restore hands each run of blobs read from a pack to a helper process
(``python -m safehold.engine.restore.extractor``), which proves every blob (:func:`~safehold.engine.format.blobproof.
decode_blob`, nothing unverified is written) and writes it where the plan says:

* a *whole* target is a file that this one blob completes: the helper creates it, writes it and applies
  owner, xattrs, mode and times through the descriptor. In a folder the restore created (new, private to
  it) the file is written unnamed (``O_TMPFILE``) and linked in under its final name once complete;
  elsewhere under a temporary name (new, unpredictable, ``O_EXCL``) renamed into place
  (:func:`write_whole`);
* a *piece* goes into a temporary file the planner created and sized beforehand (a file of several
  blobs); the helper opens it again only if it is still the same inode; the planner finishes the file
  when its last piece is in.

Folders are reached as the restoring process reached them (:class:`~safehold.engine.fs.safedir.DirTree`:
one name at a time from the restore target, never through a symlink) and must be the very folders it
recorded (device and inode travel with each target).

Init frame: ``[data key, id key, restore owner, target path, [target device, target inode]]``. Request
frame: ``[envelope, blobs, targets]`` and the stored bytes of the run as payload, where blobs are
``[offset in payload, stored length, raw length, compressed, id]`` and targets ``[blob index, folder
(relative to the target), [folder device, folder inode], temporary name or None, temporary inode, final
name or None, offset in file, metadata or None, direct]`` with metadata ``[mode, uid, gid, atime_ns,
mtime_ns, xattrs]``: a whole file has a final name and metadata, a piece a temporary name; ``direct``: the
folder is one the restore created (see :func:`write_whole`). Reply: one ``[error or
None, warnings]`` per target, in order.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import zstandard

from safehold.engine import helper
from safehold.engine.format.blobproof import decode_blob
from safehold.engine.format.crypto import SessionCache
from safehold.engine.format.pack import DATA, PackedBlob
from safehold.engine.format.tree import Node
from safehold.engine.fs.meta import apply_file_metadata, owner_ids, write_sparse_aware
from safehold.engine.fs.safedir import DirTree, create_temp, open_temp, temp_name
from safehold.engine.helper import HelperError, recv_frame, send_frame
from safehold.errors import IntegrityError, SafeholdError

#: Files up to this size that arrive in one piece are written plainly (no ftruncate, no hole search).
PLAIN_WRITE = 64 * 1024

#: Blobs of one pack closer than this are read with one request (the gap is read and thrown away).
GAP = 256 * 1024

#: Anything that starts with (offset in pack, stored length): a restore plan's place of a blob in a
#: file, or a blob that copy reads.
P = TypeVar("P", bound=tuple[Any, ...])

Blob = tuple[int, int, int, bool, bytes]
#: The metadata of a whole file (see :func:`file_meta`; a list once it came through the pipe).
Meta = tuple[int, int, int, int, int, list[tuple[bytes, bytes]]]
Target = tuple[int, bytes, list[int], bytes | None, int, bytes | None, int, Meta | None, bool]
Result = tuple[str | None, list[str]]


def read_groups(pieces: list[P], max_read: int | None) -> list[list[P]]:
    """Runs of nearby blobs of one pack, each read with one request (at most ``max_read`` bytes)."""
    pieces.sort(key=lambda p: p[0])
    groups: list[list[P]] = []
    for p in pieces:
        if groups:
            g = groups[-1]
            gap = p[0] - (g[-1][0] + g[-1][1])
            if gap <= GAP and (max_read is None or p[0] + p[1] - g[0][0] <= max_read):
                g.append(p)
                continue
        groups.append([p])
    return groups


def same_blob_runs(group: Sequence[P]) -> Iterator[tuple[int, int]]:
    """``(i, j)``: ``group[i:j]`` are the places of one blob (deduplicated content)."""
    i = 0
    while i < len(group):
        j = i + 1
        while j < len(group) and group[j][0] == group[i][0]:
            j += 1
        yield i, j
        i = j


def write_all(fd: int, data: bytes | memoryview) -> None:
    n = os.write(fd, data)  # all of it, for almost every call
    if n < len(data):
        view = memoryview(data)[n:]
        while view:
            view = view[os.write(fd, view) :]


#: Whether unnamed files (``O_TMPFILE``, linked in through ``/proc/self/fd``) work here; cleared for good
#: by the first refusal (a file system without them, no /proc), which falls back to temporary names.
_UNNAMED = [hasattr(os, "O_TMPFILE")]


def write_whole(
    dfd: int,
    name: bytes,
    data: bytes | memoryview,
    meta: Meta,
    restore_owner: bool,
    path: bytes,
    *,
    direct: bool,
) -> list[str]:
    """Write ``data`` as the file ``name`` in folder ``dfd`` with metadata ``meta`` (see :func:`file_meta`);
    warnings (``path``: the final path for them).

    ``direct``: the folder is new and private to this restore (it created it, mode 0700 until its own
    metadata comes last). The file is then written as an unnamed file of that folder (``O_TMPFILE``),
    given its metadata, and only then linked in under its final name (``linkat``, which never replaces
    anything and never follows a symlink at the new name): no temporary name, no rename, and a file
    whose writing was interrupted (even by SIGKILL) is never at its final path. If something is at that
    name already, it is linked in under a temporary name and renamed over it, as elsewhere. Otherwise a
    temporary file (new, unpredictable name, ``O_EXCL | O_NOFOLLOW``) is written and renamed into place.
    A failed write removes the file it created."""
    if direct and _UNNAMED[0]:
        try:
            fd = os.open(b".", os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        except OSError:
            _UNNAMED[0] = False
        else:
            try:
                warnings = _fill(fd, data, meta, restore_owner, path)
                if _link_in(fd, dfd, name):
                    return warnings
            finally:
                os.close(fd)
    made, fd = create_temp(dfd, name)
    try:
        try:
            warnings = _fill(fd, data, meta, restore_owner, path)
        finally:
            os.close(fd)
    except BaseException:
        _drop(dfd, made)
        raise
    _replace_or_drop(dfd, made, name)
    return warnings


def _drop(dfd: int, tmp: bytes) -> None:
    try:
        os.unlink(tmp, dir_fd=dfd)
    except OSError:
        pass


def _replace_or_drop(dfd: int, tmp: bytes, name: bytes) -> None:
    """Rename our temporary file ``tmp`` to ``name`` in folder ``dfd``; on any failure remove it."""
    try:
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        _drop(dfd, tmp)
        raise


def _fill(fd: int, data: bytes | memoryview, meta: Meta, restore_owner: bool, path: bytes) -> list[str]:
    if len(data) <= PLAIN_WRITE:
        write_all(fd, data)
    else:
        os.ftruncate(fd, len(data))
        write_sparse_aware(fd, 0, data)
    mode, uid, gid, atime_ns, mtime_ns, xattrs = meta
    return apply_file_metadata(
        fd, path, mode, uid, gid, atime_ns, mtime_ns, xattrs, restore_owner=restore_owner
    )


def _link_in(fd: int, dfd: int, name: bytes) -> bool:
    """Give the unnamed file ``fd`` the name ``name`` in folder ``dfd`` (over whatever is there: through a
    new temporary name and a rename); False (and unnamed files off) when links from /proc are refused."""
    proc = f"/proc/self/fd/{fd}"
    try:
        os.link(proc, name, dst_dir_fd=dfd, follow_symlinks=True)
        return True
    except FileExistsError:
        pass
    except OSError:
        _UNNAMED[0] = False
        return False
    for _ in range(8):
        tmp = temp_name(name)
        try:
            os.link(proc, tmp, dst_dir_fd=dfd, follow_symlinks=True)
        except FileExistsError:
            continue
        _replace_or_drop(dfd, tmp, name)
        return True
    raise FileExistsError(errno.EEXIST, "no free temporary name", os.fsdecode(name))


def file_meta(node: Node, restore_owner: bool) -> Meta:
    """The metadata :func:`write_whole` applies: ``(mode, uid, gid, atime_ns, mtime_ns, xattrs)``, the
    owner ids resolved here (see :func:`~safehold.engine.fs.meta.owner_ids`; -1 without
    ``restore_owner``)."""
    uid, gid = owner_ids(node) if restore_owner else (-1, -1)
    return (node.mode, uid, gid, node.atime_ns, node.mtime_ns, node.xattrs)


def write_piece(dfd: int, tmp: bytes, ino: int, offset: int, data: bytes | memoryview) -> None:
    """Write one piece of a multi-blob file into its pre-sized temporary file (inode ``ino``)."""
    fd = open_temp(dfd, tmp, ino)
    try:
        write_sparse_aware(fd, offset, data)
    finally:
        os.close(fd)


def extract(
    sessions: SessionCache,
    id_key: bytes,
    dctx: zstandard.ZstdDecompressor,
    envelope: bytes,
    blobs: list[Blob],
    targets: list[Target],
    payload: bytes | bytearray,
    restore_owner: bool,
    tree: DirTree,
) -> list[Result]:
    """Prove each blob of ``payload`` and write it to its targets; one result per target, in order.

    One blob at a time: a decoded blob is dropped as soon as its targets are written.
    """
    view = memoryview(payload)
    by_blob: dict[int, list[int]] = {}
    for pos, target in enumerate(targets):
        by_blob.setdefault(target[0], []).append(pos)
    results: list[Result] = [("no such blob in the request", [])] * len(targets)
    folders = _Folders(tree)
    try:
        for index, (start, length, raw_length, compressed, blob_id) in enumerate(blobs):
            loc = PackedBlob(DATA, blob_id, start, length, raw_length, compressed)
            try:
                plain = decode_blob(
                    sessions, id_key, dctx, blob_id, loc, envelope, view[start : start + length]
                )
            except IntegrityError as exc:
                for pos in by_blob.get(index, []):
                    results[pos] = (str(exc), [])
                continue
            for pos in by_blob.get(index, []):
                _index, folder, folder_id, tmp, ino, name, offset, meta, direct = targets[pos]
                try:
                    dfd = folders.open(folder, folder_id)
                    if name is not None and meta is not None:
                        path = folders.prefix + name
                        warnings = write_whole(
                            dfd, name, plain, meta, restore_owner, path, direct=bool(direct)
                        )
                        results[pos] = (None, warnings)
                    elif tmp is not None:
                        write_piece(dfd, tmp, ino, offset, plain)
                        results[pos] = (None, [])
                except OSError as exc:
                    results[pos] = (f"write failed: {exc.strerror}", [])
                except SafeholdError as exc:
                    results[pos] = (str(exc), [])
            del plain
    finally:
        folders.close()
    return results


class _Folders:
    """The folder a run of targets is written to, held open while the next target is in the same folder
    (targets come in pack order, and the files of a folder are mostly neighbours there)."""

    def __init__(self, tree: DirTree) -> None:
        self._tree = tree
        self._held: contextlib.AbstractContextManager[int] | None = None
        self._rel: bytes | None = None
        self._fd = -1
        #: The held folder's path with a trailing slash (for warnings about its files).
        self.prefix = b""

    def open(self, rel: bytes, folder_id: list[int]) -> int:
        if rel == self._rel:
            return self._fd
        self.close()
        held = self._tree.opened(rel, (folder_id[0], folder_id[1]))
        self._fd = held.__enter__()
        self._held, self._rel = held, rel
        self.prefix = os.path.join(self._tree.root, rel, b"")
        return self._fd

    def close(self) -> None:
        held, self._held, self._rel = self._held, None, None
        if held is not None:
            held.__exit__(None, None, None)


class ExtractorProcess(helper.Client):
    """A helper process running :func:`extract`; one caller thread at a time."""

    def __init__(
        self, data_key: bytes, id_key: bytes, restore_owner: bool, root: bytes, root_id: tuple[int, int]
    ) -> None:
        init = [data_key, id_key, restore_owner, root, list(root_id)]
        super().__init__("safehold.engine.restore.extractor", "restoring", init)

    def extract(
        self, envelope: bytes, blobs: list[Blob], targets: list[Target], payload: bytes
    ) -> list[Result]:
        try:
            send_frame(self._wfd, [envelope, blobs, targets], [payload])
            reply, _ = recv_frame(self._rfd)
        except (OSError, EOFError) as exc:
            raise self.exited() from exc
        if not (isinstance(reply, list) and len(reply) == len(targets)):
            raise HelperError("a restoring helper process answered something unexpected")
        return [(None if err is None else str(err), [str(w) for w in warns]) for err, warns in reply]


def serve(rfd: int, wfd: int) -> None:
    gc.disable()  # nothing it keeps or drops is cyclic: collecting found nothing and cost ~2% of its CPU
    data_key, id_key, restore_owner, root, root_id = helper.recv_init(rfd, 5, "extractor")
    sessions = SessionCache(data_key)
    dctx = zstandard.ZstdDecompressor()
    tree: DirTree | None = None
    failed: str | None = None
    try:
        tree = DirTree(root, create=False, root_id=(root_id[0], root_id[1]))
    except (OSError, SafeholdError) as exc:
        failed = f"the restore target cannot be opened: {exc}"

    def handle(req: object, payload: bytearray) -> object:
        assert isinstance(req, list)
        envelope, blobs, targets = req
        if tree is None:
            return [[failed, []] for _ in targets]
        results = extract(sessions, id_key, dctx, envelope, blobs, targets, payload, restore_owner, tree)
        return [list(r) for r in results]

    helper.serve_requests(rfd, wfd, handle)


if __name__ == "__main__":
    helper.run(serve)
