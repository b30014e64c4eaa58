"""The data sets the runner can use: the generated web-server tree and the real corpus (an upgrade).

A :class:`DataSet` copies its first version into a tool's folder (``prepare``) and turns that copy into
its second version (``change``); neither is timed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from benchmarks import corpus
from benchmarks._measure import disk_usage, remove
from benchmarks.gen import DUMP_PATH, apply_daily_change, generate

DEFAULT_CORPUS = Path("/var/cache/safehold-bench-corpus")


def _cp(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


class DataSet:
    title = ""
    change_label = ""
    marker = Path()

    def prepare(self, dst: Path) -> None:
        raise NotImplementedError

    def change(self, dst: Path) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, object]:
        raise NotImplementedError

    @property
    def gib(self) -> float:
        raise NotImplementedError


class Generated(DataSet):
    """``benchmarks.gen``'s tree; the change is its day-1 change (1% of small files, dump, uploads)."""

    change_label = "daily-change backup (s)"
    marker = DUMP_PATH

    def __init__(self, pristine: Path, scale: float, seed: int) -> None:
        self.pristine, self.scale = pristine, scale
        self.title = f"generated, scale {scale}"
        self._info: dict[str, object] = {"reused": (pristine / DUMP_PATH).exists()}
        if not self._info["reused"]:
            self._info.update(generate(pristine, scale, seed).__dict__)

    def prepare(self, dst: Path) -> None:
        _cp(self.pristine, dst)

    def change(self, dst: Path) -> None:
        apply_daily_change(dst, day=1, scale=self.scale)

    def describe(self) -> dict[str, object]:
        return {**self._info, "bytes_on_disk": disk_usage(self.pristine)[0]}

    @property
    def gib(self) -> float:
        return self.scale


class Corpus(DataSet):
    """``benchmarks.corpus``: a Laravel front end's node_modules and php8.2's Debian source; the change
    replaces the tree with the second version (as ``npm ci`` and unpacking a new release do)."""

    change_label = "upgrade backup (s)"
    marker = Path("php-src/debian/control")
    title = "real corpus (npm + php8.2 source), upgrade v1 -> v2"

    def __init__(self, cache: Path) -> None:
        self.v1, self.v2 = corpus.build(cache)

    def prepare(self, dst: Path) -> None:
        _cp(self.v1, dst)

    def change(self, dst: Path) -> None:
        remove(dst)
        _cp(self.v2, dst)

    def describe(self) -> dict[str, object]:
        return {"v1": corpus.describe(self.v1), "v2": corpus.describe(self.v2)}

    @property
    def gib(self) -> float:
        return 0.5


def make_data_set(kind: str, work: Path, data: Path | None, scale: float, seed: int) -> DataSet:
    if kind == "corpus":
        return Corpus((data or DEFAULT_CORPUS).resolve())
    return Generated((data or work / "pristine").resolve(), scale, seed)
