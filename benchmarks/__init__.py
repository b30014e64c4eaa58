"""safehold's benchmark against restic and borg.

- ``benchmarks.gen``: deterministic web-server-like data set (~1 GiB at scale 1) and its daily change.
- ``benchmarks.run``: ``python -m benchmarks.run`` times init, backups, restores, check, size and peak
  RSS of each tool in one run and prints a table (see benchmarks/README.md).
"""
