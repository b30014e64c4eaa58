"""``python -m safehold``."""

from safehold.cli.main import entry

entry()
