"""Restore of a ``saas/calcom`` export: plan, then apply in dependency order with id remapping.

Order: schedules, event types (they reference ``scheduleId``), teams, team event types, memberships,
webhooks. Fields stripped before comparing and sending (the reference's read-only lists):

* event type: ``id``, ``ownerId``, ``users``, ``teamId``, ``team``, ``parentEventTypeId``, ``price``,
  ``currency``, ``metadata``, ``isInstantEvent``, ``forwardParamsSuccessRedirect``;
* schedule: ``id``, ``ownerId`` (the PATCH takes ``name``, ``timeZone``, ``availability``, ``isDefault``,
  ``overrides``); team: ``id``, ``parentId``, ``isOrganization``; membership: ``id``, ``teamId``,
  ``user``; webhook: ``id``, ``userId``.

An event type's PATCH/POST body is converted from the response shape: ``seatsPerTimeSlot`` becomes a
``seats`` object (``{"disabled": true}`` when null), ``recurrence: null`` becomes ``{"disabled": true}``,
``schedulingType`` is sent only as ``collective`` or ``roundRobin``; ``bookingFields`` replaces the whole
array. A deleted schedule or event type is re-created (POST) with a new id, and event types' ``scheduleId``
is remapped (a live event type with the same slug, or a schedule with the same content, that is not
itself in the export is taken as the copy an earlier restore made, and updated instead); teams, team
event types, memberships and webhooks can only be updated through the documented API, so a deleted one
is reported as ``missing``.
"""

from __future__ import annotations

import copy
from typing import Any

from safehold.sources.component import ComponentReader
from safehold.sources.saas.calcom.client import CalApi
from safehold.sources.saas.calcom.options import EVENT_TYPES_VERSION, SCHEDULES_VERSION
from safehold.sources.saas.common import (
    IdMap,
    Obj,
    ObjectKind,
    read_objects,
)
from safehold.sources.saas.http import segment

EVENT_TYPE_READONLY = frozenset(
    {
        "id",
        "ownerId",
        "users",
        "teamId",
        "team",
        "parentEventTypeId",
        "price",
        "currency",
        "metadata",
        "isInstantEvent",
        "forwardParamsSuccessRedirect",
    }
)
SCHEDULE_READONLY = frozenset({"id", "ownerId"})
SCHEDULE_FIELDS = ("name", "timeZone", "availability", "isDefault", "overrides")
TEAM_READONLY = frozenset({"id", "parentId", "isOrganization"})
MEMBERSHIP_READONLY = frozenset({"id", "teamId", "user"})
WEBHOOK_READONLY = frozenset({"id", "userId"})
SCHEDULING_TYPES = {"collective": "collective", "round_robin": "roundRobin", "roundrobin": "roundRobin"}


def event_type_body(obj: Obj) -> Obj:
    """The PATCH/POST body for an event type (read-only fields already stripped)."""
    body = copy.deepcopy(obj)
    if "seatsPerTimeSlot" in body:
        seats = body.pop("seatsPerTimeSlot")
        show_attendees = body.pop("seatsShowAttendees", None)
        show_count = body.pop("seatsShowAvailabilityCount", None)
        if seats:
            body["seats"] = {
                "seatsPerTimeSlot": seats,
                "showAttendeeInfo": bool(show_attendees),
                "showAvailabilityCount": True if show_count is None else bool(show_count),
            }
        else:
            body["seats"] = {"disabled": True}
    if "recurrence" in body and body["recurrence"] is None:
        body["recurrence"] = {"disabled": True}
    if "schedulingType" in body:
        value = SCHEDULING_TYPES.get(str(body.pop("schedulingType") or "").lower())
        if value:
            body["schedulingType"] = value
    return body


def schedule_body(obj: Obj) -> Obj:
    """The PATCH/POST body for a schedule: only the fields the endpoint takes."""
    return {k: copy.deepcopy(obj[k]) for k in SCHEDULE_FIELDS if k in obj}


def saved(snap: ComponentReader) -> dict[str, list[tuple[str, Obj]]]:
    """The saved objects of each folder, team event types and memberships with their team's id."""
    saved = {
        "schedules": read_objects(snap, "schedules"),
        "event-types": read_objects(snap, "event-types"),
        "teams": read_objects(snap, "teams"),
        "team-event-types": [],
        "memberships": [],
        "webhooks": read_objects(snap, "webhooks"),
    }
    for _path, team in saved["teams"]:
        folder = f"teams/{_path.rsplit('/', 1)[1][: -len('.json')]}"
        for kind in ("event-types", "memberships"):
            target = "team-event-types" if kind == "event-types" else kind
            for path, obj in read_objects(snap, f"{folder}/{kind}"):
                saved[target].append((path, {**obj, "teamId": obj.get("teamId", team.get("id"))}))
    return saved


