"""End-to-end tests of a whole server."""
