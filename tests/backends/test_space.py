"""Free space where a repository lives: local and SFTP (statvfs@openssh.com against a real sshd) report
the file system's figures; object storage reports none and says so."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from safehold.backends import s3, sftp
from safehold.backends.local import LocalBackend
from safehold.backends.registry import compose
from safehold.backends.space import Space, space_of
from tests.backends.conftest import SSHServer, random_bucket


def _close(a: Space, path: Path) -> None:
    st = os.statvfs(path)
    assert a.total == st.f_blocks * st.f_frsize and a.total_inodes == st.f_files
    assert abs(a.free - st.f_bavail * st.f_frsize) < 64 * 1024 * 1024  # other tests write meanwhile
    assert 0.0 <= a.used_fraction <= 1.0


def test_local_space_also_below_wrappers_and_for_a_folder_not_created_yet(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path / "not" / "yet"))
    found = space_of(compose(backend))
    assert isinstance(found, Space) and found.device == os.stat(tmp_path).st_dev
    _close(found, tmp_path)


@pytest.mark.sftp
def test_sftp_space_through_statvfs_openssh_com(sshd: SSHServer, tmp_path: Path) -> None:
    backend = sftp.from_url(sshd.url(tmp_path / "repo"), sshd.options())
    try:
        found = space_of(backend)
        assert isinstance(found, Space), found
        assert found.device is None  # a remote file system: never merged with a local folder's
        _close(found, tmp_path)
    finally:
        backend.close()


def test_object_storage_has_no_free_space(s3_options: dict[str, Any]) -> None:
    backend = s3.from_url(f"s3://{random_bucket()}/p", dict(s3_options))
    try:
        reason = space_of(backend)
        assert isinstance(reason, str) and "does not report free space" in reason
    finally:
        backend.close()
