"""``nginx -t`` against a drill's restored copy of the nginx configuration, made safe to run as root.

The restored configuration is untrusted (a repository another host wrote, a web user who could edit
``/etc/nginx``): run as is, ``nginx -t`` would load modules (``load_module``: code, as root), read any file
(``include``, ``ssl_certificate_key``) and write where it says (``pid``, logs, temporary folders; ``nginx -t``
writes the pid file and creates the temporary folders). So the configuration is never handed to nginx as
written. It is read here (:func:`parse`, nginx's own tokenizer rules), every file it includes is found
through :func:`~safehold.sources.sandboxpath.locate` (restored copies only) and parsed too, and a new
configuration is written below the drill's folder in which:

* every ``include`` names a rewritten copy (a glob is expanded here, over the restored folder);
* every absolute path, every relative one with a ``..`` and the files of ``ssl_*`` directives name the
  restored copy of that path, or, when no component holds it, a place below the check's folder
  (``elsewhere/<path>``: a log or pid file is written there, a certificate is missing there);
* ``load_module``, ``ssl_engine``, ``ssl_conf_command`` and ``engine:`` keys are left out (said so): nothing
  loads code or reads files that this module did not map;
* ``pid``, ``lock_file``, the temporary folders and the access log are set below the check's folder where
  the configuration does not set them (nginx's compiled-in defaults are outside), ``-e`` and ``-p`` too.

Every token is written back quoted, so nginx reads exactly the tokens read here; each directive stays on
its line, so that nginx's messages (``in FILE:LINE``) are translated back to the live file and line.
Without nginx installed (or one older than 1.19.5, without ``-e``) the configuration is only parsed.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from safehold import proc
from safehold.sources.base import Finding
from safehold.sources.sandboxpath import OutsideSandbox, Where, locate

MAX_FILE = 1 << 20
MAX_FILES = 500
MAX_DEPTH = 16
#: Directives left out of the check: they load code or read files through another syntax.
DROPPED = {"load_module", "ssl_engine", "ssl_conf_command"}
#: Directives whose relative arguments are files relative to the configuration folder.
_CONF_FILES = re.compile(
    r"^(\w+_)?ssl_(certificate|certificate_key|dhparam|trusted_certificate|client_certificate|crl|"
    r"password_file|session_ticket_key|stapling_file)$"
)
TEMP_PATHS = (
    "client_body_temp_path",
    "proxy_temp_path",
    "fastcgi_temp_path",
    "uwsgi_temp_path",
    "scgi_temp_path",
)
_SPACE = " \t\r\n"


class NginxSyntaxError(Exception):
    """The configuration cannot be read (as nginx would say: the message names file and line)."""


@dataclass
class Stmt:
    """One directive: its name and arguments (unescaped), its block (None for ``;``) and its lines."""

    name: str
    args: list[str]
    line: int
    block: list[Stmt] | None = None
    end_line: int = 0


def _tokens(text: str, where: str) -> Iterator[tuple[str, int, bool]]:
    """(token, line, is_word) like nginx's ``ngx_conf_read_token``: words (quotes removed, ``\\"`` ``\\'``
    ``\\\\`` ``\\t`` ``\\r`` ``\\n`` unescaped) and the separators ``;`` ``{`` ``}`` (is_word False)."""
    i, n, line = 0, len(text), 1
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            line += ch == "\n"
            i += 1
            continue
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if ch in ";{}":
            yield ch, line, False
            i += 1
            continue
        start_line = line
        if ch in "\"'":
            quote, j, raw = ch, i + 1, []
            while True:
                if j >= n:
                    raise NginxSyntaxError(
                        f"unexpected end of file, expecting {quote} in {where}:{start_line}"
                    )
                c = text[j]
                if c == "\\" and j + 1 < n:
                    raw.append(text[j : j + 2])
                    line += text[j + 1] == "\n"
                    j += 2
                    continue
                if c == quote:
                    break
                line += c == "\n"
                raw.append(c)
                j += 1
            i = j + 1
            if i < n and text[i] not in _SPACE + ";{)":
                raise NginxSyntaxError(f'unexpected "{text[i]}" in {where}:{line}')
            yield _unescape("".join(raw)), start_line, True
            continue
        j, variable = i, False
        while j < n:
            c = text[j]
            if c == "{" and variable:
                j += 1
                continue
            variable = False
            if c == "\\" and j + 1 < n:
                line += text[j + 1] == "\n"
                j += 2
                continue
            if c == "$":
                variable = True
                j += 1
                continue
            if c in _SPACE or c in ";{":
                break
            j += 1
        yield _unescape(text[i:j]), start_line, True
        i = j


def _unescape(raw: str) -> str:
    out, k = [], 0
    while k < len(raw):
        c = raw[k]
        if c == "\\" and k + 1 < len(raw):
            nxt = raw[k + 1]
            if nxt in "\"'\\":
                out.append(nxt)
                k += 2
                continue
            if nxt in "trn":
                out.append({"t": "\t", "r": "\r", "n": "\n"}[nxt])
                k += 2
                continue
        out.append(c)
        k += 1
    return "".join(out)


def parse(text: str, where: str) -> list[Stmt]:
    """The directives of one configuration file; NginxSyntaxError when nginx would not read it."""
    root: list[Stmt] = []
    stack: list[list[Stmt]] = [root]
    opened: list[Stmt] = []
    args: list[str] = []
    first = 0
    for tok, line, word in _tokens(text, where):
        if word:
            if not args:
                first = line
            args.append(tok)
        elif tok in ";{":
            if not args:
                raise NginxSyntaxError(f'unexpected "{tok}" in {where}:{line}')
            stmt = Stmt(args[0], args[1:], first)
            stack[-1].append(stmt)
            args = []
            if tok == "{":
                stmt.block = []
                stack.append(stmt.block)
                opened.append(stmt)
        else:
            if args or len(stack) == 1:
                raise NginxSyntaxError(f'unexpected "}}" in {where}:{line}')
            stack.pop()
            opened.pop().end_line = line
    if args:
        raise NginxSyntaxError(f'unexpected end of file, expecting ";" or "}}" in {where}')
    if len(stack) > 1:
        raise NginxSyntaxError(f'unexpected end of file, expecting "}}" in {where}')
    return root


def _quote(token: str) -> str:
    escaped = token.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


@dataclass
class NginxCheck:
    """Rewrites one restored nginx configuration below ``work`` (see the module docstring).

    ``live_root`` is the system component's root: paths in the configuration are below it. ``where`` maps
    live paths (below ``live_root``) to restored copies, ``sandbox`` is the drill's sandbox root."""

    where: Where
    sandbox: Path
    work: Path
    live_root: str = "/"
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: rewritten or mapped location -> live path, to translate nginx's messages back
    names: dict[str, str] = field(default_factory=dict)
    #: (live path, restored copy) of every ssl_certificate
    certificates: list[tuple[str, Path]] = field(default_factory=list)
    files: int = 0
    #: the live configuration folder (relative paths in the configuration start there)
    conf_dir: str = "/etc/nginx"
    #: directive names seen directly in the main context and in the http block (includes too)
    present: dict[str, set[str]] = field(default_factory=lambda: {"main": set(), "http": set()})

    def __post_init__(self) -> None:
        for sub in ("conf", "prefix", "elsewhere", "tmp"):
            (self.work / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    # --------------------------------------------------------------------------------------- paths
    def _live(self, path: str) -> str:
        """A path of the configuration as a live path (below ``live_root``)."""
        return os.path.normpath(os.path.join(self.live_root, path.lstrip("/")))

    def _restored(self, path: str) -> Path | None:
        try:
            return locate(self._live(path), self.where, self.sandbox)
        except (OutsideSandbox, OSError):
            return None

    def map_path(self, path: str) -> str:
        """The restored copy of a configuration's absolute path, else its place below ``elsewhere``."""
        found = self._restored(path)
        if found is None:
            found = self.work / "elsewhere" / os.path.normpath(path).lstrip("/")
            found.parent.mkdir(parents=True, exist_ok=True)
        self.names[str(found)] = os.path.normpath(path)
        return str(found)

    # ----------------------------------------------------------------------------------- rewriting
    def rewrite_main(self, conf: str) -> Path | None:
        """The rewritten main file for the configuration's absolute path ``conf``; None when unreadable
        (``problems`` says why)."""
        self.conf_dir = os.path.dirname(os.path.normpath(conf))
        return self._rewrite_file(conf, 0, "main")

    def _rewrite_file(self, conf: str, depth: int, context: str) -> Path | None:
        if depth > MAX_DEPTH or self.files >= MAX_FILES:
            self.problems.append(
                f"{conf}: includes nested deeper than {MAX_DEPTH} or more than {MAX_FILES} files"
            )
            return None
        try:
            src = locate(self._live(conf), self.where, self.sandbox)
        except (OutsideSandbox, OSError) as exc:
            self.problems.append(f"{conf}: {exc}")
            return None
        if not src.is_file():
            self.problems.append(f"{conf}: not in the snapshot")
            return None
        with src.open("rb") as f:
            raw = f.read(MAX_FILE + 1)
        if len(raw) > MAX_FILE:
            self.problems.append(f"{conf}: larger than {MAX_FILE} bytes")
            return None
        try:
            tree = parse(raw.decode("utf-8", errors="replace"), conf)
        except NginxSyntaxError as exc:
            self.problems.append(str(exc))
            return None
        self.files += 1
        out = self.work / "conf" / f"{self.files}.conf"
        self.names[str(out)] = conf
        lines: list[str] = [""]
        self._emit(tree, lines, depth, context)
        if depth == 0:
            self._defaults(lines, "main")
        out.write_text("\n".join(lines) + "\n")
        return out

    def _defaults(self, lines: list[str], context: str) -> None:
        """Where the configuration sets no pid, lock file, temporary folders or access log in the main
        context / http block, set them below the check's folder (nginx's defaults are outside)."""
        extra = (
            [("pid", "nginx.pid"), ("lock_file", "nginx.lock")]
            if context == "main"
            else [(t, f"tmp/{t}") for t in TEMP_PATHS] + [("access_log", "access.log")]
        )
        for name, rel in extra:
            if name not in self.present[context]:
                lines[-1] += f" {name} {_quote(str(self.work / rel))};"

    def _emit(self, stmts: list[Stmt], lines: list[str], depth: int, context: str) -> None:
        for s in stmts:
            while len(lines) < s.line:
                lines.append("")
            if context in self.present:
                self.present[context].add(s.name)
            text = self._stmt(s, depth, context)
            if text is None:
                continue
            lines[-1] += text
            if s.block is not None:
                lines[-1] += " {"
                inner = "http" if context == "main" and s.name == "http" else "block"
                self._emit(s.block, lines, depth, inner)
                while len(lines) < s.end_line:
                    lines.append("")
                if inner == "http":
                    self._defaults(lines, "http")
                lines[-1] += " }"

    def _stmt(self, s: Stmt, depth: int, context: str) -> str | None:
        if s.name in DROPPED or (
            s.name.endswith(("ssl_certificate", "ssl_certificate_key"))
            and any(a.startswith(("engine:", "store:")) for a in s.args)
        ):
            self.notes.append(s.name)
            return None
        if s.name == "include" and s.block is None:
            if len(s.args) != 1:
                self.problems.append(f"include with {len(s.args)} arguments at line {s.line}")
                return None
            found = self._include(s.args[0], depth, context)
            return " ".join(f"include {_quote(str(p))};" for p in found)
        args = [self._arg(s.name, a) for a in s.args]
        if s.name in ("error_log", "access_log") and args and args[0].startswith("syslog:"):
            args[0] = str(self.work / "syslog.log")  # nothing is sent to the live syslog
        if s.name == "ssl_certificate" and args:
            live = self._live_arg(s.args[0])
            if live is not None:
                self.certificates.append((live, Path(args[0])))
        return " ".join([_quote(s.name), *(_quote(a) for a in args)]) + ("" if s.block is not None else ";")

    def _live_arg(self, arg: str) -> str | None:
        """The configuration path an argument names, None for a variable or a data: value."""
        if "$" in arg or arg.startswith("data:"):
            return None
        return os.path.normpath(os.path.join(self.conf_dir, arg))

    def _arg(self, name: str, arg: str) -> str:
        relative_up = not arg.startswith("/") and ".." in arg.split("/")
        if arg.startswith("/") or relative_up:
            return self.map_path(os.path.join(self.conf_dir, arg))
        if _CONF_FILES.match(name) and "$" not in arg and not arg.startswith("data:"):
            return self.map_path(os.path.join(self.conf_dir, arg))
        return arg

    def _include(self, pattern: str, depth: int, context: str) -> list[Path]:
        path = os.path.normpath(os.path.join(self.conf_dir, pattern))
        folder, base = os.path.split(path)
        if not any(c in base for c in "*?["):
            out = self._rewrite_file(path, depth + 1, context)
            return [out] if out is not None else []
        if any(c in folder for c in "*?["):
            self.problems.append(f"include {pattern}: a pattern in a folder name is not checked")
            return []
        restored = self._restored(folder)
        if restored is None or not restored.is_dir():
            return []  # nginx: a pattern that matches nothing is not an error
        found = []
        for entry in sorted(os.listdir(restored)):
            if fnmatch.fnmatchcase(entry, base) and (not entry.startswith(".") or base.startswith(".")):
                out = self._rewrite_file(os.path.join(folder, entry), depth + 1, context)
                if out is not None:
                    found.append(out)
        return found

    def translate(self, message: str) -> str:
        """nginx's message with rewritten and mapped paths given back as live paths."""
        for rewritten in sorted(self.names, key=len, reverse=True):
            message = message.replace(rewritten, self.names[rewritten])
        return message.replace(str(self.work), "(drill)")


def nginx_program() -> tuple[str | None, str]:
    """The installed nginx that can run a check (``-e`` since 1.19.5), else None and why not."""
    path = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        return None, "nginx is not installed here"
    res = proc.run_capture([path, "-v"], timeout=20)
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", res.stderr + res.stdout.decode(errors="replace"))
    if not m:
        return None, f"cannot tell the version of {path}"
    if tuple(int(x) for x in m.groups()) < (1, 19, 5):
        return (
            None,
            f"nginx {'.'.join(m.groups())} is older than 1.19.5 (no -e: its error log cannot be kept in the sandbox)",
        )
    return path, "nginx/" + ".".join(m.groups())


def check_nginx(
    subject: str, conf: str, where: Where, sandbox: Path, work: Path, live_root: str
) -> tuple[list[Finding], NginxCheck]:
    """Parse (and with nginx installed, test) the restored configuration whose main file is ``conf``."""
    check = NginxCheck(where, sandbox, work, live_root)
    main = check.rewrite_main(conf)
    findings: list[Finding] = []
    if main is None or check.problems:
        msg = "; ".join(check.problems[:3]) or f"{conf}: not readable"
        findings.append(Finding(subject, "nginx", False, f"nginx configuration: {msg}"))
        return findings, check
    left = f"; left out: {', '.join(sorted(set(check.notes)))}" if check.notes else ""
    program, why = nginx_program()
    if program is None:
        findings.append(
            Finding(
                subject,
                "nginx",
                True,
                f"nginx configuration parsed ({check.files} file(s)); nginx -t not run: {why}{left}",
            )
        )
        return findings, check
    res = proc.run_capture(
        [program, "-t", "-q", "-p", f"{work / 'prefix'}/", "-e", str(work / "error.log"), "-c", str(main)],
        timeout=60,
    )
    said = check.translate(res.stderr.strip())
    if res.returncode == 0:
        findings.append(
            Finding(
                subject, "nginx", True, f"nginx -t: the configuration ({check.files} file(s)) is valid{left}"
            )
        )
    else:
        emerg = [ln for ln in said.splitlines() if "[emerg]" in ln] or said.splitlines()[-1:]
        module = "" if not check.notes else " (modules are never loaded from a restored configuration)"
        findings.append(
            Finding(
                subject,
                "nginx",
                False,
                f"nginx -t: {emerg[0].removeprefix('nginx: ') if emerg else 'failed'}{module}",
                lines=said.splitlines()[:20],
            )
        )
    return findings, check
