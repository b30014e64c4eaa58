"""``python -m safehold``."""

from safehold.cli.boot import entry

entry()
