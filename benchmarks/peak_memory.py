"""A command's memory as the machine sees it: the summed resident set of its whole process tree, sampled.

    python benchmarks/peak_memory.py --out results/benchmarks/peak_memory_X.json -- bench evaluate FILE ...

``getrusage`` (and the record's ``max_rss_gb``) gives the largest single process; a pool of workers each holding
CHGNet and its graphs adds up, and what a 16 GB laptop must hold is the sum. This runs the command, reads the RSS
of it and every descendant every ``--interval`` seconds (psutil), and writes the peak of the sum, the peak of the
largest process, the number of processes at the peak, the wall time, the exit status and the load average.

It also sums each process's proportional set size (PSS, from /proc/PID/smaps_rollup where Linux provides it): RSS
counts a shared page (torch's libraries, mapped by every spawned worker) once per process, PSS divides it among
them, so the PSS sum is what the processes take from the machine together. Both peaks are written.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pss_bytes(pid: int) -> int | None:
    """The proportional set size of process ``pid`` (bytes), or None where /proc has no smaps_rollup."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def tree_rss(root) -> tuple[int, int, int, int | None]:
    """(summed RSS bytes, largest single RSS, process count, summed PSS or None) of ``root`` and its descendants."""
    import psutil

    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0, 0, None
    sizes, pss = [], []
    for process in processes:
        try:
            sizes.append(process.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        pss.append(pss_bytes(process.pid))
    pss_sum = None if not pss or None in pss else sum(pss)
    return sum(sizes), max(sizes, default=0), len(sizes), pss_sum


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")

    import psutil
    from common import load_average, result_header

    from harness.io import atomic_write_json

    load_before = load_average()
    start = time.perf_counter()
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    peak_sum, peak_single, at_peak, samples, peak_pss = 0, 0, 0, 0, None
    timeline = []
    while child.poll() is None:
        total, single, count, pss = tree_rss(root)
        samples += 1
        if pss is not None:
            peak_pss = max(peak_pss or 0, pss)
        if total > peak_sum:
            peak_sum, at_peak = total, count
        peak_single = max(peak_single, single)
        if samples % max(1, int(30 / args.interval)) == 0:  # one timeline point every ~30 s
            timeline.append([round(time.perf_counter() - start, 1), round(total / 2**30, 3)])
        time.sleep(args.interval)
    wall = time.perf_counter() - start
    result = {
        **result_header("peak_memory", command=shlex.join(command)),
        "exit_status": child.returncode,
        "wall_s": round(wall, 1),
        "peak_tree_rss_gb": round(peak_sum / 2**30, 3),
        "peak_tree_pss_gb": None if peak_pss is None else round(peak_pss / 2**30, 3),
        "peak_single_process_rss_gb": round(peak_single / 2**30, 3),
        "processes_at_peak": at_peak,
        "sample_interval_s": args.interval,
        "load_average": {"before": load_before, "after": load_average()},
        "timeline_s_gb": timeline,
    }
    atomic_write_json(args.out, result)
    print({k: result[k] for k in ("exit_status", "wall_s", "peak_tree_rss_gb", "peak_tree_pss_gb", "peak_single_process_rss_gb",
                                  "processes_at_peak")}, file=sys.stderr)
    return child.returncode


if __name__ == "__main__":
    raise SystemExit(main())
