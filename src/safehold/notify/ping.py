"""healthchecks.io-style pings: a dead-man's switch that alerts when the expected ping does not come.

``URL/start`` when a backup starts, ``URL`` when it succeeded, ``URL/fail`` (with the log's last lines as
the request body) when it failed or left a partial snapshot, ``URL/log`` for ``notify test`` (recorded,
no change of state). Every ping of one run carries the same ``rid`` query parameter, so the service pairs
start and end and measures the run. The URL comes from a secret reference (it is the check's key) and
must be http:// or https://.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from safehold import syntax
from safehold.errors import SafeholdError
from safehold.notify.redact import Redactor
from safehold.secrets import SecretRef

SUFFIX = {"start": "/start", "success": "", "fail": "/fail", "log": "/log"}
#: healthchecks.io keeps the first 100 kB of a ping body; stay well below.
MAX_BODY = 10_000


def ping_url(base: str, stage: str, run_id: str | None) -> str:
    """``base`` with the stage's path suffix and the run id (``rid``) added to its query."""
    split = urlsplit(base)
    path = split.path.rstrip("/") + SUFFIX[stage]
    query = "&".join(q for q in (split.query, f"rid={run_id}" if run_id else "") if q)
    return urlunsplit((split.scheme, split.netloc, path, query, ""))


def send_ping(
    ref: SecretRef, stage: str, body: str, *, run_id: str | None, timeout: float, redactor: Redactor
) -> str:
    """POST the ping; returns "pinged <stage>", raises SafeholdError (free of secrets) otherwise."""
    base = ref.resolve_for(syntax.URL, owner="healthchecks_ping")
    redactor.add_url(base)
    if urlsplit(base).scheme not in ("http", "https"):
        raise SafeholdError(
            f"healthchecks_ping from {ref.describe()} is not an http:// or https:// URL",
            hint="Give the check's ping URL, e.g. https://hc-ping.com/<uuid>.",
        )
    data = redactor(body).encode("utf-8", "replace")[-MAX_BODY:]
    import httpx  # here, not at the top: ~0.1-0.3 s of every command's start-up, needed only to ping

    try:
        response = httpx.post(ping_url(base, stage, run_id), content=data, timeout=timeout)
    except httpx.HTTPError as exc:
        raise SafeholdError(redactor(f"ping {stage} failed: {type(exc).__name__}: {exc}")) from None
    if response.status_code >= 300:
        raise SafeholdError(f"ping {stage} answered HTTP {response.status_code}")
    return f"pinged {stage}"
