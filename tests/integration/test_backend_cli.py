"""``safehold backend validate`` and the SAFEHOLD_* backend option variables."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from safehold.cli.backend_options import backend_options
from safehold.cli.main import main
from safehold.errors import ConfigError
from tests.backends.conftest import SSHServer, random_bucket


def test_options_apply_to_their_scheme_only() -> None:
    env = {
        "SAFEHOLD_CONNECTIONS": "6",
        "SAFEHOLD_S3_ENDPOINT": "http://127.0.0.1:9000",
        "SAFEHOLD_S3_PATH_STYLE": "yes",
        "SAFEHOLD_S3_STORAGE_CLASS": "GLACIER_IR",
        "SAFEHOLD_SFTP_IDENTITY": "/k",
        "SAFEHOLD_SFTP_ACCEPT_NEW_HOST_KEY": "0",
    }
    assert backend_options("s3://b/p", env) == {
        "connections": 6,
        "endpoint_url": "http://127.0.0.1:9000",
        "path_style": True,
        "storage_class": "GLACIER_IR",
    }
    assert backend_options("sftp://u@h/p", env) == {
        "connections": 6,
        "identity_file": "/k",
        "accept_new_host_key": False,
    }
    assert backend_options("/var/backups/repo", env) == {"connections": 6}
    assert backend_options("/r", {}) == {}


@pytest.mark.parametrize(
    ("var", "value"),
    [("SAFEHOLD_CONNECTIONS", "0"), ("SAFEHOLD_CONNECTIONS", "many"), ("SAFEHOLD_S3_PATH_STYLE", "maybe")],
)
def test_bad_values_name_their_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        backend_options("s3://b", {var: value})
    assert var in info.value.message


def _validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["backend", "validate", *args, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out.splitlines()[0]), err


def test_validate_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = _validate(capsys, str(tmp_path), "--size", "1")
    assert code == 0 and doc["ok"], doc
    checks = {f["check"]: f["level"] for f in doc["findings"]}
    assert checks["atomic_visibility"] == "ok" and checks["cleanup"] == "ok" and len(checks) == 11
    assert "durability" in doc["not_checked"]
    assert os.listdir(tmp_path) == []  # the scratch location is gone
    code, doc, err = _validate(capsys, str(tmp_path / "missing" / "deeper"))
    assert code == 1 and not doc["ok"]
    assert [f["check"] for f in doc["findings"] if f["level"] == "error"] == ["create"]
    assert "failed 1 check(s): create" in err


@pytest.mark.s3
@pytest.mark.sftp
def test_validate_remote_through_environment(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sshd: SSHServer,
    s3_options: dict[str, Any],
) -> None:
    monkeypatch.setenv("SAFEHOLD_S3_ENDPOINT", s3_options["endpoint_url"])
    monkeypatch.setenv("SAFEHOLD_S3_REGION", "us-east-1")
    monkeypatch.setenv("SAFEHOLD_S3_PATH_STYLE", "1")
    monkeypatch.setenv("SAFEHOLD_SFTP_IDENTITY", str(sshd.identity_file))
    monkeypatch.setenv("SAFEHOLD_SFTP_KNOWN_HOSTS", str(sshd.known_hosts))
    bucket = random_bucket()
    import boto3

    boto3.client("s3", endpoint_url=s3_options["endpoint_url"], region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    for url in (f"s3://{bucket}/repo", sshd.url(tmp_path)):
        code, doc, _ = _validate(capsys, url, "--size", "1")
        assert code == 0 and doc["ok"], doc
    monkeypatch.delenv("SAFEHOLD_S3_ENDPOINT")
    monkeypatch.setenv("SAFEHOLD_S3_ENDPOINT", "http://127.0.0.1:1")  # nothing listens there
    code, doc, _ = _validate(capsys, f"s3://{bucket}/repo", "--size", "1")
    assert code == 1 and doc["findings"][0]["check"] == "create"
