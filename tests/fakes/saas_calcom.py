"""A stateful fake of Cal.com API v2, as ``/work/shared/reference/saas-apis.md`` describes it.

All routes live under ``/v2`` (so a client's base URL is ``server.url + "/v2"``). State: ``event_types``,
``schedules``, ``teams`` (int id -> object), ``team_event_types`` and ``memberships`` (team id -> id ->
object), ``webhooks`` (string id -> object). Envelope ``{"status": "success", "data": ...}``; errors
``{"status": "error", "timestamp", "path", "error": {"code", "message"}}``.

Rate limit: ``limit`` requests per ``window`` seconds per key (120 / 60 by default, configurable), then
blocked for ``block`` seconds with 429 "Too many requests. Please try again later."; every answer carries
``X-RateLimit-Limit-Default``, ``X-RateLimit-Remaining-Default`` and ``X-RateLimit-Reset-Default``
(seconds until the window or block ends) and never ``Retry-After``. Time comes from the injected clock.

Choices where the real service is lenient (documented so tests can rely on them):

* ``cal-api-version``: the real server silently falls back to the oldest response shape when the header is
  missing or unknown; this fake answers **400** instead, so a client that forgets the header fails loudly.
* PATCH/POST of event types: unknown and read-only top-level fields are silently dropped (as the real
  server does), including the response-only ``seatsPerTimeSlot``; ``seats`` and ``recurrence`` are the
  input forms (``{"disabled": true}`` or an object), ``recurrence: null`` is a 400, ``schedulingType``
  must be ``collective`` or ``roundRobin``; a ``scheduleId`` naming no schedule is a 400.
"""

from __future__ import annotations

import copy
import itertools
import secrets
from datetime import UTC, datetime
from typing import Any

from tests.fakes.saas_server import ApiError, FakeApi, Reply, Request

ET_VERSION = "2024-06-14"
SC_VERSION = "2024-06-11"
ET_READONLY = {
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
    "seatsPerTimeSlot",
    "seatsShowAttendees",
    "seatsShowAvailabilityCount",
}
SCHEDULE_FIELDS = {"name", "timeZone", "availability", "isDefault", "overrides"}


