"""safehold.sources."""
