"""Running unattended: the jobs a configuration asks for (backup, check, drill, prune...) and the systemd
timers or cron files that run them.

Glossary:

* :mod:`.jobs` — which jobs, when, and their systemd units / cron lines rendered (nothing written).
* :mod:`.install` — ``schedule install|status|remove``: the files written, a manifest of them, checks.
"""
