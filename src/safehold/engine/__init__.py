"""safehold.engine."""
