"""Wheels of the running safehold and of every distribution it needs, rebuilt from the installed files.

Why from the installed files rather than ``pip download``: it needs neither network nor a package index
(production hosts often have no way out, and safehold itself is on no index), it packs exactly the code
that runs now, and it works for safehold's own distribution, of which no wheel exists anywhere. A wheel
is a zip of a distribution's files plus its ``.dist-info``: pip listed every installed file in RECORD and
kept the original wheel's tags in WHEEL, so the rebuilt wheel installs wherever the original did (the
same Python ABI and platform). Files pip generated at install time are left out (byte code, the console
scripts of entry points, which pip writes again, INSTALLER, REQUESTED, direct_url.json, RECORD, which is
written anew with the wheel's own hashes). An editable install (safehold's development checkout) has no
files in site-packages: its packages are read from where they are imported from.

The wheels are deterministic (sorted entries, fixed times), so the same installed files give the same
bytes and the same hashes, and they are cached per distribution under the cache folder, so a second
repository on the same host costs a copy.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import parse_tag
from packaging.utils import canonicalize_name

from safehold.errors import SafeholdError
from safehold.operations.backup.wheelzip import WheelZip

#: The one distribution whose closure is packed.
ROOT = "safehold"
_GENERATED = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class WheelError(SafeholdError):
    default_hint = "Install safehold into a virtualenv with pip (see the README's quick start)."


@dataclass(frozen=True)
class Dist:
    """One installed distribution of the closure and the name its wheel gets."""

    name: str
    version: str
    filename: str
    distribution: md.Distribution


def closure(root: str = ROOT) -> list[Dist]:
    """``root`` and every distribution it requires (with extras and environment markers evaluated for
    this interpreter), sorted by name. Raises WheelError when one is not installed."""
    found: dict[str, tuple[md.Distribution, set[str]]] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if key in found and extras <= found[key][1]:
            continue
        try:
            dist = found[key][0] if key in found else md.distribution(name)
        except md.PackageNotFoundError:
            raise WheelError(f"{name} (needed by safehold) is not installed") from None
        all_extras = (found[key][1] if key in found else set()) | set(extras)
        found[key] = (dist, all_extras)
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is None or any(
                req.marker.evaluate({"extra": e}) for e in (sorted(all_extras) or [""])
            ):
                todo.append((req.name, frozenset(req.extras)))
    return [Dist(k, d.version, wheel_filename(d), d) for k, (d, _) in sorted(found.items())]


def _tags(dist: md.Distribution) -> list[str]:
    text = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]
    if not tags:
        raise WheelError(f"{dist.metadata['Name']} {dist.version} was not installed from a wheel (no tags)")
    return tags


def wheel_filename(dist: md.Distribution) -> str:
    """``name-version-py-abi-platform.whl`` with the tags of the wheel the distribution came from."""
    parsed = [t for tag in _tags(dist) for t in parse_tag(tag)]
    part = [
        ".".join(sorted({getattr(t, attr) for t in parsed})) for attr in ("interpreter", "abi", "platform")
    ]
    name = re.sub(r"[-_.]+", "_", canonicalize_name(str(dist.metadata["Name"])))
    return f"{name}-{dist.version}-{'-'.join(part)}.whl"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _is_editable(dist: md.Distribution) -> bool:
    try:
        info = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(isinstance(info, dict) and info.get("dir_info", {}).get("editable"))


def _entry_point_scripts(dist: md.Distribution) -> set[str]:
    return {ep.name for ep in dist.entry_points if ep.group in ("console_scripts", "gui_scripts")}


def _files(dist: Dist) -> Iterator[tuple[str, Path]]:
    """(path inside the wheel, file on disk) for everything but the dist-info's generated files."""
    d = dist.distribution
    site = Path(str(d.locate_file(""))).resolve()
    info_dir = None
    scripts = _entry_point_scripts(d)
    editable = _is_editable(d)
    data_dir = f"{dist.filename.split('-')[0]}-{dist.version}.data"
    if d.files is None:
        raise WheelError(f"{dist.name} {dist.version} lists no installed files (not installed by pip?)")
    for f in d.files:
        rel = PurePosixPath(str(f))
        if "__pycache__" in rel.parts or rel.suffix == ".pyc":
            continue
        if rel.parts[0].endswith(".dist-info"):
            info_dir = rel.parts[0]
            if len(rel.parts) == 2 and rel.name in _GENERATED:
                continue
        if rel.parts[0] == "..":
            up = sum(1 for part in rel.parts if part == "..")
            rest = PurePosixPath(*rel.parts[up:])
            if rest.parts[:1] == ("bin",):
                if rest.name in scripts:
                    continue
                yield f"{data_dir}/scripts/{rest.name}", site / str(f)
            else:
                yield f"{data_dir}/data/{rest}", site / str(f)
            continue
        if editable and (rel.name.startswith("__editable__") or rel.suffix == ".pth"):
            continue
        yield str(rel), site / str(f)
    if editable:
        yield from _editable_files(d)
    if info_dir is None:
        raise WheelError(f"{dist.name} {dist.version} has no .dist-info folder in its file list")


