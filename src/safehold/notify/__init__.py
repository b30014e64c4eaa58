"""safehold.notify."""
