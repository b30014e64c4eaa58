"""safehold: disaster recovery for self-hosted application servers."""

__version__ = "0.1.0"
