"""Export layout, the part of the Source contract that ``safehold export`` calls: where a kind's folder
goes when a snapshot is written out as plain files for people and tools without safehold.

Glossary:

* **ExportTree** — read-only access to the snapshot's trees that the export hands a kind (its
  :meth:`~ExportTree.children` and :meth:`~ExportTree.find`); nothing is read from file contents here.
* **Place** — where a component goes: ``base`` (its folder in the export), its name, whether it shares the
  kind's folder with others of the same folder (``several``: then each gets a sub-folder named after it),
  and ``top`` (``components/<name>`` when its default place collided with another component's).
* **Part** — one component's share of the export: :class:`Entry` items (what to write where), the restore
  notes for the export's ``RESTORE.md``, and which files hold secrets.
* **Entry** — one path of the export: a folder, a plain file, a symlink, a file written gzip-compressed,
  a folder as one ``.tar.gz``, or bytes; ``transform`` rewrites a file's bytes on the way out (the mysql
  kind leaves MariaDB's sandbox line out of its dumps).

A kind without an export layout of its own gets :func:`default_layout`: its folder as plain files at
``base``, with its ``export_note`` (:class:`~safehold.sources.base.Source`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from safehold.engine.format.tree import DIR, FILE, SYMLINK, Node

TREE_TAR = "tree-tar"  # node: a folder; its children are the archive's top level
GZIP = "gzip"  # node: a file, written gzip-compressed
PLAIN = "file"
LINK = "symlink"
FOLDER = "dir"
SPECIAL = "special"
BYTES = "bytes"

#: Mode of files that hold or may hold secrets (dumps, archives, .env, private keys).
SECRET = 0o600
#: The note of a folder exported as plain files, when its kind says nothing better.
DEFAULT_NOTE = "`{base}/`: the component's files as stored."

_SSH_KEYS = ("id_rsa", "id_ed25519", "id_ecdsa", "id_dsa")

Transform = Callable[[Iterable[bytes]], Iterator[bytes]]


@dataclass
class Entry:
    dest: str
    what: str
    node: Node | None = None
    data: bytes = b""
    mode: int | None = None
    #: rewrites the file's bytes on their way into the export (None: as stored)
    transform: Transform | None = None


@dataclass
class Part:
    """One component's share of the export."""

    component: str
    kind: str
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    #: what the export's guide says about the whole part holding secrets (database dumps), or None
    warning: str | None = None


@dataclass(frozen=True)
class Place:
    """Where a component goes in the export."""

    name: str
    base: str
    top: str = ""
    several: bool = False


class ExportTree(Protocol):
    """The snapshot's trees, read-only, as an export reads them."""

    def children(self, node: Node) -> list[Node]:
        """The entries of a folder node (empty for anything else)."""
        ...

    def find(self, node: Node, rel: str) -> Node | None:
        """The node at ``rel`` (``a/b``) below ``node``, or None."""
        ...


def join(*parts: str) -> str:
    """Export paths joined with ``/``, empty parts and outer slashes dropped."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def secret_reason(dest: str) -> str | None:
    """Why a file of the export holds a secret, or None (by name: .env files, private keys, redis)."""
    base = posixpath.basename(dest)
    if base in ("env.production",) or (base.startswith(".env") and not base.endswith(".example")):
        return "application secrets (.env)"
    if base.startswith("privkey") or base.endswith((".key", "private_key.json")) or base in _SSH_KEYS:
        return "private key"
    if base in ("dump.rdb", "keys.dump"):
        return "Redis data (sessions, tokens, cache)"
    return None


def plain(tree: ExportTree, node: Node, dest: str, part: Part) -> None:
    """``node`` (recursively) as plain files, folders and symlinks at ``dest``; files whose name says they
    hold secrets are written mode 0600 and listed."""
    if node.type == DIR:
        part.entries.append(Entry(dest, FOLDER, node))
        for child in tree.children(node):
            plain(tree, child, join(dest, child.display_name), part)
    elif node.type == FILE:
        reason = secret_reason(dest)
        part.entries.append(Entry(dest, PLAIN, node, mode=SECRET if reason else None))
        if reason:
            part.secrets.append(f"{dest}: {reason}")
    elif node.type == SYMLINK:
        part.entries.append(Entry(dest, LINK, node))
    else:
        part.entries.append(Entry(dest, SPECIAL, node))


def gz(node: Node, dest: str, part: Part, *, transform: Transform | None = None) -> None:
    """The file ``node`` written gzip-compressed at ``dest`` (mode 0600)."""
    part.entries.append(Entry(dest, GZIP, node, mode=SECRET, transform=transform))


def default_layout(tree: ExportTree, node: Node, place: Place, part: Part, note: str = DEFAULT_NOTE) -> None:
    """The component's folder as plain files at ``place.base``, and ``note`` (``{base}``, ``{name}``)."""
    for child in tree.children(node):
        plain(tree, child, join(place.base, child.display_name), part)
    part.notes.append(note.format(base=place.base, name=place.name))