class FakeCalcom(FakeApi):
    unauthorized = "Invalid Access Token."

    def __init__(
        self,
        api_key: str = "cal_live_test",
        clock: Any = None,
        limit: int = 120,
        window: float = 60.0,
        block: float = 60.0,
    ) -> None:
        super().__init__(api_key, clock)
        self.limit, self.window, self.block = limit, window, block
        self._window_start: float | None = None
        self._count = 0
        self._blocked_until = 0.0
        self.limited = 0  # how many 429s the limiter answered
        self.user_id = 10
        self._ids = itertools.count(100)
        self.event_types: dict[int, dict[str, Any]] = {}
        self.schedules: dict[int, dict[str, Any]] = {}
        self.teams: dict[int, dict[str, Any]] = {}
        self.team_event_types: dict[int, dict[int, dict[str, Any]]] = {}
        self.memberships: dict[int, dict[int, dict[str, Any]]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        r = self.route
        r("GET", "/v2/event-types", lambda q: self.listing(q, self.event_types, ET_VERSION))
        r("POST", "/v2/event-types", self.create_event_type)
        r("GET", r"/v2/event-types/(\d+)", lambda q, i: self.get(q, self.event_types, int(i), ET_VERSION))
        r("PATCH", r"/v2/event-types/(\d+)", self.patch_event_type)
        r("GET", "/v2/schedules", lambda q: self.listing(q, self.schedules, SC_VERSION))
        r("GET", "/v2/schedules/default", self.default_schedule)
        r("POST", "/v2/schedules", self.create_schedule)
        r("GET", r"/v2/schedules/(\d+)", lambda q, i: self.get(q, self.schedules, int(i), SC_VERSION))
        r("PATCH", r"/v2/schedules/(\d+)", self.patch_schedule)
        r("GET", "/v2/teams", lambda q: self.listing(q, self.teams))
        r("GET", r"/v2/teams/(\d+)", lambda q, i: self.get(q, self.teams, int(i)))
        r("PATCH", r"/v2/teams/(\d+)", self.patch_team)
        r("GET", r"/v2/teams/(\d+)/event-types", lambda q, t: self.listing(q, self._team(t, "et")))
        r(
            "GET",
            r"/v2/teams/(\d+)/event-types/(\d+)",
            lambda q, t, i: self.get(q, self._team(t, "et"), int(i)),
        )
        r("PATCH", r"/v2/teams/(\d+)/event-types/(\d+)", self.patch_team_event_type)
        r("GET", r"/v2/teams/(\d+)/memberships", lambda q, t: self.paged(q, self._team(t, "m")))
        r(
            "GET",
            r"/v2/teams/(\d+)/memberships/(\d+)",
            lambda q, t, i: self.get(q, self._team(t, "m"), int(i)),
        )
        r("PATCH", r"/v2/teams/(\d+)/memberships/(\d+)", self.patch_membership)
        r("GET", "/v2/webhooks", lambda q: self.paged(q, self.webhooks))
        r("GET", "/v2/webhooks/([^/]+)", lambda q, i: self.get(q, self.webhooks, i))
        r("PATCH", "/v2/webhooks/([^/]+)", self.patch_webhook)

    # shapes
    def error_body(self, req: Request, status: int, message: str, code: str) -> Any:
        codes = {400: "BadRequestException", 401: "UnauthorizedException", 404: "NotFoundException"}
        return {
            "status": "error",
            "timestamp": datetime.now(UTC).isoformat(),
            "path": req.path,
            "error": {
                "code": code if code and status not in codes else codes.get(status, code),
                "message": message,
            },
        }

    def _rate_headers(self) -> dict[str, str]:
        now = self.clock.monotonic()
        if now < self._blocked_until:
            return {
                "X-RateLimit-Limit-Default": str(self.limit),
                "X-RateLimit-Remaining-Default": "0",
                "X-RateLimit-Reset-Default": str(max(int(self._blocked_until - now + 0.999), 1)),
            }
        start = self._window_start if self._window_start is not None else now
        reset = max(int(start + self.window - now + 0.999), 1)
        return {
            "X-RateLimit-Limit-Default": str(self.limit),
            "X-RateLimit-Remaining-Default": str(max(self.limit - self._count, 0)),
            "X-RateLimit-Reset-Default": str(reset),
        }

    def fault_429(self, req: Request) -> Reply:
        headers = self._rate_headers()
        headers["X-RateLimit-Remaining-Default"] = "0"
        return Reply(
            429,
            self.error_body(req, 429, "Too many requests. Please try again later.", "ThrottlerException"),
            headers,
        )

    def before(self, req: Request) -> Reply | None:
        now = self.clock.monotonic()
        if now < self._blocked_until:
            self.limited += 1
            return self.fault_429(req)
        if self._window_start is None or now >= self._window_start + self.window:
            self._window_start, self._count = now, 0
        self._count += 1
        if self._count > self.limit:
            self._blocked_until = now + self.block
            self._window_start = None  # a fresh window once the block ends
            self.limited += 1
            return self.fault_429(req)
        return None

    def decorate(self, reply: Reply) -> Reply:
        if reply.status != 401:
            reply.headers = {**self._rate_headers(), **reply.headers}
        return reply

    @staticmethod
    def ok(data: Any, status: int = 200) -> Reply:
        return Reply(status, {"status": "success", "data": copy.deepcopy(data)})

    @staticmethod
    def _version(q: Request, version: str | None) -> None:
        if version and q.headers.get("cal-api-version") != version:
            raise ApiError(400, f"this fake requires the header cal-api-version: {version}")

    # seeding helpers
    def new_id(self) -> int:
        return next(self._ids)

    def add_schedule(self, **fields: Any) -> dict[str, Any]:
        sc = {"id": self.new_id(), "ownerId": self.user_id, "isDefault": False, "overrides": [], **fields}
        self.schedules[sc["id"]] = sc
        return sc

    def add_event_type(self, **fields: Any) -> dict[str, Any]:
        et = {
            "id": self.new_id(),
            "ownerId": self.user_id,
            "lengthInMinutes": 30,
            "locations": [],
            "bookingFields": [],
            "disableGuests": False,
            "slotInterval": None,
            "minimumBookingNotice": 0,
            "beforeEventBuffer": 0,
            "afterEventBuffer": 0,
            "recurrence": None,
            "metadata": {},
            "price": 0,
            "currency": "usd",
            "seatsPerTimeSlot": None,
            "seatsShowAttendees": False,
            "seatsShowAvailabilityCount": True,
            "scheduleId": None,
            "hidden": False,
            "users": [{"id": self.user_id, "username": "owner"}],
            **fields,
        }
        self.event_types[et["id"]] = et
        return et

    def add_team(self, **fields: Any) -> dict[str, Any]:
        team = {
            "id": self.new_id(),
            "parentId": None,
            "isOrganization": False,
            "isPrivate": False,
            "metadata": {},
            **fields,
        }
        self.teams[team["id"]] = team
        self.team_event_types[team["id"]] = {}
        self.memberships[team["id"]] = {}
        return team

    def add_team_event_type(self, team_id: int, **fields: Any) -> dict[str, Any]:
        et = {
            "id": self.new_id(),
            "teamId": team_id,
            "lengthInMinutes": 30,
            "schedulingType": "COLLECTIVE",
            **fields,
        }
        self.team_event_types[team_id][et["id"]] = et
        return et

    def add_membership(self, team_id: int, user_id: int, **fields: Any) -> dict[str, Any]:
        m = {
            "id": self.new_id(),
            "teamId": team_id,
            "userId": user_id,
            "role": "MEMBER",
            "accepted": True,
            "disableImpersonation": False,
            "user": {"id": user_id, "email": f"user{user_id}@example.invalid"},
            **fields,
        }
        self.memberships[team_id][m["id"]] = m
        return m

    def add_webhook(self, **fields: Any) -> dict[str, Any]:
        hook = {
            "id": secrets.token_hex(8),
            "userId": self.user_id,
            "active": True,
            "triggers": ["BOOKING_CREATED"],
            **fields,
        }
        self.webhooks[hook["id"]] = hook
        return hook

    # generic handlers
    def _team(self, team_id: str, what: str) -> dict[Any, Any]:
        tid = int(team_id)
        if tid not in self.teams:
            raise ApiError(404, f"Team with id={tid} not found")
        return self.team_event_types[tid] if what == "et" else self.memberships[tid]

    def listing(self, q: Request, store: dict[Any, Any], version: str | None = None) -> Reply:
        self._version(q, version)
        return self.ok([store[k] for k in sorted(store)])

    def paged(self, q: Request, store: dict[Any, Any]) -> Reply:
        skip, take = int(q.query.get("skip", 0)), int(q.query.get("take", 250))
        if not 1 <= take <= 250 or skip < 0:
            raise ApiError(400, "take must be between 1 and 250, skip >= 0")
        return self.ok([store[k] for k in sorted(store)][skip : skip + take])

    def get(self, q: Request, store: dict[Any, Any], key: Any, version: str | None = None) -> Reply:
        self._version(q, version)
        if key not in store:
            raise ApiError(404, f"Object with id={key} not found")
        return self.ok(store[key])

    # event types
    def _apply_event_type(self, target: dict[str, Any], body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "body must be an object")
        for k, v in body.items():
            if k in ET_READONLY:
                continue  # silently dropped, as the real server does
            if k == "seats":
                if v.get("disabled"):
                    target["seatsPerTimeSlot"] = None
                else:
                    target["seatsPerTimeSlot"] = v["seatsPerTimeSlot"]
                    target["seatsShowAttendees"] = v.get("showAttendeeInfo", False)
                    target["seatsShowAvailabilityCount"] = v.get("showAvailabilityCount", True)
            elif k == "recurrence":
                if not isinstance(v, dict):
                    raise ApiError(400, "recurrence must be an object")
                target["recurrence"] = None if v.get("disabled") else v
            elif k == "schedulingType":
                if v not in ("collective", "roundRobin"):
                    raise ApiError(400, "schedulingType must be one of collective, roundRobin")
                target["schedulingType"] = "COLLECTIVE" if v == "collective" else "ROUND_ROBIN"
            elif k == "scheduleId":
                if v is not None and v not in self.schedules:
                    raise ApiError(400, f"schedule {v} not found")
                target[k] = copy.deepcopy(v)
            else:
                target[k] = copy.deepcopy(v)

    def create_event_type(self, q: Request) -> Reply:
        self._version(q, ET_VERSION)
        body = q.body or {}
        missing = [k for k in ("title", "slug", "lengthInMinutes") if k not in body]
        if missing:
            raise ApiError(400, f"missing fields: {', '.join(missing)}")
        et = self.add_event_type()
        try:
            self._apply_event_type(et, body)
        except ApiError:
            self.event_types.pop(et["id"])
            raise
        return self.ok(et, 201)

    def patch_event_type(self, q: Request, i: str) -> Reply:
        self._version(q, ET_VERSION)
        if int(i) not in self.event_types:
            raise ApiError(404, f"Event type with id={i} not found")
        self._apply_event_type(self.event_types[int(i)], q.body)
        return self.ok(self.event_types[int(i)])

    def patch_team_event_type(self, q: Request, t: str, i: str) -> Reply:
        store = self._team(t, "et")
        if int(i) not in store:
            raise ApiError(404, f"Event type with id={i} not found")
        self._apply_event_type(store[int(i)], q.body)
        return self.ok(store[int(i)])

    # schedules
    def default_schedule(self, q: Request) -> Reply:
        self._version(q, SC_VERSION)
        found = [s for s in self.schedules.values() if s.get("isDefault")]
        return self.ok(found[0] if found else None)

    def _apply_schedule(self, target: dict[str, Any], body: Any) -> None:
        for k, v in (body or {}).items():
            if k in SCHEDULE_FIELDS:
                target[k] = copy.deepcopy(v)
        if target.get("isDefault"):
            for other in self.schedules.values():
                if other is not target:
                    other["isDefault"] = False

    def create_schedule(self, q: Request) -> Reply:
        self._version(q, SC_VERSION)
        body = q.body or {}
        if "name" not in body or "timeZone" not in body:
            raise ApiError(400, "name and timeZone are required")
        sc = self.add_schedule()
        sc.setdefault("availability", [])
        self._apply_schedule(sc, body)
        return self.ok(sc, 201)

    def patch_schedule(self, q: Request, i: str) -> Reply:
        self._version(q, SC_VERSION)
        if int(i) not in self.schedules:
            raise ApiError(404, f"Schedule with id={i} not found")
        self._apply_schedule(self.schedules[int(i)], q.body)
        return self.ok(self.schedules[int(i)])

    # teams, memberships, webhooks
    def _patch_fields(self, target: dict[str, Any], body: Any, readonly: set[str]) -> None:
        for k, v in (body or {}).items():
            if k not in readonly:
                target[k] = copy.deepcopy(v)

    def patch_team(self, q: Request, i: str) -> Reply:
        if int(i) not in self.teams:
            raise ApiError(404, f"Team with id={i} not found")
        self._patch_fields(self.teams[int(i)], q.body, {"id", "parentId", "isOrganization"})
        return self.ok(self.teams[int(i)])

    def patch_membership(self, q: Request, t: str, i: str) -> Reply:
        store = self._team(t, "m")
        if int(i) not in store:
            raise ApiError(404, f"Membership with id={i} not found")
        for k, v in (q.body or {}).items():
            if k in ("role", "accepted", "disableImpersonation"):
                store[int(i)][k] = v
        return self.ok(store[int(i)])

    def patch_webhook(self, q: Request, i: str) -> Reply:
        if i not in self.webhooks:
            raise ApiError(404, f"Webhook with id={i} not found")
        self._patch_fields(self.webhooks[i], q.body, {"id", "userId"})
        return self.ok(self.webhooks[i])