def object_kinds(api: CalApi) -> list[ObjectKind]:
    """Schedules, event types, teams, team event types, memberships, webhooks, with their API calls."""

    def get(path: str, version: str | None = None) -> Any:
        return lambda key: api.call("GET", path.format(*_split(key)), version=version, allow_404=True)

    def team_key(o: Obj) -> str:
        return f"{o.get('teamId')}/{o.get('id')}"

    return [
        ObjectKind(
            kind="schedule",
            folder="schedules",
            key_of=lambda o: str(o.get("id")),
            readonly=SCHEDULE_READONLY,
            get=get("/schedules/{}", SCHEDULES_VERSION),
            update=lambda key, o: api.call(
                "PATCH", f"/schedules/{segment(key)}", version=SCHEDULES_VERSION, json=schedule_body(o)
            ),
            create=lambda o: api.call("POST", "/schedules", version=SCHEDULES_VERSION, json=schedule_body(o)),
            new_key_of=lambda o: o.get("id"),
            label_of=lambda o: str(o.get("name") or ""),
            candidates=lambda: list(api.call("GET", "/schedules", version=SCHEDULES_VERSION) or []),
        ),
        ObjectKind(
            kind="event-type",
            folder="event-types",
            key_of=lambda o: str(o.get("id")),
            readonly=EVENT_TYPE_READONLY,
            get=get("/event-types/{}", EVENT_TYPES_VERSION),
            update=lambda key, o: api.call(
                "PATCH", f"/event-types/{segment(key)}", version=EVENT_TYPES_VERSION, json=event_type_body(o)
            ),
            create=lambda o: api.call(
                "POST", "/event-types", version=EVENT_TYPES_VERSION, json=event_type_body(o)
            ),
            new_key_of=lambda o: o.get("id"),
            remap=_remap_schedule,
            candidates=lambda: list(api.call("GET", "/event-types", version=EVENT_TYPES_VERSION) or []),
            same=lambda want, live: bool(want.get("slug")) and want.get("slug") == live.get("slug"),
            label_of=lambda o: str(o.get("slug") or o.get("title") or ""),
        ),
        ObjectKind(
            kind="team",
            folder="teams",
            key_of=lambda o: str(o.get("id")),
            readonly=TEAM_READONLY,
            get=get("/teams/{}"),
            update=lambda key, o: api.call("PATCH", f"/teams/{segment(key)}", json=o),
            label_of=lambda o: str(o.get("slug") or o.get("name") or ""),
            missing_note="the documented API cannot re-create a team: create it by hand, then restore again",
        ),
        ObjectKind(
            kind="team-event-type",
            folder="team-event-types",
            key_of=team_key,
            readonly=EVENT_TYPE_READONLY,
            get=get("/teams/{}/event-types/{}"),
            update=lambda key, o: api.call(
                "PATCH", "/teams/{}/event-types/{}".format(*_split(key)), json=event_type_body(o)
            ),
            remap=_remap_schedule,
            label_of=lambda o: str(o.get("slug") or o.get("title") or ""),
        ),
        ObjectKind(
            kind="membership",
            folder="memberships",
            key_of=team_key,
            readonly=MEMBERSHIP_READONLY,
            get=get("/teams/{}/memberships/{}"),
            update=lambda key, o: api.call("PATCH", "/teams/{}/memberships/{}".format(*_split(key)), json=o),
            label_of=_member_label,
        ),
        ObjectKind(
            kind="webhook",
            folder="webhooks",
            key_of=lambda o: str(o.get("id")),
            readonly=WEBHOOK_READONLY,
            get=get("/webhooks/{}"),
            update=lambda key, o: api.call("PATCH", f"/webhooks/{segment(key)}", json=o),
            label_of=lambda o: str(o.get("subscriberUrl") or ""),
        ),
    ]


def _split(key: str) -> list[str]:
    return [segment(part) for part in key.split("/")]


def _member_label(obj: Obj) -> str:
    user = obj.get("user")
    if isinstance(user, dict):
        return str(user.get("email") or user.get("username") or "")
    return ""


def _remap_schedule(obj: Obj, ids: IdMap) -> Obj:
    out = copy.deepcopy(obj)
    if out.get("scheduleId") is not None:
        new = ids.get("schedule", out["scheduleId"])
        out["scheduleId"] = int(new) if isinstance(new, str) and new.isdigit() else new
    return out
