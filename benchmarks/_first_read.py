"""Runs ``safehold ARGS`` and writes to ``$SAFEHOLD_BENCH_FIRST_READ`` the seconds from this process's
start (as the kernel records it) to its first open of a regular file under the backed-up path (the last
argument): interpreter start-up, imports, repository, index and cache loading. Used by the benchmark
runner for safehold's initial backup; it changes nothing else about the run."""

import os
import sys
import time


def _started() -> float:
    with open("/proc/self/stat", "rb") as f:
        ticks = int(f.read().rsplit(b")", 1)[1].split()[19])  # field 22: start time, clock ticks after boot
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    out = os.environ.pop("SAFEHOLD_BENCH_FIRST_READ")
    root = os.fsencode(os.path.abspath(sys.argv[-1]))
    start = _started()
    real_open = os.open

    def spy(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not flags & os.O_DIRECTORY and os.fsencode(path).startswith(root):
            os.open = real_open
            with open(out, "w") as f:
                f.write(repr(time.clock_gettime(time.CLOCK_BOOTTIME) - start))
        return real_open(path, flags, *args, **kwargs)

    os.open = spy
    sys.argv = ["safehold", *sys.argv[1:]]
    from safehold.cli.main import entry

    entry()


if __name__ == "__main__":
    main()
