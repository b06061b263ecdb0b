"""Peak memory of this process, as the benchmarks report it (no heavy imports: serving processes start with it)."""

from __future__ import annotations

import resource


def peak_rss_gb() -> float:
    """This process's peak resident memory in GB (10^9 bytes): VmHWM of /proc/self/status, which starts afresh when
    the process execs. getrusage's ru_maxrss carries the parent's over (Linux keeps the larger across exec), so a
    small process started by a large one reported the large one's peak. Elsewhere ru_maxrss (KiB on Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e9  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
