"""Restore of the ``git`` source: :func:`plan_restore` changes nothing, :func:`apply` executes exactly its
plan: the bundle cloned back into place (every ref, the remotes, HEAD and the stash as recorded), or without
a bundle the state files written beside it (see the package docstring)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Protocol

from safehold.engine.fs.safedir import (
    SINGLE_FILE_HINT,
    InTheWay,
    folder_of,
    folder_warnings,
    open_dir_of_file,
    step_down,
)
from safehold.errors import SourceError
from safehold.fsutil import atomic_write, private_dir
from safehold.sources.base import RestorePlan, RestoreReport
from safehold.sources.component import ComponentReader
from safehold.sources.git.options import GitOptions, GitRestoreOptions

#: The component folder: the state files the backup writes (and a restore without a bundle puts back).
TEXT_FILES = ("head.txt", "status.txt", "log.txt", "branches.txt", "tags.txt", "stash.txt", "remotes.txt")
BUNDLE = "repo.bundle"


class Git(Protocol):
    """Runs git in ``repo`` for the component; its stdout as text (SourceError on failure when ``check``)."""

    def __call__(self, repo: Path, *args: str, check: bool = True) -> str: ...


def target_of(options: GitOptions, ro: GitRestoreOptions) -> Path:
    """Where the repository is restored: its path, or that path below ``target_root``."""
    repo = Path(options.path)
    if ro.target_root:
        return Path(ro.target_root) / repo.resolve().relative_to(repo.resolve().anchor)
    return repo


def plan_restore(
    component: str, options: GitOptions, ro: GitRestoreOptions, snap: ComponentReader
) -> RestorePlan:
    """Clone the bundle back into place (or write the text files)."""
    plan = RestorePlan(component=component, options=ro)
    target = target_of(options, ro)
    remotes = _parse_remotes(snap.read_bytes("remotes.txt").decode()) if snap.exists("remotes.txt") else []
    fetch_urls = [(name, url) for name, url, d in remotes if d == "fetch"]
    if not snap.exists(BUNDLE):
        state_dir = target.with_name(target.name + ".git-state")
        names = [f for f in TEXT_FILES if snap.exists(f)]
        for fname in names:
            verb = "overwrite" if (state_dir / fname).exists() else "write"
            plan.actions.append(f"{verb} {state_dir / fname}")
        clone_from = fetch_urls[0][1] if fetch_urls else "<remote url>"
        plan.warnings.append(
            "no bundle in this snapshot: the code must come from the remote "
            f"(git clone {clone_from} {target})"
        )
        plan.steps.append(("state", state_dir, names))
        plan.warnings += folder_warnings(state_dir, ro.target_root, folder=True)
        return plan

    # another user's symlink on the way: never looked through, never replaced (refused)
    problem = folder_warnings(target, ro.target_root, folder=True)
    if problem:
        plan.warnings += problem
    elif target.exists() and (not target.is_dir() or any(target.iterdir())):
        plan.warnings.append(f"{target} exists and is not empty: the restore would refuse")
        plan.steps.append(("refuse", target))
        return plan
    head = snap.read_bytes("head.txt").decode().splitlines() if snap.exists("head.txt") else []
    head_ref = head[0][len("ref: ") :] if head and head[0].startswith("ref: ") else ""
    plan.actions.append(f"clone {BUNDLE} into {target} (all refs)")
    plan.actions.append(f"check out {head_ref or (head[1] if len(head) > 1 else 'HEAD')}")
    for name, url, direction in remotes:
        plan.actions.append(f"set remote {name} {direction} url {url}")
    plan.details["target"] = str(target)
    stash = snap.read_bytes("stash.txt").decode().split("\n", 1)[0] if snap.exists("stash.txt") else ""
    message = stash.split("\t", 2)[2] if stash.count("\t") >= 2 else ""
    plan.steps.append(("clone", target, head_ref, head[1] if len(head) > 1 else "", remotes, message))
    return plan


def apply(component: str, plan: RestorePlan, snap: ComponentReader, git: Git) -> RestoreReport:
    """Execute ``plan`` (made by :func:`plan_restore`) and nothing else; ``git`` runs git for the component."""
    report = RestoreReport(component, list(plan.actions), list(plan.warnings), dict(plan.details))
    ro: GitRestoreOptions = plan.options
    # every folder from the target root (or /) down is opened one name at a time: another user's
    # symlink on the way is refused, never followed or replaced
    for step in plan.steps:
        if step[0] == "state":
            _, state_dir, names = step
            fd = open_dir_of_file(os.fsencode(os.path.abspath(state_dir)), ro.target_root, folder=True)
            try:
                for fname in names:  # remote URLs: private
                    atomic_write(fname, snap.read_bytes(fname), mode=0o600, dir_fd=fd)
            finally:
                os.close(fd)
        elif step[0] == "refuse":
            raise SourceError(
                f"component {component}: {step[1]} exists and is not empty",
                hint="Move it away, or restore with --target-root DIR to recreate the repository elsewhere.",
            )
        else:
            _, target, head_ref, head_id, remotes, message = step
            with (
                private_dir("safehold-git-") as tmp,
                folder_of(target, ro.target_root) as pfd,
            ):
                bundle = tmp / BUNDLE
                with bundle.open("wb") as f:
                    for block in snap.open_stream(BUNDLE):
                        f.write(block)
                _clone(
                    git,
                    bundle,
                    pfd,
                    target,
                    head_ref=head_ref,
                    head_id=head_id,
                    remotes=remotes,
                    stash_message=message,
                )
    return report


def _clone(
    git: Git,
    bundle: Path,
    pfd: int,
    target: Path,
    *,
    head_ref: str,
    head_id: str,
    remotes: list[tuple[str, str, str]],
    stash_message: str,
) -> None:
    """Clone into ``target``, a folder in the folder open as ``pfd``: opened by name without following
    another user's symlink, and git run in it through ``/proc/PID/fd`` (never by its path)."""
    leaf = os.fsencode(target.name)
    created = not _exists(pfd, leaf)
    try:
        tfd = step_down(pfd, os.fsencode(target), leaf, create=True, replace=False)
    except InTheWay as exc:
        raise InTheWay(exc.message, hint=SINGLE_FILE_HINT) from None
    here = Path(f"/proc/{os.getpid()}/fd/{tfd}")
    target = here  # every git call below runs in the folder just opened
    try:
        # a mirror clone keeps every ref of the bundle (remote-tracking branches, refs/stash too)
        git(here, "clone", "--quiet", "--mirror", str(bundle), ".git")
        git(target, "config", "--remove-section", "remote.origin")
        git(target, "config", "core.bare", "false")
        git(target, "config", "core.logallrefupdates", "true")
        for name, url, direction in remotes:
            if direction == "fetch":
                if name not in git(target, "remote").split():
                    git(target, "remote", "add", "--", name, url)
                else:
                    git(target, "remote", "set-url", "--add", "--", name, url)
        for name, url, direction in remotes:
            if direction == "push":
                fetch = [u for n, u, d in remotes if n == name and d == "fetch"]
                if url not in fetch:
                    git(target, "remote", "set-url", "--add", "--push", "--", name, url)
        stash = git(target, "rev-parse", "-q", "--verify", "refs/stash", check=False).strip()
        if stash:  # git reads the stash through its reflog, which a clone does not carry
            message = stash_message or "restored by safehold"
            git(target, "update-ref", "-d", "refs/stash")
            git(target, "update-ref", "--create-reflog", "-m", message, "refs/stash", stash)
        if head_ref:
            git(target, "symbolic-ref", "HEAD", head_ref)
        elif head_id:
            git(target, "update-ref", "--no-deref", "HEAD", head_id)
        if head_id:
            git(target, "reset", "--quiet", "--hard")
    except BaseException:
        if created:
            shutil.rmtree(leaf, dir_fd=pfd, ignore_errors=True)
        else:
            shutil.rmtree(".git", dir_fd=tfd, ignore_errors=True)
        raise
    finally:
        os.close(tfd)


def _exists(dfd: int, name: bytes) -> bool:
    try:
        os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


#: A remote name or URL as restore passes it to ``git remote``: no leading '-' (an option), no control
#: characters or spaces in names. remotes.txt comes from the repository, which is not trusted.
_REMOTE_NAME = re.compile(r"[^\s\x00-\x1f\x7f-][^\s\x00-\x1f\x7f]*")
_REMOTE_URL = re.compile(r"[^\s\x00-\x1f\x7f-][^\x00-\x1f\x7f]*")


def _parse_remotes(text: str) -> list[tuple[str, str, str]]:
    """``(name, url, "fetch"|"push")`` of each well-formed line; a line whose name or URL git could read
    as an option (or that holds control characters) is left out."""
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        well_formed = len(parts) == 3 and parts[2] in ("(fetch)", "(push)")
        if well_formed and _REMOTE_NAME.fullmatch(parts[0]) and _REMOTE_URL.fullmatch(parts[1]):
            out.append((parts[0], parts[1], parts[2].strip("()")))
    return out
