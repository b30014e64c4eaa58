"""safehold.operations."""
