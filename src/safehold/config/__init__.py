"""safehold.config."""
