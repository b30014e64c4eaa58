"""safehold.cli."""
