"""Passphrase management through the CLI: add, list, passwd, remove (never the key in use)."""

from __future__ import annotations

from pathlib import Path

from safehold.errors import EXIT_WRONG_PASSWORD


def test_key_lifecycle(tmp_path: Path, run) -> None:
    assert run("init").code == 0
    second = tmp_path / "second.pass"
    second.write_text("second passphrase\n")
    r = run("key", "add", "--new-password-file", str(second), "--json")
    assert r.code == 0, r.err
    added = r.json()["id"]
    keys = run("key", "list", "--json").json()
    assert len(keys) == 2 and sum(k["current"] for k in keys) == 1
    assert run("snapshots", password="second passphrase").code == 0
    # the key in use cannot be removed
    current = next(k["id"] for k in keys if k["current"])
    assert run("key", "remove", current[:8]).code == 2
    # remove the first key using the second passphrase; the first no longer opens the repository
    assert run("key", "remove", current[:8], password="second passphrase").code == 0
    assert run("snapshots").code == EXIT_WRONG_PASSWORD
    # passwd replaces the key in use
    third = tmp_path / "third.pass"
    third.write_text("third\n")
    r = run("key", "passwd", "--new-password-file", str(third), "--json", password="second passphrase")
    assert r.code == 0, r.err
    assert r.json()["removed"] == added  # passwd replaces the key in use (the second one)
    assert run("snapshots", password="second passphrase").code == EXIT_WRONG_PASSWORD
    assert run("snapshots", password="third").code == 0
    assert [k["id"] for k in run("key", "list", "--json", password="third").json()] != [added]


def test_new_passphrase_never_comes_from_the_current_one(run) -> None:
    assert run("init").code == 0
    r = run("key", "add")  # SAFEHOLD_PASSWORD is set, but it names the passphrase in use
    assert r.code == 2 and "new passphrase" in r.err
    assert len(run("key", "list", "--json").json()) == 1
