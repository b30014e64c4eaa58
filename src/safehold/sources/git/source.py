"""The ``git`` source (see the package docstring)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel

from safehold import proc
from safehold.errors import SourceError
from safehold.sources.base import Finding, RestorePlan, RestoreReport, Source, SourceContext
from safehold.sources.checks import Checks
from safehold.sources.component import ComponentReader, ComponentWriter
from safehold.sources.git import restore
from safehold.sources.git.options import GitOptions, GitRestoreOptions
from safehold.sources.git.restore import BUNDLE, TEXT_FILES
from safehold.sources.verify import Check, Sandbox, VerifyReport

_SSH_SCHEMES = {"ssh", "git+ssh", "ssh+git"}
_SECRET_PARAM = re.compile(r"token|secret|pass|key|auth|sig|credential", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


def strip_credentials(url: str) -> str:
    """``url`` without credentials.

    ``https://user:token@host/x`` -> ``https://host/x`` (the whole user part goes for non-SSH schemes,
    since a bare token is often given as the user name); ``ssh://git:pw@host/x`` -> ``ssh://git@host/x``
    (the SSH login name is kept, it is not a secret); query parameters that look like tokens are
    dropped. scp-like ``git@host:x.git`` and local paths carry no password and are returned unchanged.
    """
    if "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if parts.scheme.lower() in _SSH_SCHEMES:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}@{hostport}" if user else hostport
        else:
            netloc = hostport
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _SECRET_PARAM.search(k)]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_urls(text: str) -> str:
    """Mask the user part of every URL in free text (git's error output may echo a remote URL)."""
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)


#: Added to the environment of every git run: stable output, no prompts, no lock files, no pager.
GIT_ENV = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "GIT_PAGER": "cat"}


def _git_argv(repo: Path, *args: str) -> list[str]:
    return ["git", "-c", "safe.directory=*", "-c", "core.quotepath=off", "-C", str(repo), *args]


