"""Progress bars with ETA on a terminal (rich); the CLI only uses this when stderr is a TTY."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichProgress:
    #: Ask operations for totals (an extra metadata-only walk) so that the bar can show an ETA.
    wants_totals = True

    def __init__(self) -> None:
        self._console = Console(stderr=True)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._files = 0
        self.warnings: list[str] = []

    def start(self, phase: str, total_files: int | None = None, total_bytes: int | None = None) -> None:
        self.finish()
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[files]} files"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._bar.start()
        self._files = 0
        self._task = self._bar.add_task(phase, total=total_bytes, files=0)

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        if self._bar is not None and self._task is not None:
            self._files += files
            self._bar.update(self._task, advance=nbytes, files=self._files)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self._console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._task = None
