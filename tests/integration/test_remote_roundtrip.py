"""Backup, copy, check and restore through the real CLI across local disk, SFTP and S3.

Each case: ``init`` the source, ``init --copy-chunker-params-from`` the target, ``backup`` into the
source, ``copy --to`` the target, ``check --read-data`` both, ``restore --verify`` from the target and
compare the trees in every detail. The remote options reach the CLI only through the ``SAFEHOLD_S3_*``
and ``SAFEHOLD_SFTP_*`` environment variables. With ``SAFEHOLD_S3_STORAGE_CLASS`` set, only packs of
file contents get that class in S3.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from safehold.backends.registry import open_backend
from safehold.engine.format.pack import DATA
from safehold.engine.format.repository import Repository
from tests.backends.conftest import SSHServer, random_bucket
from tests.helpers.cli import SAFEHOLD
from tests.helpers.torture import make_torture_tree
from tests.helpers.treecompare import compare_trees

pytestmark = [pytest.mark.sftp, pytest.mark.s3]

PW = {"a": "source passphrase", "b": "target passphrase"}
COLD = "STANDARD_IA"


@pytest.fixture
def cli_env(tmp_path: Path, sshd: SSHServer, s3_server: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAFEHOLD_", "AWS_"))}
    env.update(
        SAFEHOLD_AUDIT_LOG=str(tmp_path / "audit.jsonl"),
        SAFEHOLD_CACHE_DIR=str(tmp_path / "cache"),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE="/nonexistent/safehold-test-aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/safehold-test-aws-credentials",
        SAFEHOLD_S3_ENDPOINT=s3_server,
        SAFEHOLD_S3_REGION="us-east-1",
        SAFEHOLD_S3_PATH_STYLE="1",
        SAFEHOLD_S3_STORAGE_CLASS=COLD,
        SAFEHOLD_SFTP_IDENTITY=str(sshd.identity_file),
        SAFEHOLD_SFTP_KNOWN_HOSTS=str(sshd.known_hosts),
    )
    return env


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(cli_env: dict[str, str]) -> Run:
    def _run(
        repo: str, *args: str, pw: str, other: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**cli_env, "SAFEHOLD_REPOSITORY": repo, "SAFEHOLD_PASSWORD": pw}
        if other is not None:
            env["SAFEHOLD_OTHER_PASSWORD"] = other
        p = subprocess.run(
            [*SAFEHOLD, *args],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
            check=False,
        )
        if ok:
            assert p.returncode == 0, f"safehold {' '.join(args)} exited {p.returncode}:\n{p.stderr}"
        return p

    return _run


def _url(kind: str, tmp_path: Path, sshd: SSHServer, name: str) -> str:
    if kind == "local":
        return str(tmp_path / f"repo-{name}")
    if kind == "sftp":
        return sshd.url(tmp_path / f"sftp-{name}")
    return f"s3://{random_bucket()}/repo-{name}"


def _check_storage_classes(url: str, pw: str, s3_server: str) -> None:
    """Data packs of file contents carry COLD; tree packs, index, snapshots, keys, config, locks don't."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    repo = Repository.open(open_backend(url, endpoint_url=s3_server, region="us-east-1", path_style=True), pw)
    repo.load_index()
    pack_types = {pid.hex(): {e.type for e in entries} for pid, entries in repo.index.iter_packs()}
    repo.backend.close()
    client: Any = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    objects = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["Contents"]
    seen = {"cold": 0, "hot-data": 0, "other": 0}
    for obj in objects:
        key = str(obj["Key"]).removeprefix(prefix + "/")
        cls = obj.get("StorageClass", "STANDARD")
        if key.startswith("data/"):
            types = pack_types[key.rsplit("/", 1)[1]]
            want = COLD if types == {DATA} else "STANDARD"
            seen["cold" if want == COLD else "hot-data"] += 1
        else:
            want = "STANDARD"
            seen["other"] += 1
        assert cls == want, f"{key} is stored as {cls}, want {want}"
    assert seen["cold"] and seen["hot-data"] and seen["other"] >= 4, seen


@pytest.mark.parametrize(("first", "second"), [("local", "sftp"), ("local", "s3"), ("s3", "sftp")])
def test_round_trip(
    first: str,
    second: str,
    tmp_path: Path,
    sshd: SSHServer,
    s3_server: str,
    run: Run,
    aws_env: None,
) -> None:
    src = tmp_path / "src"
    make_torture_tree(src)
    a, b = _url(first, tmp_path, sshd, "a"), _url(second, tmp_path, sshd, "b")
    run(a, "init", pw=PW["a"])
    run(b, "init", "--copy-chunker-params-from", a, pw=PW["b"], other=PW["a"])
    snap = json.loads(run(a, "backup", str(src), "--json", pw=PW["a"]).stdout)
    assert snap["partial"] is False
    copied = json.loads(run(a, "copy", "--to", b, "--json", pw=PW["a"], other=PW["b"]).stdout)
    assert copied["copied"] == [snap["snapshot_id"]]
    for url, pw in ((a, PW["a"]), (b, PW["b"])):
        checked = json.loads(run(url, "check", "--read-data", "--json", pw=pw).stdout)
        assert checked["ok"] and checked["packs_read"] >= 2 and not checked["errors"], checked
    target = tmp_path / "restored"
    run(b, "restore", "latest", "--target", str(target), "--verify", pw=PW["b"])
    diff = compare_trees(src, target / str(src).lstrip("/"), check_owner=os.geteuid() == 0)
    assert diff == []
    # the copy sent data: a second copy sends nothing
    again = json.loads(run(a, "copy", "--to", b, "--json", pw=PW["a"], other=PW["b"]).stdout)
    assert again["copied"] == [] and again["skipped"] == [snap["snapshot_id"]]
    for url, pw in ((a, PW["a"]), (b, PW["b"])):
        if url.startswith("s3://"):
            _check_storage_classes(url, pw, s3_server)


def test_remote_options_are_required_and_checked(tmp_path: Path, sshd: SSHServer, run: Run) -> None:
    """Without the known_hosts variable the SFTP host key is refused; a bad value names its variable."""
    url = sshd.url(tmp_path / "r")
    p = subprocess.run(
        [*SAFEHOLD, "init"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")},
            "SAFEHOLD_REPOSITORY": url,
            "SAFEHOLD_PASSWORD": "x",
            "SAFEHOLD_SFTP_IDENTITY": str(sshd.identity_file),
            "SAFEHOLD_SFTP_KNOWN_HOSTS": str(tmp_path / "empty_known_hosts"),
            "SAFEHOLD_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert p.returncode == 1 and "host key" in p.stderr.lower(), p.stderr
    good = run(url, "init", "--json", pw="x", ok=False)  # with the right variables it works ...
    assert good.returncode == 0, good.stderr
    p2 = run(str(tmp_path / "l"), "init", pw="x", ok=False)
    assert p2.returncode == 0  # ... and s3/sftp variables do not bother a local repository
