"""Where an export's files go: a folder, or one tar stream (plain, gzip or zstandard).

Both sinks take the same calls and record the SHA-256 of every regular file *while writing it*, so
``checksums.txt`` needs no second read:

* :meth:`Sink.add_file` — a file whose size is known beforehand (a file of the snapshot, generated text);
  its content arrives as an iterable of chunks (one repository blob at a time: never a whole file in
  memory) and must add up to exactly the announced size, else :class:`IntegrityError`.
* :meth:`Sink.open_stream` — a file whose size is known only after writing it (an inner ``.tar.gz`` or
  ``.sql.gz``). The folder sink writes it straight to its place. A tar member needs its size in the
  header that precedes its data, so the tar sink writes it into a :class:`tempfile.SpooledTemporaryFile`
  (up to :data:`SPOOL_MEMORY` bytes in memory, beyond that in an unlinked temporary file next to the
  output), then copies it into the outer tar. At most one such entry exists at a time.
* :meth:`Sink.add_symlink`, :meth:`Sink.add_dir`, :meth:`Sink.add_special` (device nodes and FIFOs:
  tar entries in a tar; skipped with a warning in a folder, which would need root and mknod).

Everything is written under a temporary name beside the output (``.<name>.safehold-partial-<random>``)
and moved into place by :meth:`Sink.commit` only when complete — a folder with ``rename`` (which also
replaces an *empty* existing folder), a file with ``link`` + ``unlink`` (which never replaces an
existing file). :meth:`Sink.abort` removes the partial output. Paths inside the export are
``/``-separated ``str`` (non-UTF-8 bytes as surrogate escapes).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import secrets
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any, Protocol

import zstandard

from safehold.engine.format.tree import BLOCKDEV, CHARDEV, FIFO, Node
from safehold.engine.fs.safedir import DirTree, InTheWay
from safehold.errors import IntegrityError

SPOOL_MEMORY = 32 * 1024 * 1024
COPY_BUFFER = 1024 * 1024
CHECKSUMS = "checksums.txt"


def fs(rel: str) -> bytes:
    return os.fsencode(rel)


def pax_time(ns: int) -> str:
    """An exact decimal timestamp for a pax ``mtime`` record (floats lose nanoseconds)."""
    sign = "-" if ns < 0 else ""
    sec, frac = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{sec}.{frac:09d}" if frac else f"{sign}{sec}"


def checksum_line(digest: str, rel: str) -> bytes:
    """One ``sha256sum`` line; names with a backslash or newline are escaped the way coreutils does."""
    name = fs(rel)
    if b"\\" in name or b"\n" in name or b"\r" in name:
        name = name.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
        return b"\\" + digest.encode() + b"  " + name + b"\n"
    return digest.encode() + b"  " + name + b"\n"


class HashingWriter:
    """A write-only file object that hashes and counts what passes through to ``target``."""

    def __init__(self, target: IO[bytes] | Any) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)

    def flush(self) -> None:
        self.target.flush()

    def tell(self) -> int:
        return self.size


class ChunkReader:
    """A file object over an iterable of chunks: ``read(n)`` returns exactly ``n`` bytes until the end
    (``tarfile`` treats a short read as the end of data). Hashes what it hands out."""

    def __init__(self, chunks: Iterable[bytes], sha: Any = None) -> None:
        self._it = iter(chunks)
        self._buf = memoryview(b"")
        self._sha = sha
        self.size = 0

    def _more(self) -> bool:
        for chunk in self._it:
            if chunk:
                if self._sha is not None:
                    self._sha.update(chunk)
                self._buf = memoryview(chunk)
                return True
        return False

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes | memoryview] = []
        want = n if n >= 0 else 1 << 62
        while want > 0 and (self._buf or self._more()):
            piece = self._buf[:want]
            self._buf = self._buf[len(piece) :]
            parts.append(piece)
            want -= len(piece)
        out = b"".join(parts)
        self.size += len(out)
        return out

    def exhausted(self) -> bool:
        return not self._buf and not self._more()


def sized(chunks: Iterable[bytes], size: int, what: str) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > size:
            raise IntegrityError(f"{what}: the snapshot holds more bytes than its recorded size {size}")
        yield chunk
    if total != size:
        raise IntegrityError(f"{what}: the snapshot holds {total} bytes, its recorded size is {size}")


class Sink(Protocol):
    warnings: list[str]
    files: int
    bytes_written: int

    def add_dir(self, rel: str, mode: int = 0o755) -> None: ...
    def add_file(
        self, rel: str, size: int, chunks: Iterable[bytes], *, mode: int, mtime_ns: int, record: bool = True
    ) -> None: ...
    def open_stream(
        self, rel: str, *, mode: int, mtime_ns: int
    ) -> contextlib.AbstractContextManager[HashingWriter]: ...
    def add_symlink(self, rel: str, target: bytes, *, mtime_ns: int) -> None: ...
    def add_special(self, rel: str, node: Node) -> None: ...
    def checksums(self) -> bytes: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class _Base:
    def __init__(self, final: bytes) -> None:
        self.final = final
        parent, name = os.path.split(final)
        self.parent = parent or b"."
        self.tmp = os.path.join(
            self.parent, b"." + name + b".safehold-partial-" + secrets.token_hex(4).encode()
        )
        self.sums: list[bytes] = []
        self.warnings: list[str] = []
        self.files = 0
        self.bytes_written = 0

    def _record(self, rel: str, sha: Any, size: int) -> None:
        self.sums.append(checksum_line(sha.hexdigest(), rel))
        self.files += 1
        self.bytes_written += size

    def checksums(self) -> bytes:
        return b"".join(self.sums)


class DirSink(_Base):
    """Writes the export as a folder tree (mode 0700 at its root: an export holds secrets).

    The output's folder may be one that others can write (an export to a shared folder): nothing below
    the new folder is looked up by path. Its folders are opened one name at a time from its descriptor
    (:class:`~safehold.engine.fs.safedir.DirTree`, never through a symlink), files and symlinks are made
    and given their times relative to their folder's descriptor, and :meth:`commit` renames the folder
    only if the name still holds the folder this sink made (never a symlink someone put in its place).
    """

    def __init__(self, final: bytes) -> None:
        super().__init__(final)
        os.mkdir(self.tmp, 0o700)
        st = os.lstat(self.tmp)
        self._id = (st.st_dev, st.st_ino)
        self._tree = DirTree(self.tmp, create=False, root_id=self._id)

    def _folder(self, rel: bytes) -> None:
        """Create the folder ``rel`` and its parents (mode 0755), never through a symlink: the layout
        gives no entry a non-folder parent, so anything else in the way is an integrity error."""
        try:
            new = self._tree.ensure(rel)
        except InTheWay:
            raise IntegrityError(f"{os.fsdecode(rel)!r} is both a folder and a file in the export") from None
        for r in new:
            if r in self._tree.created:
                with self._tree.opened(r) as fd:
                    os.fchmod(fd, 0o755)

    @contextlib.contextmanager
    def _in_folder(self, rel: str) -> Iterator[tuple[int, bytes]]:
        """The descriptor of ``rel``'s folder (made if missing) and ``rel``'s last name."""
        parent, name = os.path.split(fs(rel))
        self._folder(parent)
        with self._tree.opened(parent) as dfd:
            yield dfd, name

    def add_dir(self, rel: str, mode: int = 0o755) -> None:
        self._folder(fs(rel))

    def _open(self, rel: str) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with self._in_folder(rel) as (dfd, name):
            return os.open(name, flags, 0o600, dir_fd=dfd)

    @staticmethod
    def _finish(fd: int, mode: int, mtime_ns: int) -> None:
        try:
            os.fchmod(fd, stat.S_IMODE(mode))
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)

    def add_file(
        self, rel: str, size: int, chunks: Iterable[bytes], *, mode: int, mtime_ns: int, record: bool = True
    ) -> None:
        fd = self._open(rel)
        sha = hashlib.sha256()
        try:
            with open(fd, "wb", closefd=False) as f:
                for chunk in sized(chunks, size, rel):
                    sha.update(chunk)
                    f.write(chunk)
        except BaseException:
            os.close(fd)
            raise
        self._finish(fd, mode, mtime_ns)
        if record:
            self._record(rel, sha, size)

    @contextlib.contextmanager
    def open_stream(self, rel: str, *, mode: int, mtime_ns: int) -> Iterator[HashingWriter]:
        fd = self._open(rel)
        try:
            with open(fd, "wb", closefd=False, buffering=COPY_BUFFER) as f:
                w = HashingWriter(f)
                yield w
        except BaseException:
            os.close(fd)
            raise
        self._finish(fd, mode, mtime_ns)
        self._record(rel, w.sha, w.size)

    def add_symlink(self, rel: str, target: bytes, *, mtime_ns: int) -> None:
        with self._in_folder(rel) as (dfd, name):
            os.symlink(target, name, dir_fd=dfd)
            os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=dfd, follow_symlinks=False)

    def add_special(self, rel: str, node: Node) -> None:
        self.warnings.append(
            f"{rel}: a {node.type} is not recreated in a folder export (it is in a tar export)"
        )

    def commit(self) -> None:
        self._tree.close()
        st = os.lstat(self.tmp)
        if (st.st_dev, st.st_ino) != self._id:
            raise IntegrityError(
                f"{os.fsdecode(self.tmp)} was replaced while the export was written; nothing was moved into "
                f"place (the export written so far is no longer at that name)"
            )
        os.rename(self.tmp, self.final)  # replaces only an empty folder; never a non-empty one

    def abort(self) -> None:
        self._tree.close()
        try:
            st = os.lstat(self.tmp)
        except OSError:
            return
        if (st.st_dev, st.st_ino) == self._id:  # never what someone put at that name
            shutil.rmtree(self.tmp, ignore_errors=True)


_TAR_TYPES = {FIFO: tarfile.FIFOTYPE, CHARDEV: tarfile.CHRTYPE, BLOCKDEV: tarfile.BLKTYPE}


def tar_special(info: tarfile.TarInfo, node: Node) -> bool:
    """Fill ``info`` for a FIFO or device node; False for kinds tar cannot hold (sockets)."""
    t = _TAR_TYPES.get(node.type)
    if t is None:
        return False
    info.type = t
    if node.type in (CHARDEV, BLOCKDEV):
        info.devmajor, info.devminor = os.major(node.rdev), os.minor(node.rdev)
    return True


class TarSink(_Base):
    """Writes the export as one tar stream below a top folder ``top`` (``compression``: ``gz``, ``zst``
    or ``""``). Entries are owned by the exporting user; the top folder is mode 0700."""

    def __init__(
        self, final: bytes, top: str, compression: str, *, gzip_level: int, zstd_level: int, mtime_ns: int
    ) -> None:
        super().__init__(final)
        self.top = top
        self.mtime_ns = mtime_ns
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._raw = open(fd, "wb", buffering=COPY_BUFFER)  # noqa: SIM115 (lives as long as the sink)
        self._comp: Any = None
        target: Any = self._raw
        if compression == "gz":
            self._comp = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=gzip_level, mtime=0)
            target = self._comp
        elif compression == "zst":
            cctx = zstandard.ZstdCompressor(level=zstd_level, write_checksum=True)
            self._comp = cctx.stream_writer(self._raw, closefd=False)
            target = self._comp
        # Not the "w|" stream mode: its 10 KiB re-buffering copies large writes quadratically.
        self.tar = tarfile.TarFile(
            fileobj=target,
            mode="w",
            format=tarfile.PAX_FORMAT,
            encoding="utf-8",
            errors="surrogateescape",
            copybufsize=COPY_BUFFER,
        )
        self._dirs: set[str] = set()
        self._uid, self._gid = os.getuid(), os.getgid()
        self.add_dir("", 0o700)

    def _info(self, rel: str, mode: int, mtime_ns: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(f"{self.top}/{rel}" if rel else self.top)
        info.mode = stat.S_IMODE(mode)
        info.uid, info.gid = self._uid, self._gid
        info.mtime = mtime_ns // 1_000_000_000
        info.pax_headers = {"mtime": pax_time(mtime_ns)}
        return info

    def _parents(self, rel: str) -> None:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.add_dir("/".join(parts[:i]))

    def add_dir(self, rel: str, mode: int = 0o755) -> None:
        if rel in self._dirs:
            return
        if rel:
            self._parents(rel)
        info = self._info(rel, mode, self.mtime_ns)
        info.type = tarfile.DIRTYPE
        self.tar.addfile(info)
        self._dirs.add(rel)

    def _add(self, info: tarfile.TarInfo, fileobj: Any = None) -> None:
        self.tar.addfile(info, fileobj)
        self.tar.getmembers().clear()  # written members are never looked up again: keep memory flat

    def add_file(
        self, rel: str, size: int, chunks: Iterable[bytes], *, mode: int, mtime_ns: int, record: bool = True
    ) -> None:
        self._parents(rel)
        info = self._info(rel, mode, mtime_ns)
        info.size = size
        sha = hashlib.sha256()
        reader = ChunkReader(sized(chunks, size, rel), sha)
        try:
            self._add(info, reader)
        except OSError as exc:  # tarfile's "unexpected end of data"
            raise IntegrityError(f"{rel}: the snapshot holds fewer bytes than its recorded size") from exc
        if not reader.exhausted():
            raise IntegrityError(f"{rel}: the snapshot holds more bytes than its recorded size")
        if record:
            self._record(rel, sha, size)

    @contextlib.contextmanager
    def open_stream(self, rel: str, *, mode: int, mtime_ns: int) -> Iterator[HashingWriter]:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, dir=os.fsdecode(self.parent)) as spool:
            w = HashingWriter(spool)
            yield w
            spool.seek(0)
            self._parents(rel)
            info = self._info(rel, mode, mtime_ns)
            info.size = w.size
            self._add(info, spool)
        self._record(rel, w.sha, w.size)

    def add_symlink(self, rel: str, target: bytes, *, mtime_ns: int) -> None:
        self._parents(rel)
        info = self._info(rel, 0o777, mtime_ns)
        info.type = tarfile.SYMTYPE
        info.linkname = os.fsdecode(target)
        self._add(info)

    def add_special(self, rel: str, node: Node) -> None:
        self._parents(rel)
        info = self._info(rel, node.mode, node.mtime_ns)
        if tar_special(info, node):
            self._add(info)
        else:
            self.warnings.append(f"{rel}: a {node.type} cannot be stored in a tar archive")

    def commit(self) -> None:
        self.tar.close()
        if self._comp is not None:
            self._comp.close()  # ends the gzip member / zstd frame; the raw file stays open
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.link(self.tmp, self.final)  # fails if something appeared at the final path meanwhile
        os.unlink(self.tmp)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
