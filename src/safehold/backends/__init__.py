"""safehold.backends."""
