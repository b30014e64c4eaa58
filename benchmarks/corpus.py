"""A real corpus of small files that no one here generated, in two versions (an upgrade).

Each version is what an application server holds for a Laravel front end plus a Debian source tree:

    node_modules/   a Laravel front end (vite, vue, inertia, tailwind, axios, laravel-echo, pusher-js,
                    typescript, eslint, prettier, vitest, heroicons, fontawesome, date-fns, bootstrap, sass,
                    ...) installed with ``npm ci`` from the lock files in ``benchmarks/corpus/npm-N/``
                    (~21,000 files, ~250 MB)
    php-src/        Debian's ``php8.2`` source package, unpacked with ``dpkg-source -x`` (upstream tree
                    plus ``debian/``; ~22,800 files, ~206 MB)

Version 1 is the mid-2023 front end and php8.2 8.2.29; version 2 ("the upgrade") is the late-2024 front
end (vite 5, vue 3.5, ...) and php8.2 8.2.32. Both versions are ~44,000 files and ~455 MB.

The npm packages come from the npm registry through the machine's ``npm`` (``npm ci``: exactly the
locked versions). The PHP sources come from the Debian archive the machine's apt is configured with (the
``URIs`` of its ``deb`` sources; every file is checked against its SHA-256 pinned here). Both
trees are built once into a cache folder and reused (``python -m benchmarks.corpus DIR``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent / "corpus"

#: version -> (npm lock folder, php8.2 Debian version, {file name: sha256})
VERSIONS: dict[int, tuple[str, str, dict[str, str]]] = {
    1: (
        "npm-1",
        "8.2.29-1~deb12u1",
        {
            "php8.2_8.2.29-1~deb12u1.dsc": "e85b80921174fe16b612ad72ce921f16574f41027449b955f96d41edcf12aad5",
            "php8.2_8.2.29.orig.tar.xz": "475f991afd2d5b901fb410be407d929bc00c46285d3f439a02c59e8b6fe3589c",
            "php8.2_8.2.29-1~deb12u1.debian.tar.xz": (
                "57680b9b9eba75df8edbd88e3cf20ab6b46a7da00150f376b1e23e108a841bc4"
            ),
        },
    ),
    2: (
        "npm-2",
        "8.2.32-1~deb12u1",
        {
            "php8.2_8.2.32-1~deb12u1.dsc": "2dd58aea6324c0d6bd3da32bb1b6e2c10a9cf201c2587a7f6dd1acff7cef52fe",
            "php8.2_8.2.32.orig.tar.xz": "e02aa173c236c12791696254d607da680e6d5516f8f5c2339642de7c4f944bd2",
            "php8.2_8.2.32-1~deb12u1.debian.tar.xz": (
                "33294e7f23f986126dd9e0ff35f461ff41c33d1616edca70085ccf9326f79e80"
            ),
        },
    ),
}
_DONE = ".corpus-complete"


class CorpusError(RuntimeError):
    pass


def debian_mirrors() -> list[str]:
    """The base URIs of the machine's Debian ``deb`` sources (deb822 and one-line formats)."""
    found: list[str] = []
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for block in text.split("\n\n"):
                uris = re.search(r"^URIs:\s*(.+)$", block, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", block, re.M)
                if uris and suites and "bookworm" in suites.group(1).split():
                    found += uris.group(1).split()
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
                if m:
                    found.append(m.group(1))
    return [u.rstrip("/") for u in found if u.rstrip("/").endswith("/debian")]


def _fetch(name: str, sha256: str, dest: Path) -> None:
    errors = []
    for base in debian_mirrors():
        url = f"{base}/pool/main/p/php8.2/{name}"
        try:
            with urllib.request.urlopen(url, timeout=120) as resp:
                data = resp.read()
        except OSError as exc:
            errors.append(f"{url}: {exc}")
            continue
        if hashlib.sha256(data).hexdigest() != sha256:
            errors.append(f"{url}: SHA-256 mismatch")
            continue
        dest.write_bytes(data)
        return
    raise CorpusError(f"cannot fetch {name} from the machine's Debian sources: {errors or 'none configured'}")


def _php_tree(version: int, dest: Path) -> None:
    _lock, _debver, files = VERSIONS[version]
    with tempfile.TemporaryDirectory(prefix="corpus-deb-") as tmp:
        t = Path(tmp)
        for name, digest in files.items():
            _fetch(name, digest, t / name)
        dsc = next(n for n in files if n.endswith(".dsc"))
        if shutil.which("dpkg-source"):
            subprocess.run(
                ["dpkg-source", "--no-check", "-x", dsc, str(dest)], cwd=t, check=True, capture_output=True
            )
        else:  # the same tree without the quilt patches applied
            dest.mkdir()
            orig = next(n for n in files if ".orig." in n)
            deb = next(n for n in files if n.endswith(".debian.tar.xz"))
            subprocess.run(["tar", "-xJf", t / orig, "--strip-components=1", "-C", dest], check=True)
            subprocess.run(["tar", "-xJf", t / deb, "-C", dest], check=True)


def _npm_tree(version: int, dest: Path, npm_cache: Path) -> None:
    if shutil.which("npm") is None:
        raise CorpusError("npm is not installed (Debian: apt-get install npm)")
    lock = HERE / VERSIONS[version][0]
    dest.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(lock / name, dest / name)
    res = subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--cache", str(npm_cache)],
        cwd=dest, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        raise CorpusError(f"npm ci failed: {res.stderr[-2000:]}")


def build(cache: Path) -> tuple[Path, Path]:
    """The two versions' trees under ``cache`` (``v1``, ``v2``), built on first use."""
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for version in (1, 2):
        root = cache / f"v{version}"
        if not (cache / f"{_DONE}-{version}").exists():
            if root.exists():
                shutil.rmtree(root)
            _npm_tree(version, root, cache / "npm-cache")
            _php_tree(version, root / "php-src")
            (cache / f"{_DONE}-{version}").write_text("")
        out.append(root)
    shutil.rmtree(cache / "npm-cache", ignore_errors=True)
    return out[0], out[1]


def describe(root: Path) -> dict[str, int]:
    files = dirs = size = 0
    for _dirpath, dnames, fnames in os.walk(root):
        dirs += len(dnames)
        for n in fnames:
            p = os.path.join(_dirpath, n)
            st = os.lstat(p)
            files += 1
            size += st.st_size
    return {"files": files, "dirs": dirs, "bytes": size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.corpus", description=__doc__.split("\n")[0])
    ap.add_argument("dir", type=Path, help="cache folder for the two versions (built on first use)")
    args = ap.parse_args(argv)
    try:
        v1, v2 = build(args.dir)
    except (CorpusError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for v in (v1, v2):
        print(v, describe(v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