def _editable_files(d: md.Distribution) -> Iterator[tuple[str, Path]]:
    """The packages of an editable install, read from where Python imports them."""
    top = (d.read_text("top_level.txt") or "").split()
    for name in top or [re.sub(r"[-.]+", "_", str(d.metadata["Name"]))]:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise WheelError(
                f"cannot find the package {name} of the editable install of {d.metadata['Name']}"
            )
        if spec.submodule_search_locations:
            base = Path(next(iter(spec.submodule_search_locations)))
            for path in sorted(base.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    yield f"{name}/{path.relative_to(base).as_posix()}", path
        elif spec.origin:
            yield Path(spec.origin).name, Path(spec.origin)


def build_wheel(dist: Dist, folder: Path, files: list[tuple[str, Path]] | None = None) -> Path:
    """Write ``dist``'s wheel into ``folder`` (atomically) and return its path (``files``: its
    :func:`_files`, when read already)."""
    entries = sorted(_files(dist) if files is None else files, key=lambda e: (".dist-info/" in e[0], e[0]))
    info_dir = next(p.split("/", 1)[0] for p, _ in entries if p.split("/", 1)[0].endswith(".dist-info"))
    record: list[str] = []
    fd, tmp = tempfile.mkstemp(prefix=".wheel-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            zf = WheelZip(f, _ZIP_TIME)
            for arc, path in entries:
                data = path.read_bytes()
                mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
                zf.add(arc, data, stat.S_IFREG | mode)
                record.append(f"{arc},{_record_hash(data)},{len(data)}")
            record.append(f"{info_dir}/RECORD,,")
            zf.add(f"{info_dir}/RECORD", ("\n".join(record) + "\n").encode(), stat.S_IFREG | 0o644)
            zf.close()
        out = folder / dist.filename
        os.replace(tmp, out)
        return out
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cache_key(dist: Dist, files: list[tuple[str, Path]]) -> str:
    """Changes when any file of the distribution changes (name, size, mtime), so a rebuilt or edited
    install (an editable checkout) is packed again."""
    h = hashlib.sha256(f"{dist.filename}\0{sys.version}".encode())
    for arc, path in sorted(files):
        st = path.stat()
        h.update(f"{arc}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:20]


def _recorded_size(dist: Dist) -> int:
    """The distribution's size in bytes as pip recorded it (its editable packages not counted), read
    straight from RECORD: only the order of the builds depends on it, largest first, so that the last one
    to finish is a small one."""
    text = dist.distribution.read_text("RECORD") or ""
    return sum(int(size) for line in text.splitlines() if (size := line.rpartition(",")[2]).isdigit())


def _cached_wheel(cache: Path, dist: Dist) -> Path:
    files = list(_files(dist))
    folder = cache / _cache_key(dist, files)
    path = folder / dist.filename
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        build_wheel(dist, folder, files)
    return path


def cached_wheels(cache: Path, dists: list[Dist] | None = None) -> Iterator[Path]:
    """The wheel of every distribution in the closure (``dists``, or read now), each as soon as it is in
    ``cache``, built there when not there yet: two at a time, largest first (deflate, reading and SHA-256
    let go of the interpreter lock, so a first repository's wheels take about half the time on two cores),
    while the caller stores the finished ones."""
    todo = sorted(closure() if dists is None else dists, key=_recorded_size, reverse=True)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="safehold-wheel")
    try:
        for done in as_completed([pool.submit(_cached_wheel, cache, dist) for dist in todo]):
            yield done.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def prune_cache(cache: Path, keep: list[Path]) -> None:
    """Remove cached wheels not in ``keep`` (older versions)."""
    wanted = {p.parent for p in keep}
    for folder in cache.iterdir() if cache.is_dir() else []:
        if folder.is_dir() and folder not in wanted:
            shutil.rmtree(folder, ignore_errors=True)
