"""Live paths and their restored copies in a drill's sandbox.

A drill restores each component below ``sandbox.root / <component>``, each kind in its own layout
(:meth:`~safehold.sources.base.Source.sandbox_path`). What reads a restored copy by its live name (a
health check of ``/var/www/app/storage``, ``nginx -t`` following ``include /etc/nginx/sites-enabled/*``, a
certificate at ``/etc/letsencrypt/live/HOST/cert.pem``) goes through :func:`locate`, which follows restored
symlinks in the live name space, so that a link leads to the restored copy of its target and never to the
live system. Restored content is untrusted.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from pathlib import Path

#: Live path -> its location below the sandbox; None when no restored component holds it.
Where = Callable[[str], Path | None]
MAX_LINKS = 40


class OutsideSandbox(Exception):
    """A restored path cannot be checked where it is (not restored, a symlink loop, leads outside)."""


def locate(live: str, where: Where, root: Path) -> Path:
    """The restored copy of the live absolute path ``live``: resolved one name at a time in the live name
    space; ``where(p)`` gives the sandbox location of live path ``p`` (None: no component holds it, a
    folder above the components' paths). A symlink found in the sandbox is read and its target, taken as
    a live path (relative to the folder it is in, or absolute), is resolved the same way. The result is
    below ``root`` (refused otherwise: a restored folder above a component's paths that is a symlink)."""
    todo = [p for p in live.split("/") if p]
    cur = "/"
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            cur = posixpath.dirname(cur)
            continue
        cand = posixpath.join(cur, part)
        loc = where(cand)
        if loc is not None and os.path.islink(loc):
            links += 1
            if links > MAX_LINKS:
                raise OutsideSandbox(f"{live}: too many symbolic links")
            target = os.readlink(loc)
            todo = [p for p in target.split("/") if p] + todo
            if target.startswith("/"):
                cur = "/"
            continue
        cur = cand
    loc = where(cur)
    if loc is None:
        raise OutsideSandbox(
            f"{cur} is held by no component of the drilled profile"
            + (f" ({live} leads there)" if cur != os.path.normpath(live) else "")
        )
    real = os.path.realpath(loc)
    base = os.path.realpath(root)
    if real != base and not real.startswith(base + "/"):
        raise OutsideSandbox(f"the restored {cur} leads outside the sandbox (to {real}): not followed")
    return loc
