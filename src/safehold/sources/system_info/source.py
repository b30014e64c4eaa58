"""The ``system-info`` source (see the package docstring)."""

from __future__ import annotations

import json
import os
import re
import shutil
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from safehold import proc
from safehold.errors import SourceError
from safehold.sources.base import Finding, Redirect, RestorePlan, RestoreReport, Source, SourceContext
from safehold.sources.checks import Checks
from safehold.sources.component import ComponentReader, ComponentWriter

ItemName = Literal[
    "packages",
    "manual-packages",
    "php-modules",
    "composer-global",
    "npm-global",
    "kernel",
    "os-release",
    "disks",
    "services",
]


@dataclass(frozen=True)
class _Item:
    filename: str
    commands: tuple[tuple[str, ...], ...]
    optional_after_first: bool = False  # later commands add detail; only the first decides the status


ITEMS: dict[str, _Item] = {
    "packages": _Item("packages.txt", (("dpkg", "--get-selections"),)),
    "manual-packages": _Item("manual-packages.txt", (("apt-mark", "showmanual"),)),
    "php-modules": _Item("php-modules.txt", (("php", "-m"),)),
    "composer-global": _Item(
        "composer-global.txt", (("composer", "global", "show", "--no-interaction", "--no-ansi"),)
    ),
    "npm-global": _Item("npm-global.txt", (("npm", "ls", "-g", "--depth=0"),)),
    "kernel": _Item("kernel.txt", (("uname", "-a"),)),
    "os-release": _Item("os-release", ()),
    "disks": _Item("disks.txt", (("df", "-hT"), ("lsblk",)), optional_after_first=True),
    "services": _Item(
        "services.txt",
        (
            (
                "systemctl",
                "list-units",
                "--type=service",
                "--state=running",
                "--no-pager",
                "--no-legend",
                "--plain",
            ),
        ),
    ),
}
VERSIONS: dict[str, tuple[str, ...]] = {
    "dpkg": ("dpkg", "--version"),
    "php": ("php", "-v"),
    "composer": ("composer", "--version", "--no-ansi"),
    "npm": ("npm", "--version"),
}
_ALL_ITEMS: tuple[ItemName, ...] = typing.get_args(ItemName)
_REQUIRED: tuple[ItemName, ...] = ("packages", "manual-packages")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?$")
_NPM_LINE = re.compile(r"[`├└]── (\S+)")
_COMPOSER_LINE = re.compile(r"^([a-z0-9_.-]+/[a-z0-9_.-]+)\s+(\S+)")


