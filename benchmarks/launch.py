"""Run one command and report its wall time and resource use, from a small process of ours.

    python benchmarks/launch.py <report.json> <command> [args...]

Why not measure from the benchmark process itself: on Linux a child's ``ru_maxrss`` includes
the high-water mark of the address space it was spawned from (exec records the old one's
before replacing it, and Python spawns with vfork), so a tool started by the benchmark, which
has itself held a model and a 10M-row data set, would be charged with the benchmark's peak
(once 494 MB for a run of ours that needs 340). This launcher imports nothing but the standard
library and stays at about 10 MB, so the peak it reports is the tool's own.
"""

import json
import os
import sys
import time


def main() -> int:
    report, argv = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    with open(report, "w") as out:
        json.dump({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                   "peak_rss_kb": usage.ru_maxrss,
                   "returncode": os.waitstatus_to_exitcode(status)}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
