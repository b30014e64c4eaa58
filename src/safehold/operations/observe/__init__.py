"""Knowing the data is safe: status, drills, results, reports, metrics and the audit log.

Glossary:

* :mod:`.status` — the newest complete snapshot of each host and profile against the RPO, and more.
* :mod:`.drill` — restore drills into a sandbox, verified and timed.
* :mod:`.drill_sandbox` — a drill's sandbox folder, its marker and program sessions, and its clean-up.
* :mod:`.drill_deadline` — the deadline of each drill step (``[drill] step_timeout``).
* :mod:`.drill_health` — the configured health checks, run against a drill's sandbox.
* :mod:`.results` — results of drills and checks, recorded in the repository.
* :mod:`.report` — one self-contained HTML page.
* :mod:`.metrics` — status figures as a Prometheus textfile.
* :mod:`.audit` — one JSON record per operation, kept locally (hash-chained) and in the repository.
"""