class GitSource(Source):
    """Repository state as text files, plus an optional bundle of every ref."""

    kind: ClassVar[str] = "git"
    RestoreOptions: ClassVar[type[BaseModel]] = GitRestoreOptions
    restore_rank: ClassVar[int] = 40
    export_folder: ClassVar[str | None] = "git"
    export_note: ClassVar[str] = (
        "`{base}/`: the repository's state (HEAD, status, last commits, branches, remotes without "
        "credentials). With `repo.bundle`: `git clone {base}/repo.bundle DIR`, then set the remotes from "
        "`remotes.txt`."
    )
    Options: ClassVar[type[BaseModel]] = GitOptions
    options: GitOptions

    def _git(self, repo: Path, *args: str, check: bool = True) -> str:
        """Run git in ``repo``; its stdout as text. Raises SourceError on a non-zero exit when ``check``."""
        res = proc.run_capture(_git_argv(repo, *args), env=GIT_ENV, timeout=self.options.timeout)
        if res.returncode is None:
            raise SourceError(
                f"component {self.name}: git is not installed", hint="Install git (apt-get install git)."
            )
        if check and not res.ok:
            detail = mask_urls(res.last_error())
            raise SourceError(f"component {self.name}: git {args[0]} failed: {detail}")
        return res.stdout.decode("utf-8", "replace") if res.ok else ""

    # ---------------------------------------------------------------------------------------- backup
    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Write the text files (and the bundle); raises SourceError for a non-repository or empty one."""
        repo = Path(self.options.path)
        if not repo.is_dir():
            raise SourceError(f"component {self.name}: {repo} does not exist", hint="Check the path.")
        res = proc.run_capture(_git_argv(repo, "rev-parse", "--is-bare-repository"), env=GIT_ENV)
        if res.returncode is None:
            raise SourceError(f"component {self.name}: git is not installed", hint="Install git.")
        if not res.ok:
            raise SourceError(
                f"component {self.name}: {repo} is not a git repository",
                hint="Point 'path' at the folder that holds the .git directory (or a bare repository).",
            )
        bare = res.stdout.strip() == b"true"
        refs = self._git(repo, "for-each-ref", "--format=%(objectname)\t%(refname)")
        if not refs.strip():
            raise SourceError(
                f"component {self.name}: {repo} is an empty repository (no commits)",
                hint="Commit something first, or remove the component.",
            )
        head_ref = self._git(repo, "symbolic-ref", "-q", "HEAD", check=False).strip()
        head_id = self._git(repo, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip()
        files: dict[str, str] = {
            "head.txt": f"{'ref: ' + head_ref if head_ref else 'detached'}\n{head_id}\n",
            "status.txt": (
                "(bare repository: no work tree)\n"
                if bare
                else self._git(repo, "status", "--porcelain=v1", "--branch", "--untracked-files=normal")
            ),
            "log.txt": (
                self._git(
                    repo,
                    "log",
                    f"-n{self.options.log_limit}",
                    "--format=%H%x09%aI%x09%an <%ae>%x09%s",
                    "HEAD",
                )
                if head_id
                else ""
            ),
            "branches.txt": self._git(
                repo,
                "for-each-ref",
                "--format=%(objectname)\t%(refname)\t%(upstream)",
                "refs/heads",
                "refs/remotes",
            ),
            "tags.txt": self._git(
                repo, "for-each-ref", "--format=%(objectname)\t%(refname)\t%(*objectname)", "refs/tags"
            ),
            "stash.txt": self._git(repo, "stash", "list", "--format=%gd%x09%H%x09%gs", check=False)
            if not bare
            else "",
            "remotes.txt": self._remotes(repo),
        }
        for fname in TEXT_FILES:
            out.add_bytes(fname, files[fname].encode("utf-8"), mode=0o644)
        version = self._git(repo, "--version", check=False).strip()
        meta: dict[str, Any] = {
            "path": str(repo),
            "bare": bare,
            "head": head_ref or "detached",
            "head_commit": head_id,
            "branches": sum(1 for line in files["branches.txt"].splitlines() if "\trefs/heads/" in line),
            "tags": len(files["tags.txt"].splitlines()),
            "stashes": len(files["stash.txt"].splitlines()),
            "remotes": sorted({line.split("\t")[0] for line in files["remotes.txt"].splitlines()}),
            "dirty": any(not line.startswith("##") for line in files["status.txt"].splitlines()) and not bare,
            "git_version": version,
            "bundle": self.options.bundle,
        }
        if self.options.bundle:
            meta["shallow"] = self._git(repo, "rev-parse", "--is-shallow-repository").strip() == "true"
            if meta["shallow"]:  # its bundle lacks the history it builds on: no clone can be made from it
                raise SourceError(
                    f"component {self.name}: {repo} is a shallow clone; its bundle could not be restored",
                    hint="Run 'git fetch --unshallow' in the repository, or set bundle = false.",
                )
            meta["bundle_size"] = self._bundle(repo, out)
        return meta

    def _remotes(self, repo: Path) -> str:
        lines = []
        for remote in self._git(repo, "remote").split():
            for direction, extra in (("fetch", ()), ("push", ("--push",))):
                for url in self._git(repo, "remote", "get-url", "--all", *extra, remote).splitlines():
                    lines.append(f"{remote}\t{strip_credentials(url)}\t({direction})\n")
        return "".join(lines)

    def _bundle(self, repo: Path, out: ComponentWriter) -> int:
        def log(line: str) -> None:
            out.log(f"{self.name}: {line}")

        try:
            stats, _res = proc.drain(
                _git_argv(repo, "bundle", "create", "--quiet", "-", "--all"),
                lambda stream: out.add_stream(BUNDLE, stream),
                env=GIT_ENV,
                timeout=self.options.timeout,
                scrub=mask_urls,
                log=log,
            )
        except SourceError as exc:
            raise SourceError(f"component {self.name}: {exc.message}") from None
        return stats.size

    def preflight(self, ctx: SourceContext) -> list[Finding]:
        checks = Checks(self.name)
        git = checks.tool(["git"], what="git")
        if git is None:
            return checks.findings
        res = subprocess.run(
            [git, "-c", "safe.directory=*", "-C", self.options.path, "rev-parse", "--git-dir"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if res.returncode == 0:
            checks.passed("repository", f"{self.options.path} is a git repository")
        else:
            checks.problem(
                "repository", f"{self.options.path} is not a git repository: {res.stderr.strip()[-200:]}"
            )
        return checks.findings

    # --------------------------------------------------------------------------------------- drill
    def verify(self, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext) -> VerifyReport:
        """Drills: ``git bundle verify``, a clone into the sandbox, its HEAD as recorded, ``git fsck``."""
        t0 = time.monotonic()
        checks: list[Check] = []
        folder = sandbox.folder(self.name)
        if not snap.exists(BUNDLE):
            checks.append(
                Check(self.name, "bundle", True, "no bundle (bundle = false): the state files only")
            )
            return VerifyReport(self.name, True, checks, duration=round(time.monotonic() - t0, 3))
        bundle = folder / BUNDLE
        try:
            with bundle.open("wb") as f:
                for block in snap.open_stream(BUNDLE):
                    f.write(block)
            res = proc.run_capture(
                ["git", "bundle", "verify", "--quiet", str(bundle)], env=GIT_ENV, timeout=self.options.timeout
            )
            if not res.ok:
                raise SourceError(f"git bundle verify: {res.last_error()}")
            bundle.unlink()
            self.restore(snap, SourceContext(log=ctx.log, options={"target_root": str(folder / "clone")}))
            clone = restore.target_of(self.options, GitRestoreOptions(target_root=str(folder / "clone")))
            head = snap.read_bytes("head.txt").decode().splitlines() if snap.exists("head.txt") else []
            got = proc.run_capture(_git_argv(clone, "rev-parse", "HEAD"), env=GIT_ENV).stdout.decode().strip()
            if len(head) > 1 and head[1] and got != head[1]:
                raise SourceError(f"the clone's HEAD is {got[:12]}, the snapshot recorded {head[1][:12]}")
            fsck = proc.run_capture(
                _git_argv(clone, "fsck", "--no-progress"), env=GIT_ENV, timeout=self.options.timeout
            )
            if not fsck.ok:
                raise SourceError(f"git fsck: {fsck.last_error()}")
            n = (
                proc.run_capture(_git_argv(clone, "rev-list", "--all", "--count"), env=GIT_ENV)
                .stdout.decode()
                .strip()
            )
            checks.append(
                Check(
                    self.name,
                    "clone",
                    True,
                    f"bundle verified, cloned, HEAD {got[:12]} as recorded, {n} commits, fsck clean",
                )
            )
        except (SourceError, OSError) as exc:
            msg = exc.message if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
            checks.append(Check(self.name, "clone", False, msg))
        return VerifyReport(
            self.name, all(c.ok for c in checks), checks, duration=round(time.monotonic() - t0, 3)
        )

    # --------------------------------------------------------------------------------------- restore
    def restored_paths(self) -> list[str]:
        return [os.path.normpath(self.options.path)]

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        """Clone the bundle back into place (or write the text files): :mod:`.restore`."""
        return restore.plan_restore(self.name, self.options, self.restore_options(ctx.options), snap)

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        return restore.apply(self.name, plan, snap, self._git)
