"""Retention rules against an independent model, over random snapshot times, zones and policies.

The model is written differently from :func:`safehold.engine.prune.retention.apply_policy` on purpose: it works
on sets (the periods that hold a complete snapshot, ordered by their newest snapshot; the first N of them;
the newest snapshot of each), where the engine walks the snapshots once with counters.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from safehold.engine.format.snapshot import Snapshot
from safehold.engine.prune.retention import BUCKETS, Policy, apply_policy, period

BASE = datetime(2024, 1, 1, tzinfo=UTC)


def snap(
    i: int, when: datetime, *, partial: bool = False, pinned: bool = False, tags: list[str] | None = None
) -> Snapshot:
    s = Snapshot(
        time=when.isoformat(),
        tree="00" * 32,
        paths=["/x"],
        hostname="h",
        partial=partial,
        pinned=pinned,
        tags=tags or [],
    )
    s.id = f"{i:064x}"
    return s


def model(snaps: list[Snapshot], p: Policy) -> set[str]:
    def key(s: Snapshot) -> tuple[datetime, str]:
        return (s.datetime, s.id)

    complete = sorted((s for s in snaps if not s.partial), key=key, reverse=True)
    keep = {s.id for s in snaps if s.pinned}
    if complete:
        keep.add(complete[0].id)
    newest_good = key(complete[0]) if complete else None
    keep |= {s.id for s in snaps if s.partial and (newest_good is None or key(s) > newest_good)}
    if not complete:
        return keep
    ref = complete[0].datetime
    keep |= {s.id for s in complete[: p.last]}
    for spec in p.tags:
        wanted = [t for t in spec.split(",") if t]
        keep |= {s.id for s in complete if wanted and set(wanted) <= set(s.tags)}
    if p.within is not None:
        keep |= {s.id for s in complete if s.datetime > ref - p.within}

    def newest_per_period(kind: str, pool: list[Snapshot]) -> list[Snapshot]:
        best: dict[tuple[int, ...], Snapshot] = {}
        for s in pool:
            k = period(kind, s.datetime)
            if k not in best or key(s) > key(best[k]):
                best[k] = s
        return sorted(best.values(), key=key, reverse=True)

    for kind in BUCKETS:
        n = getattr(p, kind)
        keep |= {s.id for s in newest_per_period(kind, complete)[:n]}
        span = getattr(p, f"within_{kind}")
        if span is not None:
            keep |= {s.id for s in newest_per_period(kind, [s for s in complete if s.datetime > ref - span])}
    return keep


zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
entries = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3 * 365 * 24 * 60),  # minutes after BASE
        zones,
        st.booleans(),  # partial (rare below)
        st.integers(min_value=0, max_value=9),  # pinned when 0
        st.sampled_from([[], ["a"], ["a", "b"], ["b"]]),
    ),
    max_size=40,
)
small = st.integers(min_value=0, max_value=6)
spans = st.one_of(st.none(), st.integers(min_value=1, max_value=400).map(lambda h: timedelta(hours=h)))
policies = st.builds(
    Policy,
    last=small,
    hourly=small,
    daily=small,
    weekly=small,
    monthly=small,
    yearly=small,
    within=spans,
    within_hourly=spans,
    within_daily=spans,
    within_weekly=spans,
    within_monthly=spans,
    within_yearly=spans,
    tags=st.sampled_from([(), ("a",), ("a,b",), ("b", "zzz")]),
)


@settings(max_examples=400, deadline=None)
@given(entries, policies, st.booleans())
def test_engine_matches_model(
    raw: list[tuple[int, timezone, bool, int, list[str]]], p: Policy, one_zone: bool
) -> None:
    snaps = []
    for i, (minutes, zone, partial, pin, tags) in enumerate(raw):
        when = (BASE + timedelta(minutes=minutes)).astimezone(UTC if one_zone else zone)
        snaps.append(snap(i, when, partial=partial and i % 3 == 0, pinned=pin == 0, tags=tags))
    # ties: a second snapshot at exactly the same time as another
    if snaps:
        twin = snap(len(snaps), snaps[0].datetime)
        snaps.append(twin)
    decisions = apply_policy(snaps, p)
    assert {d.snapshot.id for d in decisions} == {s.id for s in snaps}
    assert {d.snapshot.id for d in decisions if d.keep} == model(snaps, p)
    for d in decisions:
        assert bool(d.reasons) == d.keep


def test_days_are_those_of_the_recorded_zone() -> None:
    # 23:30 in New York on the 1st is the 2nd in UTC: one day in its own zone, two by UTC
    ny = timezone(timedelta(hours=-5))
    a = snap(1, datetime(2024, 3, 1, 23, 30, tzinfo=ny))
    b = snap(2, datetime(2024, 3, 1, 8, 0, tzinfo=ny))
    kept = {d.snapshot.id for d in apply_policy([a, b], Policy(daily=2)) if d.keep}
    assert kept == {a.id}  # b is the same day in its zone: daily #2 goes to no one


def test_iso_weeks() -> None:
    # 2024-12-30 (Monday) belongs to ISO week 1 of 2025, with 2025-01-05 (Sunday)
    a = snap(1, datetime(2025, 1, 5, 12, tzinfo=UTC))
    b = snap(2, datetime(2024, 12, 30, 12, tzinfo=UTC))
    c = snap(3, datetime(2024, 12, 29, 12, tzinfo=UTC))
    kept = {d.snapshot.id for d in apply_policy([a, b, c], Policy(weekly=2)) if d.keep}
    assert kept == {a.id, c.id}


def test_reasons_name_the_rules() -> None:
    days = [snap(i, BASE + timedelta(days=i)) for i in range(40)]
    by_id = {d.snapshot.id: d for d in apply_policy(days, Policy(daily=3, monthly=2))}
    newest = by_id[days[-1].id]
    assert newest.verdict == "keep: newest complete snapshot, daily #1, monthly #1"
    assert by_id[days[-3].id].verdict == "keep: daily #3"
    assert by_id[days[30].id].verdict == "keep: monthly #2"  # Jan 31st: the newest of January
    assert by_id[days[10].id].verdict == "remove"


def test_partial_never_counts_and_goes_once_a_complete_one_is_newer() -> None:
    good = snap(1, BASE)
    newer_partial = snap(2, BASE + timedelta(hours=1), partial=True)
    older_partial = snap(3, BASE - timedelta(days=1), partial=True)
    d = {x.snapshot.id: x for x in apply_policy([good, newer_partial, older_partial], Policy(daily=5))}
    assert d[newer_partial.id].keep and d[newer_partial.id].reasons == [
        "partial, newer than every complete snapshot"
    ]
    assert not d[older_partial.id].keep  # the daily of that day is not given to a partial snapshot
    assert d[good.id].keep


def test_newest_complete_and_pinned_survive_any_policy() -> None:
    old_pinned = snap(1, BASE - timedelta(days=900), pinned=True)
    rest = [snap(i + 2, BASE - timedelta(days=i)) for i in range(5)]
    kept = {
        x.snapshot.id for x in apply_policy([old_pinned, *rest], Policy(tags=("nothing-has-this",))) if x.keep
    }
    assert kept == {old_pinned.id, rest[0].id}
