"""``bootstrap/``: written at init, refreshed when the versions change, never failing a backup, reported by
check, and hostile contents do not get in the way. (The real wheels and a real install on a fresh host:
``tests/e2e/test_bare_metal.py``.)"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from safehold.backends.base import FileType, Handle
from safehold.backends.local import LocalBackend
from safehold.cli.main import main
from safehold.operations.backup import bootstrap, wheels
from safehold.operations.backup.bootstrap import ensure_bootstrap, fetch_command, verify_bootstrap


@pytest.fixture
def fake_wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Tiny stand-ins for the wheels (building the real ones takes seconds; the e2e test does it)."""
    monkeypatch.setenv("SAFEHOLD_BOOTSTRAP", "1")
    names = [d.filename for d in wheels.closure()]
    out = tmp_path / "fake-wheels"
    out.mkdir()

    def build(_cache: Path, _dists: object = None) -> list[Path]:
        paths = []
        for name in names:
            (out / name).write_bytes(b"wheel " + name.encode())
            paths.append(out / name)
        return paths

    monkeypatch.setattr(wheels, "cached_wheels", build)
    return names


def _names(backend: LocalBackend) -> set[str]:
    return {fi.name for fi in backend.list(FileType.BOOTSTRAP)}


def test_written_then_current_then_refreshed_on_a_version_change(
    tmp_path: Path, fake_wheels: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    be = LocalBackend(str(tmp_path / "repo"))
    be.create()
    first = ensure_bootstrap(be)
    assert first.action == "written", first.message
    assert _names(be) == {*fake_wheels, "README.md", "requirements.txt", "SHA256SUMS", "bootstrap.json"}
    assert any(n.startswith("safehold-") for n in fake_wheels)
    folder = tmp_path / "repo" / "bootstrap"
    sums = (folder / "SHA256SUMS").read_text().splitlines()
    for line in sums:  # the format sha256sum -c reads
        digest, name = line.split("  ")
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert first.sums_sha256 == hashlib.sha256((folder / "SHA256SUMS").read_bytes()).hexdigest()
    pins = (folder / "requirements.txt").read_text().splitlines()
    assert len(pins) == len(fake_wheels) and all("==" in p and "--hash=sha256:" in p for p in pins)
    readme = (folder / "README.md").read_text()
    assert "pip install --no-index --find-links bootstrap safehold" in readme
    assert ensure_bootstrap(be).action == "current"
    # another installed version: everything is written again and the old wheels go
    old = next(n for n in fake_wheels if n.startswith("safehold-"))
    renamed = old.replace("safehold-", "safehold-").replace(old.split("-")[1], "0.0.1")
    manifest = json.loads((folder / "bootstrap.json").read_text())
    manifest["wheels"] = [renamed if n == old else n for n in manifest["wheels"]]
    manifest["safehold"] = "0.0.1"
    (folder / "bootstrap.json").write_text(json.dumps(manifest))
    (folder / old).rename(folder / renamed)
    assert ensure_bootstrap(be).action == "written"
    assert renamed not in _names(be) and old in _names(be)


def test_hostile_contents_are_replaced_not_trusted(tmp_path: Path, fake_wheels: list[str]) -> None:
    be = LocalBackend(str(tmp_path / "repo"))
    be.create()
    assert ensure_bootstrap(be).action == "written"
    folder = tmp_path / "repo" / "bootstrap"
    for garbage in [b"\xff\xfe not json", b'{"wheels": "x"}', b'{"wheels": [1, 2]}', b"[]", b"{}" * 600_000]:
        (folder / "bootstrap.json").write_bytes(garbage)
        assert ensure_bootstrap(be).action == "written"
    (folder / "planted.whl").write_bytes(b"evil")  # not ours: removed on the next refresh
    (folder / "bootstrap.json").write_text("{}")
    ensure_bootstrap(be)
    assert "planted.whl" not in _names(be)


def test_a_failure_is_a_warning_and_never_fails_init_or_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAFEHOLD_BOOTSTRAP", "1")
    monkeypatch.setenv("SAFEHOLD_PASSWORD", "pw")

    def broken(_cache: Path, _dists: object = None) -> list[Path]:
        raise wheels.WheelError("numpy lists no installed files")

    monkeypatch.setattr(wheels, "cached_wheels", broken)
    repo = str(tmp_path / "repo")
    assert main(["init", "--repo", repo]) == 0
    err = capsys.readouterr().err
    assert "warning: bootstrap/ not written: numpy lists no installed files" in err
    (tmp_path / "f").write_text("x")
    assert main(["backup", str(tmp_path / "f"), "--repo", repo]) == 0
    assert "warning: bootstrap/ not written" in capsys.readouterr().err


def test_check_reports_it_and_read_data_finds_a_changed_wheel(
    tmp_path: Path,
    fake_wheels: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SAFEHOLD_PASSWORD", "pw")
    repo = str(tmp_path / "repo")
    assert main(["init", "--repo", repo]) == 0
    capsys.readouterr()
    assert main(["check", "--repo", repo]) == 0
    assert "note: bootstrap/ holds safehold" in capsys.readouterr().out
    wheel = tmp_path / "repo" / "bootstrap" / fake_wheels[0]
    wheel.write_bytes(b"tampered")
    assert main(["check", "--repo", repo]) == 0  # not repository damage: the data is unaffected
    assert "does not match" not in capsys.readouterr().err
    assert main(["check", "--repo", repo, "--read-data", "--json"]) == 0
    cap = capsys.readouterr()
    assert f"warning: bootstrap/{fake_wheels[0]} does not match its sha256 in SHA256SUMS" in cap.err
    assert json.loads(cap.out)["bootstrap"]["problems"]
    notes, problems = verify_bootstrap(LocalBackend(str(tmp_path / "empty")), read=False)
    assert notes == [] and "missing" in problems[0]


def test_disabled_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEHOLD_BOOTSTRAP", "0")
    be = LocalBackend(str(tmp_path / "repo"))
    be.create()
    assert ensure_bootstrap(be).action == "disabled"
    assert list(be.list(FileType.BOOTSTRAP)) == []


@pytest.mark.parametrize(
    ("location", "command"),
    [
        ("/srv/backup/x", "cp -r /srv/backup/x/bootstrap ."),
        ("s3://bucket/pre/fix/", "aws s3 cp --recursive s3://bucket/pre/fix/bootstrap bootstrap"),
        ("gs://bucket/p", "gcloud storage cp --recursive gs://bucket/p/bootstrap ."),
        ("sftp://bk@host:2222/srv/x", "sftp -P 2222 bk@host <<< 'get -r /srv/x/bootstrap'"),
        ("sftp://bk@host/~/x", "sftp bk@host <<< 'get -r x/bootstrap'"),
    ],
)
def test_fetch_commands(location: str, command: str) -> None:
    assert fetch_command(location) == command


def test_handles_outside_the_format_are_not_listed_as_repository_files(tmp_path: Path) -> None:
    be = LocalBackend(str(tmp_path / "repo"))
    be.create()
    be.save(Handle(FileType.BOOTSTRAP, "x-1.0-py3-none-any.whl"), b"x")
    for t in FileType:
        if t is not FileType.BOOTSTRAP:
            assert list(be.list(t)) == []
    assert bootstrap.MANIFEST == "bootstrap.json"


def test_the_closure_is_remembered_only_while_nothing_is_installed(
    tmp_path: Path, fake_wheels: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup checks bootstrap/ against the installed closure; the closure's names are cached, and a
    changed import path (a distribution installed or removed) or a damaged cache file is not trusted."""
    be = LocalBackend(str(tmp_path / "repo"))
    be.create()
    assert ensure_bootstrap(be).action == "written"
    calls: list[int] = []
    real = wheels.closure

    def counted() -> list[wheels.Dist]:
        calls.append(1)
        return real()

    monkeypatch.setattr(wheels, "closure", counted)
    assert ensure_bootstrap(be).action == "current"
    assert calls == []  # remembered
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert ensure_bootstrap(be).action == "current"
    assert calls == [1]  # another import path: read again
    (site / "new_dist-1.0.dist-info").mkdir()  # something installed there
    os.utime(site, ns=(1, 1))
    assert ensure_bootstrap(be).action == "current"
    assert calls == [1, 1]
    sys.path.remove(str(site))  # back to the first import path: still remembered beside the other
    assert ensure_bootstrap(be).action == "current"
    assert calls == [1, 1]
    sys.path.insert(0, str(site))
    assert ensure_bootstrap(be).action == "current"
    assert calls == [1, 1]
    cached = bootstrap._cache() / "closure.json"
    for damaged in (
        "not json",
        '{"stamp": 1}',
        '{"stamp": [], "names": [3]}',
        "[]",
        '{"stamp": [], "names": [], "others": [1, [2], {"stamp": 3}]}',
    ):
        cached.write_text(damaged)
        assert ensure_bootstrap(be).action == "current"
    assert len(calls) == 7
    # a cached list that names other wheels makes the check rewrite bootstrap/, never skip it
    doc = json.loads(cached.read_text())
    doc["names"] = ["other-1.0-py3-none-any.whl"]
    cached.write_text(json.dumps(doc))
    assert ensure_bootstrap(be).action == "written"
    assert (
        json.loads((tmp_path / "repo" / "bootstrap" / "bootstrap.json").read_text())["wheels"] == fake_wheels
    )
    assert _names(be) == {*fake_wheels, "README.md", "requirements.txt", "SHA256SUMS", "bootstrap.json"}


def test_init_builds_the_wheels_while_the_key_is_derived_and_stops_when_it_fails(
    tmp_path: Path,
    fake_wheels: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SAFEHOLD_PASSWORD", "pw")
    started: list[bootstrap.EarlyWheels] = []
    real_init = bootstrap.EarlyWheels.__init__

    def tracked(self: bootstrap.EarlyWheels) -> None:
        real_init(self)
        started.append(self)

    monkeypatch.setattr(bootstrap.EarlyWheels, "__init__", tracked)
    repo = str(tmp_path / "repo")
    assert main(["init", "--repo", repo]) == 0
    assert "wrote bootstrap/" in capsys.readouterr().err
    assert len(started) == 1
    started[0].thread.join(10)
    assert not started[0].thread.is_alive()
    assert _names(LocalBackend(repo)) == {
        *fake_wheels,
        "README.md",
        "requirements.txt",
        "SHA256SUMS",
        "bootstrap.json",
    }
    assert main(["init", "--repo", repo]) != 0  # exists already: the early wheels are let go
    assert len(started) == 2
    started[1].thread.join(10)
    assert not started[1].thread.is_alive()
    # a failure to read the closure reaches ensure_bootstrap, which warns
    monkeypatch.setattr(wheels, "closure", lambda: (_ for _ in ()).throw(wheels.WheelError("no closure")))
    early = bootstrap.EarlyWheels()
    result = ensure_bootstrap(LocalBackend(str(tmp_path / "other")), early=early)
    assert result.action == "failed" and "no closure" in result.message
