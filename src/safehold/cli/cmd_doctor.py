"""``safehold doctor``: check the configuration against the real servers, tools and repository."""

from __future__ import annotations

from pathlib import Path

import click

from safehold.cli.app import App, pass_app
from safehold.config.schema import Config
from safehold.engine.format.repository import Repository
from safehold.errors import RepositoryNotFound, SafeholdError, without_self_reference
from safehold.operations.inspect.doctor import Finding, run_doctor


def _text(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"{'ok' if f.ok else 'PROBLEM':8} {f.subject:14} {f.message}")
        hint = without_self_reference(f.hint or "", ["doctor"])
        if not f.ok and hint:
            lines.append(f"{'':8} {'':14} hint: {hint}")
        lines.extend(f"{'':8} {'':14}   {line}" for line in f.lines)
    problems = sum(not f.ok for f in findings)
    lines.append(f"\n{len(findings)} check(s), {problems} problem(s)")
    return "\n".join(lines)


def _schedule_finding(config: Config, config_file: Path | None) -> Finding:
    """Is a schedule installed on this machine, and is it the one the configuration asks for."""
    from safehold.operations.schedule.install import check_installed

    try:
        ok, message, hint, lines = check_installed(
            Path("/"), config, config_file.absolute() if config_file else None
        )
    except SafeholdError as exc:
        ok, message, hint, lines = False, exc.message, exc.hint or None, []
    return Finding("schedule", "installed", ok, message, hint, lines)


@click.command()
@click.option("--no-repository", is_flag=True, help="Do not open the repository (no passphrase needed).")
@pass_app
def doctor(app: App, no_repository: bool) -> None:
    """Check that every component of the configuration can be backed up now: servers answer, the backup
    user has the privileges it needs (with the exact GRANT to run), paths are readable, tools are
    installed, secret references resolve and the repository opens. Exit status 1 when anything fails."""
    config = app.config(required=True)
    assert config is not None

    def open_repo() -> Repository:
        try:
            return app.open_repo()
        except RepositoryNotFound as exc:  # name the location, also when it came from the configuration
            raise RepositoryNotFound(
                f"no repository at {app.repo_url or config.repository.url}", exc.hint
            ) from None

    import os

    from safehold.config.loader import find_config
    from safehold.engine.backup.filescache import cache_root
    from safehold.operations.inspect.permissions import Targets

    pw_file = app.password_file or os.environ.get("SAFEHOLD_PASSWORD_FILE")
    targets = Targets(
        config_file=find_config(Path(app.config_path) if app.config_path else None),
        password_files=[Path(pw_file)] if pw_file else [],
        cache_dir=cache_root(),
    )
    findings = run_doctor(config, None if no_repository else open_repo, targets)
    findings.append(_schedule_finding(config, targets.config_file))
    problems = [f for f in findings if not f.ok]
    app.emit({"ok": not problems, "checks": [f.as_dict() for f in findings]}, _text(findings))
    if problems:
        raise SafeholdError(
            f"doctor found {len(problems)} problem(s)",
            hint="Fix the problems marked PROBLEM above and run it again.",
        )


COMMANDS = [doctor]
