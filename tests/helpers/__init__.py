"""Helpers shared by the whole test suite: a torture file tree and a thorough tree comparison."""
