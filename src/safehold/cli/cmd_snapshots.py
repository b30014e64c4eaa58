"""Looking at what is stored: snapshots, ls, diff."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime

import click

from safehold.cli.app import App, pass_app
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import DIR, Node
from safehold.engine.format.treewalk import find_node, walk
from safehold.engine.util import human_bytes, human_span
from safehold.operations.restore.latest import failed_components


@click.command()
@click.option("--tag", "tags", multiple=True, help="Only snapshots with this tag.")
@click.option("--host", help="Only snapshots of this host.")
@pass_app
def snapshots(app: App, tags: tuple[str, ...], host: str | None) -> None:
    """List snapshots, oldest first. A copy (off-site, 'copy') shows the id it was copied from; either id
    names it wherever a snapshot is asked for.

    'Time' is what the snapshot's writer recorded; 'Written' is when the storage says the snapshot file
    was written (its writer cannot claim it). A partial snapshot is marked with the components that failed
    in it ('restore COMPONENT' then takes the newest snapshot where that component completed). A snapshot dated more than 10 minutes in the future of this
    machine's clock is marked and warned about: 'latest' never picks it.
    """
    repo = app.open_repo()
    damaged: list[str] = []
    snaps = [
        s
        for s in repo.snapshots(damaged=damaged)
        if (not host or s.hostname == host) and all(t in s.tags for t in tags)
    ]
    for line in damaged:
        app.warn(f"warning: damaged snapshot file, not listed: {line} (see 'safehold check')")
    now = datetime.now(UTC)
    lines = [f"{'ID':8}  {'Time':19}  {'Written':19}  {'Host':16}  {'Tags':16}  Paths"]
    rows = []
    for s in snaps:
        ahead = s.ahead(now)
        written = s.written_datetime
        lines.append(
            f"{s.short_id}  {_local(s.datetime)}  {_local(written) if written else '-':19}  "
            f"{s.hostname[:16]:16}  {','.join(s.tags)[:16]:16}  {', '.join(s.paths)}"
            + _failed_mark(s)
            + ("  (pinned)" if s.pinned else "")
            + (f"  ({'first saved as' if s.pinned else 'copy of'} {s.original[:8]})" if s.original else "")
            + ("  (FUTURE: never latest)" if ahead else "")
        )
        if ahead:
            app.warn(
                f"warning: snapshot {s.short_id} is dated {s.time}, {human_span(ahead)} ahead of this machine's "
                f"clock (written {written.isoformat(timespec='seconds') if written else 'at an unknown time'}); "
                "'latest' skips it: name it by its id to use it"
            )
        rows.append({**s.to_json(), "future": ahead is not None, "failed_components": failed_components(s)})
    lines.append(f"{len(snaps)} snapshot(s)")
    app.emit(rows, "\n".join(lines))


def _failed_mark(s: Snapshot) -> str:
    """``  (partial: database failed)`` for a snapshot whose required components failed, ``  (flaky
    failed, optional)`` when only optional ones did; nothing for a complete snapshot."""
    failed = failed_components(s)
    if s.partial:
        return f"  (partial: {', '.join(failed)} failed)" if failed else "  (partial)"
    return f"  ({', '.join(failed)} failed, optional)" if failed else ""


def _local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _mode_string(node: Node) -> str:
    kind = {
        "dir": stat.S_IFDIR,
        "symlink": stat.S_IFLNK,
        "fifo": stat.S_IFIFO,
        "socket": stat.S_IFSOCK,
        "chardev": stat.S_IFCHR,
        "blockdev": stat.S_IFBLK,
    }.get(node.type, stat.S_IFREG)
    return stat.filemode(kind | node.mode)


@click.command("ls")
@click.argument("snapshot")
@click.argument("path", required=False, default="")
@click.option("-l", "--long", "long_", is_flag=True, help="Show mode, owner, size and time.")
@pass_app
def ls_cmd(app: App, snapshot: str, path: str, long_: bool) -> None:
    """List the files of SNAPSHOT (below PATH)."""
    repo = app.open_repo()
    repo.load_index()
    snap = repo.find_snapshot(snapshot)
    start = find_node(repo, bytes.fromhex(snap.tree), path)
    base = "/" + path.strip("/") if path.strip("/") else ""
    items: list[tuple[str, Node]] = []
    if start.type == DIR and start.subtree is not None:
        for rel, node in walk(repo, start.subtree):
            items.append((f"{base}/{os.fsdecode(rel)}", node))
    else:
        items.append((base, start))
    if app.json:
        app.emit([{"path": p, **n.to_json()} for p, n in items])
        return
    for p, n in items:
        if long_:
            when = n.mtime_ns // 1_000_000_000
            from datetime import datetime

            ts = datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S")
            owner = f"{n.user or n.uid}/{n.group or n.gid}"
            click.echo(f"{_mode_string(n)} {owner:>16} {n.size:>12} {ts} {p}")
        else:
            click.echo(p)


@click.command()
@click.argument("snap1")
@click.argument("snap2")
@pass_app
def diff(app: App, snap1: str, snap2: str) -> None:
    """Show what changed between two snapshots (+ added, - removed, M modified, T type, U metadata),
    then the configuration drift of SaaS components field by field (+ object added, - removed, ~ field
    changed; secret fields only say that they changed)."""
    from safehold.operations.inspect.diff import configuration_drift, diff_snapshots  # heavy: only for diff

    repo = app.open_repo()
    changes, stats = diff_snapshots(repo, snap1, snap2)
    drift = configuration_drift(repo, snap1, snap2)
    text = "\n".join(f"{c.kind}  {c.path}" for c in changes)
    text += (
        f"\n\nadded: {stats['added']}, removed: {stats['removed']}, modified: {stats['modified']}, "
        f"metadata only: {stats['metadata']}; data added: {human_bytes(stats['bytes_added'])}"
    )
    if drift:
        text += "\n\nconfiguration drift:"
        for d in drift:
            text += f"\n  {d.component} ({d.kind}): " + (
                f"{len(d.lines)} change(s)" if d.lines else "no changes"
            )
            text += "".join(f"\n    {line}" for line in d.lines)
    app.emit(
        {
            "changes": [c.__dict__ for c in changes],
            "stats": stats,
            "drift": {d.component: {"kind": d.kind, "changes": d.lines} for d in drift},
        },
        text.strip(),
    )


COMMANDS = [snapshots, ls_cmd, diff]
