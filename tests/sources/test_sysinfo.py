"""The system-info source with a PATH of fake tools (and missing ones), and the package plan."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from safehold.errors import SourceError
from safehold.sources.base import SourceContext
from safehold.sources.registry import source_class
from safehold.sources.system_info import SystemInfoOptions, SystemInfoSource

from .memcomponent import MemoryComponent


def tool(bindir: Path, name: str, body: str) -> None:
    p = bindir / name
    p.write_text(f"#!/bin/sh\n{body}\n")
    p.chmod(0o755)


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    """A root with os-release and a bin folder of fake tools; php, composer, lsblk are absent."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool(
        bindir,
        "dpkg",
        'case "$1" in --version) echo "dpkg 1.21.22 fake";; *) printf "nginx\\tinstall\\nredis-server\\tinstall\\n";; esac',
    )
    tool(bindir, "apt-mark", 'echo nginx; echo redis-server; echo "php8.2-fpm"')
    tool(bindir, "uname", 'echo "Linux fakehost 6.1.0 x86_64 GNU/Linux"')
    tool(bindir, "df", 'echo "Filesystem Type Size"; echo "/dev/sda1 ext4 20G"')
    tool(
        bindir,
        "npm",
        'case "$1" in --version) echo 10.2.0;; *) printf "/usr/lib\\n├── npm@10.2.0\\n└── pm2@5.3.0\\n";; esac',
    )
    tool(bindir, "systemctl", 'echo "System has not been booted with systemd" >&2; exit 1')
    # apt-get records every call instead of installing anything
    tool(
        bindir,
        "apt-get",
        f'echo "$@" >> {tmp_path}/apt-calls; [ "$1" = install ] && [ -n "$FAIL_APT" ] && exit 100; exit 0',
    )
    etc = tmp_path / "root" / "etc"
    etc.mkdir(parents=True)
    (etc / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    return tmp_path


def source(fake: Path, **kw: object) -> SystemInfoSource:
    return SystemInfoSource(
        "sysinfo",
        SystemInfoOptions.model_validate({"root": str(fake / "root"), "path": str(fake / "bin"), **kw}),
    )


def test_registry_kind() -> None:
    assert source_class("system-info") is SystemInfoSource


def test_missing_tools_recorded_not_failed(fake: Path) -> None:
    mem = MemoryComponent()
    logs: list[str] = []
    meta = source(fake).backup(mem, SourceContext(log=logs.append))
    info = json.loads(mem.files["info.json"])
    assert info["missing"] == ["composer-global", "php-modules"]
    assert info["failed"] == ["services"]
    assert "not been booted" in info["items"]["services"]["error"]
    assert meta["missing"] == info["missing"]
    assert mem.files["packages.txt"] == b"nginx\tinstall\nredis-server\tinstall\n"
    assert mem.files["manual-packages.txt"].split() == [b"nginx", b"redis-server", b"php8.2-fpm"]
    assert mem.files["kernel.txt"].startswith(b"Linux fakehost")
    assert mem.files["os-release"].startswith(b"ID=debian")
    assert b"/dev/sda1" in mem.files["disks.txt"]
    assert info["items"]["disks"]["status"] == "ok"  # lsblk missing only adds less detail
    assert "php-modules.txt" not in mem.files and "services.txt" not in mem.files
    assert info["tools"]["dpkg"] == "dpkg 1.21.22 fake" and "php" not in info["tools"]
    assert any("php-modules" in line for line in logs)


def test_empty_path_everything_missing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    mem = MemoryComponent()
    meta = SystemInfoSource("s", SystemInfoOptions(root=str(tmp_path), path=str(tmp_path / "empty"))).backup(
        mem, SourceContext()
    )
    assert set(meta["missing"]) == {n for n in json.loads(mem.files["info.json"])["items"]}
    assert meta["failed"] == [] and list(mem.files) == ["info.json"]


def test_required_tool_failure_fails(fake: Path) -> None:
    tool(fake / "bin", "dpkg", 'echo "dpkg: error: database locked" >&2; exit 2')
    mem = MemoryComponent()
    with pytest.raises(SourceError, match="packages failed"):
        source(fake).backup(mem, SourceContext())
    assert any("database locked" in line for line in mem.lines)
    # not required: recorded only
    source(fake, required=[]).backup(MemoryComponent(), SourceContext())


def test_collect_subset(fake: Path) -> None:
    mem = MemoryComponent()
    source(fake, collect=["kernel"]).backup(mem, SourceContext())
    assert sorted(mem.files) == ["info.json", "kernel.txt"]


def test_restore_plan_and_run(fake: Path) -> None:
    src = source(fake)
    mem = MemoryComponent()
    src.backup(mem, SourceContext())
    calls = fake / "apt-calls"

    plan = src.restore(mem, SourceContext(dry_run=True, options={"run_install": True}))
    assert plan.actions == ["apt-get update", "apt-get install -y nginx redis-server php8.2-fpm"]
    assert plan.details["follow_up"] == ["npm install -g pm2@5.3.0"]
    assert not calls.exists()

    printed = src.restore(mem, SourceContext())
    assert printed.actions == plan.actions and not calls.exists()

    ran = src.restore(mem, SourceContext(options={"run_install": True}))
    assert ran.details["ran"] is True
    assert calls.read_text().splitlines() == ["update", "install -y nginx redis-server php8.2-fpm"]


def test_restore_install_failure_fails(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = source(fake)
    mem = MemoryComponent()
    src.backup(mem, SourceContext())
    monkeypatch.setenv("FAIL_APT", "1")
    with pytest.raises(SourceError, match="status 100"):
        src.restore(mem, SourceContext(options={"run_install": True}))


def test_restore_from_selections_when_no_manual_list(fake: Path) -> None:
    os.remove(fake / "bin" / "apt-mark")
    src = source(fake)
    mem = MemoryComponent()
    src.backup(mem, SourceContext())
    # dpkg --set-selections reads the list on stdin; the fake stores it
    tool(fake / "bin", "dpkg", f"/bin/cat > {fake}/selections")
    ran = src.restore(mem, SourceContext(options={"run_install": True}))
    assert ran.actions[1] == "dpkg --set-selections < packages.txt"
    assert (fake / "selections").read_bytes() == mem.files["packages.txt"]
    assert (fake / "apt-calls").read_text().splitlines() == ["update", "dselect-upgrade -y"]


def test_os_mismatch_warns(fake: Path) -> None:
    src = source(fake)
    mem = MemoryComponent()
    src.backup(mem, SourceContext())
    (fake / "root" / "etc" / "os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\n')
    rep = src.restore(mem, SourceContext(dry_run=True))
    assert any("debian 12" in w and "ubuntu 24.04" in w for w in rep.warnings)


def test_item_table_matches_option_names() -> None:
    from safehold.sources.system_info import ITEMS

    assert list(ITEMS) == SystemInfoOptions().collect
    for name, field in SystemInfoOptions.model_fields.items():
        assert field.description and field.examples, name
