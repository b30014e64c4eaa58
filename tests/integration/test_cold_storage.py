"""Data packs in an archive storage class (GLACIER, DEEP_ARCHIVE): ``check`` says which packs are cold
instead of reporting damage; ``restore`` and ``check --read-data`` stop before reading anything and say how
to proceed; ``--thaw`` requests the restore (S3 RestoreObject with a tier and days), ``--wait`` waits.

Against the moto S3 server the tests already run, as far as it goes. What moto cannot do: it makes a
restored copy readable at once (a real restore takes minutes to days) and ignores the tier, so "requested,
not ready yet", resuming and waiting are tested with a backend that keeps packs archived for a while
(:class:`SlowThaw`), and moto's RestoreAlreadyInProgress answer is never produced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from safehold.backends.base import FileType, Handle, ThawState
from safehold.backends.memory import MemoryBackend
from safehold.cli.main import main
from safehold.engine.format.repository import Repository
from safehold.errors import ColdStorageError, UsageError
from safehold.operations.backup.paths import BackupOptions, backup_paths
from safehold.operations.restore.thaw import ThawOptions, packs_for, prepare
from tests.backends.conftest import random_bucket

PW = "cold storage passphrase"


@pytest.fixture
def cold_env(s3_server: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SAFEHOLD_S3_ENDPOINT", s3_server)
    monkeypatch.setenv("SAFEHOLD_S3_REGION", "us-east-1")
    monkeypatch.setenv("SAFEHOLD_S3_PATH_STYLE", "1")
    monkeypatch.setenv("SAFEHOLD_S3_STORAGE_CLASS", "GLACIER")
    monkeypatch.setenv("SAFEHOLD_PASSWORD", PW)
    monkeypatch.delenv("SAFEHOLD_CONFIG", raising=False)
    url = f"s3://{random_bucket()}/repo"
    monkeypatch.setenv("SAFEHOLD_REPOSITORY", url)
    return url


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(5):
        (src / f"f{i}.txt").write_text(f"file {i} " * 1000)
    (src / "sub" / "big.bin").write_bytes(bytes(range(256)) * 4096)
    return src


def test_check_and_restore_with_glacier_packs(
    cold_env: str, s3_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _tree(tmp_path)
    assert main(["init"]) == 0
    assert main(["backup", str(src)]) == 0
    bucket = cold_env.removeprefix("s3://").split("/")[0]
    client: Any = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    classes = {o["Key"]: o.get("StorageClass") for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    cold = sorted(k.rsplit("/", 1)[1] for k, c in classes.items() if c == "GLACIER")
    assert cold and all(k.startswith("repo/data/") for k, c in classes.items() if c == "GLACIER")
    capsys.readouterr()

    # plain check: cold packs are named, not counted as damage
    assert main(["check", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["errors"] == [] and sorted(doc["cold"]) == cold
    assert main(["check"]) == 0
    assert "are in an archive storage class and were not read (not damage" in capsys.readouterr().out

    # reading the data needs a thaw: check says so, restore stops before writing anything
    assert main(["check", "--read-data"]) == 1
    err = capsys.readouterr().err
    assert "was not read (no damage found)" in err and "--thaw" in err
    target = tmp_path / "restored"
    assert main(["restore", "latest", "--target", str(target)]) == 1
    err = capsys.readouterr().err
    assert f"{len(cold)} of the {len(cold)} data packs this needs are in GLACIER storage" in err
    assert "GLACIER: Expedited 1-5 minutes, Standard 3-5 hours, Bulk 5-12 hours" in err
    assert not target.exists()

    # --thaw sends RestoreObject (moto makes the copy readable at once), then the restore goes on
    assert main(["restore", "latest", "--target", str(target), "--thaw", "--thaw-tier", "Expedited"]) == 0
    assert (
        f"requested {len(cold)} pack(s) from GLACIER storage (Expedited retrieval" in capsys.readouterr().err
    )
    for path in src.rglob("*"):
        if path.is_file():
            assert (target / str(path).lstrip("/")).read_bytes() == path.read_bytes()
    head = client.head_object(Bucket=bucket, Key=next(k for k, c in classes.items() if c == "GLACIER"))
    assert 'ongoing-request="false"' in head["Restore"]
    # the restored copies can be read and proved; a second --thaw asks for nothing
    assert main(["check", "--read-data", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["cold"] == [] and doc["packs_read"] >= len(cold)
    assert main(["check", "--read-data", "--thaw"]) == 0
    assert "requested" not in capsys.readouterr().err


def test_component_restore_thaws_before_reading_the_stored_configuration(
    cold_env: str,
    s3_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = _tree(tmp_path)
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(
        f'version = 1\n[repository]\nurl = "{cold_env}"\n'
        f'[components.app]\nkind = "files"\npaths = ["{src}"]\n[profiles.quick]\ncomponents = ["app"]\n'
    )
    monkeypatch.setenv("SAFEHOLD_CONFIG", str(cfg))
    monkeypatch.delenv("SAFEHOLD_REPOSITORY")
    assert main(["init"]) == 0
    assert main(["backup", "--profile", "quick"]) == 0
    root = tmp_path / "elsewhere"
    capsys.readouterr()
    assert main(["restore", "app", "--target-root", str(root), "--dry-run"]) == 1
    assert "are in GLACIER storage" in capsys.readouterr().err
    assert main(["restore", "app", "--target-root", str(root), "--yes", "--thaw"]) == 0
    assert (root / str(src).lstrip("/") / "sub" / "big.bin").read_bytes() == (
        src / "sub" / "big.bin"
    ).read_bytes()


class SlowThaw(MemoryBackend):
    """Archived data packs that become readable ``ready_after`` looks after their restore was asked for."""

    def __init__(self, storage_class: str = "GLACIER", ready_after: int = 2) -> None:
        super().__init__(location="mem://slow-thaw")
        self.storage_class = storage_class
        self.ready_after = ready_after
        self.looks: dict[str, int] = {}
        self.requests: list[tuple[str, str, int]] = []

    def archived(self, t: FileType) -> dict[str, str]:
        return {n: self.storage_class for n in self.cold} if t is FileType.DATA else {}

    def thaw_state(self, h: Handle) -> ThawState:
        if h.name not in self.cold:
            return ThawState("STANDARD", "readable")
        if h.name not in self.looks:
            return ThawState(self.storage_class, "archived")
        self.looks[h.name] += 1
        ready = self.looks[h.name] > self.ready_after
        return ThawState(self.storage_class, "restored" if ready else "restoring")

    def thaw(self, h: Handle, *, tier: str, days: int) -> ThawState:
        self.requests.append((h.name, tier, days))
        self.looks.setdefault(h.name, 0)
        return ThawState(self.storage_class, "restoring")

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        if h.name in self.cold and self.looks.get(h.name, 0) <= self.ready_after:
            raise ColdStorageError(f"{h} is archived")
        return super().load(h, offset, length)


@pytest.fixture
def slow(tmp_path: Path) -> tuple[Repository, set[str], SlowThaw]:
    be = SlowThaw()
    repo = Repository.init(be, PW)
    snap = backup_paths(repo, BackupOptions(paths=[str(_tree(tmp_path))])).snapshot
    packs = packs_for(repo, snap)
    assert packs and packs <= be.cold
    return repo, packs, be


def test_request_then_resume_then_wait(slow: tuple[Repository, set[str], SlowThaw]) -> None:
    repo, packs, be = slow
    lines: list[str] = []
    with pytest.raises(ColdStorageError) as e:
        prepare(repo, packs, ThawOptions(), lines.append)
    assert be.requests == [] and "Add --thaw" in e.value.hint
    with pytest.raises(ColdStorageError) as e:  # requested, not ready, no --wait: stop and say when
        prepare(repo, packs, ThawOptions(request=True, tier="Bulk", days=3), lines.append)
    assert sorted(r[0] for r in be.requests) == sorted(packs)
    assert {r[1:] for r in be.requests} == {("Bulk", 3)}
    assert "GLACIER: 5-12 hours" in e.value.hint and "again" in e.value.hint
    be.requests.clear()
    sleeps: list[float] = []
    prepare(repo, packs, ThawOptions(request=True, wait=True), lines.append, sleep=sleeps.append)
    assert be.requests == []  # already being restored: not asked again
    assert sleeps and set(sleeps) == {300.0}
    assert lines[-1] == f"{len(packs)} of {len(packs)} cold pack(s) readable"
    prepare(repo, packs, ThawOptions(), lines.append)  # readable now: nothing to do


def test_deep_archive_has_no_expedited_tier(slow: tuple[Repository, set[str], SlowThaw]) -> None:
    repo, packs, be = slow
    be.storage_class = "DEEP_ARCHIVE"
    with pytest.raises(UsageError) as e:
        prepare(repo, packs, ThawOptions(request=True, tier="Expedited"), print)
    assert "Standard or Bulk" in e.value.hint
    with pytest.raises(ColdStorageError) as c:
        prepare(repo, packs, ThawOptions(request=True), print)
    assert "DEEP_ARCHIVE: within 12 hours" in c.value.hint
