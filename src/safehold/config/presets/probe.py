"""Read-only probes of a server's configuration files, all below a redirectable ``root``.

Each probe returns what it found (paths relative to ``root`` where that helps the report) and never
raises for a missing or unreadable file: discovery reports what it could not find instead.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from pathlib import Path

_COMMENT = re.compile(r"(^|\s)#.*$", re.M)
_DIRECTIVE = re.compile(r"(?:^|[;{}\s])(root|fastcgi_pass|server_name)\s+([^;]+);")
_QUEUE_WORK = re.compile(r"artisan\s+queue:work")
_SCHEDULE_RUN = re.compile(r"artisan\s+schedule:run")
_LISTEN = re.compile(r"^\s*listen\s*=\s*(\S+)\s*$", re.M)
_POOL = re.compile(r"^\s*\[([^\]]+)\]", re.M)


def read_text(path: Path) -> str | None:
    """The file's text, or None when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def rel(root: Path, path: Path) -> str:
    """``path`` as the server sees it: relative to ``root``, with a leading '/'."""
    try:
        return "/" + path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def server_views(root: Path, app_dir: Path) -> list[str]:
    """The spellings of ``app_dir`` a configuration file on the server may use."""
    views = {str(app_dir).rstrip("/")}
    try:
        views.add("/" + app_dir.relative_to(root).as_posix())
    except ValueError:
        pass
    return sorted(views)


def _inside(path: str, views: list[str]) -> bool:
    path = path.strip().strip("\"'").rstrip("/")
    return any(path == v or path.startswith(v + "/") for v in views)


@dataclass
class Vhost:
    """An nginx configuration file with a ``root`` inside the application folder."""

    path: Path
    server_names: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    fastcgi_pass: list[str] = field(default_factory=list)


def nginx_vhost(root: Path, app_dir: Path) -> Vhost | None:
    """The first vhost (sites-enabled, sites-available, conf.d) whose ``root`` points into ``app_dir``."""
    views = server_views(root, app_dir)
    seen: set[Path] = set()
    for folder in ("sites-enabled", "sites-available", "conf.d"):
        base = root / "etc" / "nginx" / folder
        try:
            files = sorted(p for p in base.iterdir() if p.is_file())
        except OSError:
            continue
        for path in files:
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            text = read_text(path)
            if text is None:
                continue
            vhost = Vhost(path)
            for name, value in _DIRECTIVE.findall(_COMMENT.sub("", text)):
                if name == "root":
                    vhost.roots.append(value.strip())
                elif name == "fastcgi_pass":
                    vhost.fastcgi_pass.append(value.strip())
                else:
                    vhost.server_names.extend(n for n in value.split() if n != "_")
            if any(_inside(r, views) for r in vhost.roots):
                return vhost
    return None


@dataclass
class FpmPool:
    path: Path
    name: str
    listen: str | None
    matched: bool  # True: the vhost's fastcgi_pass uses this pool's socket; False: fallback www.conf


def _version_key(path: Path) -> tuple[int, ...]:
    version = path.parts[-4] if len(path.parts) >= 4 else ""
    return tuple(int(x) for x in re.findall(r"\d+", version))


def php_fpm_pool(root: Path, fastcgi_pass: list[str]) -> FpmPool | None:
    """The pool whose ``listen`` the vhost's ``fastcgi_pass`` uses, else the newest PHP's www.conf."""
    pools = sorted((root / "etc" / "php").glob("*/fpm/pool.d/*.conf"), key=_version_key, reverse=True)
    wanted = {p.removeprefix("unix:").strip() for p in fastcgi_pass}
    fallback: FpmPool | None = None
    for path in pools:
        text = read_text(path) or ""
        names = _POOL.findall(text)
        listens = _LISTEN.findall(text)
        pool = FpmPool(path, names[0] if names else path.stem, listens[0] if listens else None, False)
        if pool.listen and (pool.listen in wanted or any(w.endswith(":" + pool.listen) for w in wanted)):
            pool.matched = True
            return pool
        if path.name == "www.conf" and fallback is None:
            fallback = pool
    return fallback


@dataclass
class SupervisorProgram:
    path: Path
    name: str
    command: str
    numprocs: int


def supervisor_queue_workers(root: Path) -> list[SupervisorProgram]:
    """supervisor programs whose command runs ``artisan queue:work``."""
    out: list[SupervisorProgram] = []
    base = root / "etc" / "supervisor" / "conf.d"
    paths = sorted([*base.glob("*.conf"), *base.glob("*.ini")])
    for path in paths:
        text = read_text(path)
        if text is None or not _QUEUE_WORK.search(text):
            continue
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(text, source=str(path))
        except configparser.Error:
            out.append(SupervisorProgram(path, path.stem, "(unparsable file)", 1))
            continue
        for section in parser.sections():
            if not section.startswith("program:"):
                continue
            command = parser.get(section, "command", fallback="")
            if _QUEUE_WORK.search(command):
                try:
                    numprocs = int(parser.get(section, "numprocs", fallback="1"))
                except ValueError:
                    numprocs = 1
                out.append(SupervisorProgram(path, section.split(":", 1)[1], command.strip(), numprocs))
    return out


@dataclass
class CronEntry:
    path: Path
    owner: str  # the crontab's user, or "cron.d/<file>"
    line: str


def schedule_cron_entries(root: Path) -> list[CronEntry]:
    """Crontab lines (users' crontabs and /etc/cron.d) that run ``artisan schedule:run``."""
    out: list[CronEntry] = []
    sources = [
        (p, p.name) for p in sorted((root / "var" / "spool" / "cron" / "crontabs").glob("*")) if p.is_file()
    ]
    sources += [(p, f"cron.d/{p.name}") for p in sorted((root / "etc" / "cron.d").glob("*")) if p.is_file()]
    for path, owner in sources:
        for line in (read_text(path) or "").splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#") and _SCHEDULE_RUN.search(stripped):
                out.append(CronEntry(path, owner, stripped))
    return out


def letsencrypt_live(root: Path, host: str) -> Path | None:
    """``etc/letsencrypt/live/<host>`` when it exists."""
    if not host:
        return None
    path = root / "etc" / "letsencrypt" / "live" / host
    return path if path.is_dir() else None


_FILAMENT_PATH = re.compile(r"->path\(\s*['\"]([A-Za-z0-9_/-]*)['\"]\s*\)")
_NOVA_PATH = re.compile(r"['\"]path['\"]\s*=>\s*['\"]/?([A-Za-z0-9_/-]*)['\"]")


def admin_path(app_dir: Path) -> str | None:
    """The admin panel's URL path: a Filament panel provider's ``->path('admin')``, Nova's
    ``config/nova.php`` path; None when neither is found."""
    for provider in sorted((app_dir / "app" / "Providers" / "Filament").glob("*.php")):
        m = _FILAMENT_PATH.search(read_text(provider) or "")
        if m is not None:
            return m.group(1).strip("/")
    nova = read_text(app_dir / "config" / "nova.php")
    if nova is not None:
        m = _NOVA_PATH.search(nova)
        return m.group(1).strip("/") if m else "nova"
    return None
