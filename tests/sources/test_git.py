"""The git source against real repositories made in a temporary folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from safehold.errors import SourceError
from safehold.sources.base import SourceContext
from safehold.sources.git import GitOptions, GitSource, strip_credentials
from safehold.sources.registry import source_class

from .memcomponent import MemoryComponent

SECRET = "s3cret"
REMOTE = f"https://user:{SECRET}@example.invalid/r.git"
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "T",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "T",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=ENV
    ).stdout


def refs(repo: Path) -> str:
    return git(repo, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads", "refs/tags")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "src" / "app"
    r.mkdir(parents=True)
    git(r, "init", "-q", "-b", "main")
    for i in range(3):
        (r / "file.txt").write_text(f"v{i}\n")
        git(r, "add", "file.txt")
        git(r, "commit", "-q", "-m", f"commit {i}")
    git(r, "tag", "v1")
    git(r, "tag", "-a", "v2", "-m", "annotated")
    git(r, "checkout", "-q", "-b", "feature")
    (r / "feat.txt").write_text("feature\n")
    git(r, "add", "feat.txt")
    git(r, "commit", "-q", "-m", "feature work")
    git(r, "checkout", "-q", "main")
    (r / "file.txt").write_text("stashed change\n")
    git(r, "stash", "push", "-q", "-m", "wip stash")
    (r / "untracked.txt").write_text("dirty\n")
    git(r, "remote", "add", "origin", REMOTE)
    git(
        r,
        "remote",
        "set-url",
        "--add",
        "--push",
        "origin",
        f"https://deploy:{SECRET}@push.example.invalid/r.git",
    )
    return r


def all_output(mem: MemoryComponent, meta: dict[str, object], lines: list[str]) -> str:
    texts = [v.decode("utf-8", "replace") for k, v in mem.files.items() if k != "repo.bundle"]
    return "\n".join([*texts, repr(meta), *lines, *mem.lines])


def test_registry_kind() -> None:
    assert source_class("git") is GitSource


def test_backup_and_restore_with_bundle(repo: Path, tmp_path: Path) -> None:
    src = GitSource("code", GitOptions(path=str(repo), bundle=True))
    mem = MemoryComponent()
    logs: list[str] = []
    meta = src.backup(mem, SourceContext(log=logs.append))

    assert SECRET not in all_output(mem, meta, logs)
    assert SECRET.encode() not in mem.files["repo.bundle"]
    remotes = mem.files["remotes.txt"].decode()
    assert "origin\thttps://example.invalid/r.git\t(fetch)" in remotes
    assert "origin\thttps://push.example.invalid/r.git\t(push)" in remotes
    assert mem.files["head.txt"].decode().startswith("ref: refs/heads/main\n")
    assert len(mem.files["log.txt"].decode().splitlines()) == 3
    assert "wip stash" in mem.files["stash.txt"].decode()
    assert "untracked.txt" in mem.files["status.txt"].decode()
    assert "refs/tags/v2" in mem.files["tags.txt"].decode()
    assert meta["branches"] == 2 and meta["tags"] == 2 and meta["stashes"] == 1 and meta["dirty"] is True
    assert mem.files["repo.bundle"].startswith(b"# v2 git bundle")

    target_root = tmp_path / "restored"
    plan = src.restore(mem, SourceContext(dry_run=True, options={"target_root": str(target_root)}))
    assert any("clone" in a for a in plan.actions) and not target_root.exists()

    src.restore(mem, SourceContext(options={"target_root": str(target_root)}))
    clone = target_root / repo.relative_to("/")
    assert refs(clone) == refs(repo)
    assert git(clone, "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD")
    assert git(clone, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert (clone / "file.txt").read_text() == "v2\n"
    assert git(clone, "remote", "get-url", "origin").strip() == "https://example.invalid/r.git"
    assert git(clone, "remote", "get-url", "--push", "origin").strip() == "https://push.example.invalid/r.git"
    assert git(clone, "rev-parse", "refs/stash") == git(repo, "rev-parse", "refs/stash")
    assert "wip stash" in git(clone, "stash", "list")
    assert "stashed change" in git(clone, "stash", "show", "-p")
    assert git(clone, "status", "--porcelain") == ""
    assert SECRET not in (clone / ".git" / "config").read_text()

    # a second restore onto the non-empty clone is refused (the plan says so first)
    replan = src.restore(mem, SourceContext(dry_run=True, options={"target_root": str(target_root)}))
    assert any("would refuse" in w for w in replan.warnings)
    with pytest.raises(SourceError, match="not empty"):
        src.restore(mem, SourceContext(options={"target_root": str(target_root)}))


def test_without_bundle_writes_state_and_points_at_remote(repo: Path, tmp_path: Path) -> None:
    src = GitSource("code", GitOptions(path=str(repo)))
    mem = MemoryComponent()
    src.backup(mem, SourceContext())
    assert "repo.bundle" not in mem.files
    rep = src.restore(mem, SourceContext(options={"target_root": str(tmp_path / "t")}))
    state = tmp_path / "t" / (str(repo.relative_to("/")) + ".git-state")
    assert (state / "remotes.txt").read_bytes() == mem.files["remotes.txt"]
    assert any("https://example.invalid/r.git" in w for w in rep.warnings)


def test_bare_repository(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True, env=ENV)
    mem = MemoryComponent()
    meta = GitSource("code", GitOptions(path=str(bare), bundle=True)).backup(mem, SourceContext())
    assert meta["bare"] is True and "bare repository" in mem.files["status.txt"].decode()


def test_not_a_repository_and_empty_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(SourceError, match="not a git repository"):
        GitSource("c", GitOptions(path=str(plain))).backup(MemoryComponent(), SourceContext())
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(SourceError, match="empty repository"):
        GitSource("c", GitOptions(path=str(empty))).backup(MemoryComponent(), SourceContext())
    with pytest.raises(SourceError, match="does not exist"):
        GitSource("c", GitOptions(path=str(tmp_path / "nope"))).backup(MemoryComponent(), SourceContext())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:tok@host/x", "https://host/x"),
        ("https://ghp_abc123@github.com/o/r.git", "https://github.com/o/r.git"),
        ("http://host:8080/x?access_token=abc&ref=1", "http://host:8080/x?ref=1"),
        ("ssh://git:pw@host:22/x.git", "ssh://git@host:22/x.git"),
        ("ssh://git@host/x.git", "ssh://git@host/x.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the repository to another user")
def test_repository_owned_by_another_user(repo: Path) -> None:
    # safehold runs as root on /var/www/app owned by the web user: git's dubious-ownership check must not stop it
    for dirpath, dirnames, filenames in os.walk(repo):
        for n in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, n), 65534, 65534)
    os.lchown(repo, 65534, 65534)
    mem = MemoryComponent()
    meta = GitSource("code", GitOptions(path=str(repo))).backup(mem, SourceContext())
    assert meta["branches"] == 2


def test_shallow_clone_with_bundle_fails_closed(repo: Path, tmp_path: Path) -> None:
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True, env=ENV
    )
    with pytest.raises(SourceError, match="shallow"):
        GitSource("c", GitOptions(path=str(shallow), bundle=True)).backup(MemoryComponent(), SourceContext())
    meta = GitSource("c", GitOptions(path=str(shallow))).backup(MemoryComponent(), SourceContext())
    assert meta["branches"] >= 1
