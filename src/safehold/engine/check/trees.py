"""Reading the trees that ``check`` walks, from local storage, through a few windows of their packs.

The structure check reads every tree of every snapshot, one small blob at a time, in the order of the walk.
Loaded one by one, each tree is a backend call (open, read, close, behind the connection limit that the
``--read-data`` readers hold most of the time). :class:`TreeReader` reads aligned windows of
:data:`WINDOW` bytes of a tree pack instead and keeps the last :data:`KEEP` of them: the trees of one
snapshot lie together in a few packs, written children first, so most trees come from a window already
read. Memory is bounded by ``WINDOW * KEEP``, whatever the number of trees. Every tree is still decrypted,
decompressed and checked against its id (:meth:`Repository.decode_blob`); a tree that is not in a window
(remote storage, a pack shorter than the index says, a read that fails) is loaded on its own as before,
so a problem is reported in the same words.
"""

from __future__ import annotations

from collections.abc import Mapping

from safehold.backends.base import FileType, Handle
from safehold.engine.format.index import BlobLocation
from safehold.engine.format.pack import TREE
from safehold.engine.format.repository import Repository
from safehold.errors import SafeholdError

#: Bytes of a tree pack read at once (aligned to a multiple of it).
WINDOW = 512 * 1024
#: Windows kept.
KEEP = 4


class TreeReader:
    """Loads tree blobs (decoded and verified) for a walk; ``sizes`` maps pack names to their stored sizes."""

    def __init__(self, repo: Repository, sizes: Mapping[str, int]) -> None:
        self.repo = repo
        self._sizes = sizes
        self._local = repo.backend.properties.local
        self._windows: list[tuple[bytes, int, bytes]] = []  # (pack id, offset, bytes), most recent first
        self.reads = 0  # windows read (for tests and measurements)

    def load(self, tree_id: bytes, loc: BlobLocation) -> bytes:
        """The plaintext of tree ``tree_id`` at ``loc`` (its index entry); raises what
        :meth:`Repository.load_blob` raises."""
        sealed = self._from_window(loc) if self._local else None
        if sealed is None:
            return self.repo.load_blob(TREE, tree_id)
        return self.repo.decode_blob(tree_id, loc, loc.envelope, sealed)

    def _from_window(self, loc: BlobLocation) -> memoryview | None:
        end = loc.offset + loc.length
        for i, (pid, start, buf) in enumerate(self._windows):
            if pid == loc.pack_id and start <= loc.offset and end <= start + len(buf):
                if i:
                    self._windows.insert(0, self._windows.pop(i))
                return memoryview(buf)[loc.offset - start : end - start]
        name = loc.pack_id.hex()
        size = self._sizes.get(name)
        if size is None or loc.offset < 0 or loc.length <= 0 or end > size:
            return None
        start = loc.offset - loc.offset % WINDOW
        stop = min(size, max(end, start + WINDOW))
        try:
            buf = self.repo.backend.load(Handle(FileType.DATA, name), start, stop - start)
        except SafeholdError:
            return None
        if len(buf) != stop - start:
            return None
        self.reads += 1
        self._windows.insert(0, (loc.pack_id, start, buf))
        del self._windows[KEEP:]
        return memoryview(buf)[loc.offset - start : end - start]
