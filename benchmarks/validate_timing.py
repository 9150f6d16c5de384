"""Wall and CPU time of `instrument validate`, per stage, on the shipped default plan (or PLAN).

Runs `instrument.pipeline.validate` in this process, as ``instrument validate`` does, and prints
one row per stage: wall seconds, this process's CPU seconds (``time.process_time``, what the run
log records) and the CPU seconds of child processes that finished in the stage
(``resource.getrusage(RUSAGE_CHILDREN)``: the Chromium processes that print the PDFs and those
of their own children they wait for), the CPU seconds of every descendant process sampled from
/proc every 0.25 s (Chromium's renderers are not waited for, so only the sampling sees them), then
the totals, the time to import the package, the 1-minute load average before and after, and a
speed probe before and after (`speed_probe`; the machine's speed changes from minute to minute
at the same load: read the times beside the load and the probe). A script, never a test.

    python benchmarks/validate_timing.py [PLAN] [--out DIR] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import threading
import time


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class DescendantCPU:
    """CPU seconds (user + system) of every descendant process of this one, sampled from /proc
    every ``interval`` seconds in a thread: the last value seen of each process, summed (what a
    process spends after the last sample before it exits is missed). Linux only."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval, self.seen = interval, {}
        self._stop = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        stat = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                    text = fh.read()
            except OSError:
                continue
            rest = text[text.rfind(")") + 2:].split()
            stat[int(pid)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
        family, grew = {os.getpid()}, True
        while grew:
            new = {p for p, (pp, _) in stat.items() if pp in family and p not in family}
            family |= new
            grew = bool(new)
        for p in family - {os.getpid()}:
            self.seen[p] = max(self.seen.get(p, 0), stat[p][1])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def seconds(self) -> float:
        return sum(self.seen.values()) / self._tick

    def __enter__(self) -> "DescendantCPU":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def speed_probe() -> float:
    """CPU seconds of a fixed single-threaded Python workload (a loop of 5 million steps), the
    least of three tries: a virtual machine's speed changes from minute to minute, and this
    says how fast it ran around the timed run (lower is faster)."""
    def once() -> float:
        c0, s = time.process_time(), 0
        for i in range(5_000_000):
            s += i * i
        return time.process_time() - c0
    return min(once() for _ in range(3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plan", nargs="?", default=None, help="analysis plan (default: shipped)")
    ap.add_argument("--out", default=None, help="output folder (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="also write the timings to this JSON file")
    args = ap.parse_args()

    load0 = os.getloadavg()[0]
    w0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
    from instrument.pipeline import validate   # what `instrument validate` imports first
    import_wall, import_cpu = time.perf_counter() - w0, time.process_time() - c0

    probe0 = speed_probe()
    w0, c0 = time.perf_counter() - import_wall, time.process_time() - import_cpu
    marks: dict[str, tuple[float, float]] = {}   # children CPU when each stage started
    children: dict[str, tuple[float, float]] = {}

    with DescendantCPU() as desc, tempfile.TemporaryDirectory(prefix="validate-timing-") as tmp:
        def progress(line: str) -> None:
            # "[ i/15] name  running ..." / "... done in" / "stands aside" / "FAILED"
            if not line.startswith("["):
                return
            name = line.split("]", 1)[1].split()[0]
            if " running ..." in line:
                desc._sample()
                marks[name] = (_children_cpu(), desc.seconds())
            elif name in marks:
                desc._sample()
                k, d = marks.pop(name)
                children[name] = (_children_cpu() - k, desc.seconds() - d)

        run = validate(args.plan, args.out or tmp, progress=progress)
        wall, cpu, kids = (time.perf_counter() - w0, time.process_time() - c0,
                           _children_cpu() - k0)
        pdfs = run.results.get("reports", {}).get("pdf_files")
    sampled = desc.seconds()
    load1 = os.getloadavg()[0]
    probe1 = speed_probe()

    rows = [{"stage": s.name, "status": s.status, "wall": s.seconds, "cpu": s.cpu_seconds,
             "children_cpu": children.get(s.name, (0.0, 0.0))[0],
             "descendants_cpu": children.get(s.name, (0.0, 0.0))[1]} for s in run.stages]
    print(f"{'stage':<15}{'status':<9}{'wall s':>8}{'CPU s':>8}{'children':>10}{'sampled':>9}")
    for r in rows:
        print(f"{r['stage']:<15}{r['status']:<9}{r['wall']:8.2f}{r['cpu']:8.2f}"
              f"{r['children_cpu']:10.2f}{r['descendants_cpu']:9.2f}")
    print(f"{'import':<15}{'':<9}{import_wall:8.2f}{import_cpu:8.2f}")
    print(f"{'total':<15}{'':<9}{wall:8.2f}{cpu:8.2f}{kids:10.2f}{sampled:9.2f}")
    print(f"CPU of this process and its children: {cpu + kids:.2f} s (getrusage), "
          f"{cpu + sampled:.2f} s (with the sampled descendants); PDFs made: {pdfs}")
    print(f"load average (1 min) before {load0:.2f}, after {load1:.2f}; {os.cpu_count()} cores; "
          f"speed probe before {probe0:.3f} s, after {probe1:.3f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"stages": rows, "import": {"wall": import_wall, "cpu": import_cpu},
                       "total": {"wall": wall, "cpu": cpu, "children_cpu": kids,
                                 "descendants_cpu": sampled},
                       "load": [load0, load1], "speed_probe": [probe0, probe1],
                       "pdf_files": pdfs}, fh, indent=1)


if __name__ == "__main__":
    main()