class SystemInfoOptions(BaseModel):
    """Settings of a ``system-info`` component."""

    model_config = ConfigDict(extra="forbid")

    collect: list[ItemName] = Field(
        default_factory=lambda: list(_ALL_ITEMS),
        description="Which items to capture (all by default).",
        examples=[["packages", "manual-packages", "kernel", "os-release"]],
    )
    required: list[ItemName] = Field(
        default_factory=lambda: list(_REQUIRED),
        description="Items whose tool, when installed, must succeed; a failure fails the component.",
        examples=[["packages", "manual-packages"], []],
    )
    root: str = Field(default="/", description="Root below which etc/os-release is read.", examples=["/"])
    path: str | None = Field(
        default=None,
        description="PATH used to find the tools (default: safehold's own PATH).",
        examples=["/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    )
    timeout: float = Field(default=120.0, gt=0, description="Seconds allowed per tool.", examples=[120])


class SystemInfoRestoreOptions(BaseModel):
    """What a restore of a ``system-info`` component may be told."""

    model_config = ConfigDict(extra="forbid")

    run_install: bool = Field(default=False, description="Run the package install plan (apt-get).")


class SystemInfoSource(Source):
    """Installed packages, runtimes, kernel, disks and services as text; restore prints the install plan."""

    kind: ClassVar[str] = "system-info"
    Options: ClassVar[type[BaseModel]] = SystemInfoOptions
    RestoreOptions: ClassVar[type[BaseModel]] = SystemInfoRestoreOptions
    restore_rank: ClassVar[int] = 10
    export_folder: ClassVar[str | None] = "system/info"
    export_note: ClassVar[str] = (
        "`{base}/`: what was installed. Reinstall: `apt-get update && xargs apt-get install -y "
        "< {base}/manual-packages.txt`; `npm-global.txt` and `composer-global.txt` list global packages."
    )
    options: SystemInfoOptions

    def _env(self) -> dict[str, str]:
        """The environment additions for every tool (and PATH, where to find them)."""
        env = {"PATH": self.options.path if self.options.path is not None else os.environ.get("PATH", "")}
        env.update(
            {
                "LC_ALL": "C",
                "SYSTEMD_PAGER": "cat",
                "COMPOSER_ALLOW_SUPERUSER": "1",
                "NO_COLOR": "1",
                "npm_config_update_notifier": "false",
                "DEBIAN_FRONTEND": "noninteractive",
            }
        )
        return env

    def _which(self, tool: str, env: dict[str, str]) -> str | None:
        return shutil.which(tool, path=env.get("PATH", ""))

    # ---------------------------------------------------------------------------------------- backup
    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Capture every enabled item; missing/failed tools are recorded in info.json."""
        env = self._env()
        items: dict[str, Any] = {}
        for name, item in ITEMS.items():
            if name not in self.options.collect:
                items[name] = {"status": "disabled"}
                continue
            record, data = self._capture(name, env)
            items[name] = record
            if data:
                out.add_bytes(item.filename, data, mode=0o644)
        tools = {}
        for tool, argv in VERSIONS.items():
            exe = self._which(tool, env)
            if exe:
                res = proc.run_capture([exe, *argv[1:]], env=env, timeout=self.options.timeout)
                lines = res.stdout.decode("utf-8", "replace").strip().splitlines()
                tools[tool] = lines[0] if res.ok and lines else None
        missing = sorted(n for n, r in items.items() if r["status"] == "missing")
        failed = sorted(n for n, r in items.items() if r["status"] == "failed")
        info = {"format": 1, "items": items, "missing": missing, "failed": failed, "tools": tools}
        out.add_bytes("info.json", json.dumps(info, indent=1, sort_keys=True).encode(), mode=0o644)
        if missing:
            ctx.log(f"{self.name}: not available here (recorded): {', '.join(missing)}")
        for n in failed:
            ctx.log(f"{self.name}: {n} failed (recorded): {items[n].get('error', '')}")
        fatal = [n for n in failed if n in self.options.required]
        if fatal:
            for n in fatal:
                out.log(f"{self.name}: {n}: {items[n].get('error', '')}")
            raise SourceError(
                f"component {self.name}: {', '.join(fatal)} failed: {items[fatal[0]].get('error', '')}",
                hint="Run the tool by hand to see why it fails, or remove the item from 'required'.",
            )
        return {
            "captured": sorted(n for n, r in items.items() if r["status"] == "ok"),
            "missing": missing,
            "failed": failed,
            "tools": tools,
        }

    def _capture(self, name: str, env: dict[str, str]) -> tuple[dict[str, Any], bytes]:
        item = ITEMS[name]
        if name == "os-release":
            root = Path(self.options.root)
            for rel in ("etc/os-release", "usr/lib/os-release"):
                try:
                    return {"status": "ok", "source": rel}, (root / rel).read_bytes()
                except OSError:
                    continue
            return {"status": "missing", "error": "no os-release file"}, b""
        parts: list[bytes] = []
        runs: list[dict[str, Any]] = []
        for argv in item.commands:
            exe = self._which(argv[0], env)
            if exe is None:
                runs.append({"command": " ".join(argv), "status": "missing"})
                continue
            res = proc.run_capture([exe, *argv[1:]], env=env, timeout=self.options.timeout)
            ok = res.ok
            runs.append(
                {"command": " ".join(argv), "status": "ok" if ok else "failed", "exit_code": res.returncode}
                | (
                    {}
                    if ok
                    else {"error": (res.stderr.splitlines() or [f"status {res.returncode}"])[-1][:500]}
                )
            )
            if res.stdout:
                parts.append(
                    res.stdout if len(item.commands) == 1 else f"$ {' '.join(argv)}\n".encode() + res.stdout
                )
        deciding = runs[:1] if item.optional_after_first else runs
        statuses = [r["status"] for r in deciding]
        if all(s == "missing" for s in statuses):
            status = "missing"
        else:
            status = "failed" if "failed" in statuses else "ok"
        record: dict[str, Any] = {"status": status, "commands": runs}
        if status == "failed":
            record["error"] = next(r.get("error", "") for r in deciding if r["status"] == "failed")
        return record, b"\n".join(parts) if len(parts) > 1 else b"".join(parts)

    # --------------------------------------------------------------------------------------- restore
    def preflight(self, ctx: SourceContext) -> list[Finding]:
        checks = Checks(self.name)
        tools = {"packages": "dpkg", "manual-packages": "apt-mark"}
        for item in self.options.required:
            if item in tools:
                checks.tool([tools[item]], what=f"{item} ({tools[item]})", path=self.options.path)
        return checks.findings

    def redirect(self, where: Redirect) -> dict[str, Any]:
        return {"run_install": True} if where.install_packages else {}

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        """The package install plan in ``actions``; its steps run with the restore option ``run_install``
        (``restore --install-packages``)."""
        ro: SystemInfoRestoreOptions = self.restore_options(ctx.options)
        plan = RestorePlan(component=self.name, options=ro)

        def text(fname: str) -> str:
            return snap.read_bytes(fname).decode("utf-8", "replace") if snap.exists(fname) else ""

        manual: list[str] = []
        bad: list[str] = []
        for word in text("manual-packages.txt").split():
            (manual if _PACKAGE.match(word) else bad).append(word)
        if bad:
            plan.warnings.append(f"ignored {len(bad)} unexpected package names, e.g. {bad[0]!r}")
        selections = text("packages.txt")
        steps: list[tuple[list[str], bytes | None]] = []
        if manual:
            steps = [(["apt-get", "update"], None), (["apt-get", "install", "-y", *manual], None)]
        elif selections.strip():
            steps = [
                (["apt-get", "update"], None),
                (["dpkg", "--set-selections"], selections.encode()),
                (["apt-get", "dselect-upgrade", "-y"], None),
            ]
        else:
            plan.warnings.append("the snapshot holds no package list: nothing to install")
        for argv, stdin in steps:
            plan.actions.append(" ".join(argv) + (" < packages.txt" if stdin else ""))
        plan.details["alternative"] = [
            "dpkg --set-selections < packages.txt",
            "apt-get dselect-upgrade -y",
        ]
        plan.details["follow_up"] = _follow_up(text("npm-global.txt"), text("composer-global.txt"))
        self._compare_os(text("os-release"), plan)
        if steps and not ro.run_install:
            plan.warnings.append("package plan not run (restore with --install-packages to run it)")
        elif ro.run_install:
            plan.steps = list(steps)
        return plan

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        report = RestoreReport(self.name, list(plan.actions), list(plan.warnings), dict(plan.details))
        if not plan.steps:
            return report
        env = self._env()

        def log(line: str) -> None:
            ctx.log(f"{self.name}: {line}")

        for argv, stdin in plan.steps:
            exe = self._which(argv[0], env)
            if exe is None:
                raise SourceError(
                    f"component {self.name}: {argv[0]} not found", hint="Is this a Debian/Ubuntu host?"
                )
            chunks = [stdin] if stdin is not None else []
            try:
                proc.feed([exe, *argv[1:]], chunks, stdout="tail", env=env, timeout=3600, log=log)
            except SourceError as exc:
                raise SourceError(
                    f"component {self.name}: {' '.join(argv[:2])} failed: {exc.message}",
                    hint="See the restore log for apt's output; fix the cause and run the plan again.",
                ) from None
        report.details["ran"] = True
        return report

    def _compare_os(self, stored: str, report: RestoreReport) -> None:
        here = Path(self.options.root) / "etc/os-release"
        try:
            current = here.read_text()
        except OSError:
            return
        a, b = _os_id(stored), _os_id(current)
        if stored and a != b:
            report.warnings.append(
                f"packages were listed on {a or 'unknown'}, this machine runs {b or 'unknown'}"
            )


def _os_id(text: str) -> str:
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return " ".join(fields.get(k, "").strip('"') for k in ("ID", "VERSION_ID") if fields.get(k)).strip()


def _follow_up(npm_text: str, composer_text: str) -> list[str]:
    npm = [m.group(1) for m in _NPM_LINE.finditer(npm_text) if m.group(1).rpartition("@")[0] != "npm"]
    composer = [
        f"{m.group(1)}:{m.group(2).lstrip('v')}"
        for line in composer_text.splitlines()
        if (m := _COMPOSER_LINE.match(line.strip()))
    ]
    out = []
    if npm:
        out.append("npm install -g " + " ".join(npm))
    if composer:
        out.append("composer global require " + " ".join(composer))
    return out
