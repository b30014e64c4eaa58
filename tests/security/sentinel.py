"""A folder around a restore target whose every detail is fingerprinted, to prove that nothing outside the
target was created, changed, chmod-ed or chown-ed.

``World(tmp_path)`` lays out::

    world/              the sentinel: fingerprinted (itself too) before and after
      target/           where the restore goes (created empty, excluded from the fingerprint)
      outside/          what an attacker would like to reach: files, a folder, a private file
        etc/            a folder a planted symlink points at (stands for /etc/profile.d or /root)
          profile.sh
        secret          mode 0600

A symlink planted below the target points at ``outside/etc``; a name that escapes lands in ``world/`` or
``outside/``. :meth:`World.assert_untouched` compares names, types, modes, owners, mtimes (ns) and
contents (or symlink targets) with the fingerprint taken at construction.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

Fingerprint = dict[bytes, tuple[object, ...]]


def fingerprint(root: bytes, exclude: set[bytes]) -> Fingerprint:
    """Every entry below ``root`` (itself as b""), never following a symlink, ``exclude``d paths (relative,
    with what is below them) left out."""
    out: Fingerprint = {}
    stack = [b""]
    while stack:
        rel = stack.pop()
        path = os.path.join(root, rel) if rel else root
        st = os.lstat(path)
        body: object = None
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                body = hashlib.sha256(f.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            body = os.readlink(path)
        out[rel] = (
            stat.S_IFMT(st.st_mode),
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            st.st_mtime_ns,
            body,
        )
        if stat.S_ISDIR(st.st_mode):
            for name in os.listdir(path):
                child = os.path.join(rel, name) if rel else name
                if child not in exclude:
                    stack.append(child)
    return out


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "world"
        self.target = self.root / "target"
        self.outside = self.root / "outside"
        (self.outside / "etc").mkdir(parents=True)
        (self.outside / "etc" / "profile.sh").write_text("echo hello\n")
        (self.outside / "secret").write_text("root's secret\n")
        os.chmod(self.outside / "secret", 0o600)
        os.chmod(self.outside / "etc", 0o755)
        self.target.mkdir()
        # distinct, old times: a write or chmod anywhere shows as a changed mtime or mode
        for p in (
            self.outside / "etc" / "profile.sh",
            self.outside / "secret",
            self.outside / "etc",
            self.outside,
        ):
            os.utime(p, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
        os.utime(self.root, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
        self.excluded = {b"target"}
        self.before = self.fingerprint()

    def fingerprint(self) -> Fingerprint:
        return fingerprint(os.fsencode(self.root), self.excluded)

    def exclude(self, rel: str) -> None:
        """Leave ``rel`` (relative to the world) out of the comparison from now on."""
        self.excluded.add(os.fsencode(rel))
        self.before = {k: v for k, v in self.before.items() if not _below(k, os.fsencode(rel))}

    def assert_untouched(self) -> None:
        after = self.fingerprint()
        created = sorted(set(after) - set(self.before))
        removed = sorted(set(self.before) - set(after))
        changed = sorted(k for k in set(after) & set(self.before) if after[k] != self.before[k])
        assert (created, removed, changed) == ([], [], []), "something outside the target was touched"


def _below(path: bytes, top: bytes) -> bool:
    return path == top or path.startswith(top + b"/")
