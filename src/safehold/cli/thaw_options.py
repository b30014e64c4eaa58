"""The options of commands that read data packs which may sit in an archive storage class (``restore``,
``check --read-data``): one set, so that they are spelled and documented alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from safehold.operations.restore.thaw import DURATIONS, TIERS, ThawOptions

F = TypeVar("F", bound=Callable[..., Any])

_TIMES = "; ".join(
    f"{c}: " + ", ".join(f"{t} {d}" for t, d in tiers.items()) for c, tiers in DURATIONS.items()
)


def thaw_options(f: F) -> F:
    """Add --thaw, --thaw-tier, --thaw-days and --wait (collected by :func:`from_params`)."""
    for option in reversed(
        [
            click.option(
                "--thaw",
                is_flag=True,
                help="Request the restore of data packs in an archive storage class (S3 GLACIER, "
                "DEEP_ARCHIVE) that this needs; run again when they are readable, or add --wait.",
            ),
            click.option(
                "--thaw-tier",
                type=click.Choice(TIERS),
                default="Standard",
                show_default=True,
                help=f"Retrieval tier of --thaw ({_TIMES}).",
            ),
            click.option(
                "--thaw-days",
                type=click.IntRange(1, 365),
                default=7,
                show_default=True,
                help="Days the restored copies stay readable.",
            ),
            click.option(
                "--wait", is_flag=True, help="With --thaw: wait until every pack is readable, then go on."
            ),
        ]
    ):
        f = option(f)
    return f


def from_params(params: dict[str, Any]) -> ThawOptions:
    """The ThawOptions of a command's parameters (removes them from ``params``)."""
    opts = ThawOptions(
        request=bool(params.pop("thaw")),
        tier=str(params.pop("thaw_tier")),
        days=int(params.pop("thaw_days")),
        wait=bool(params.pop("wait")),
    )
    if opts.wait and not opts.request:
        raise click.UsageError("--wait goes with --thaw")
    return opts
