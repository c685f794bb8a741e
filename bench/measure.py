"""Timing helpers: child processes with their own peak RSS, medians, side-by-side rounds."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class Run:
    """One child process: wall seconds, peak resident memory (MiB), its stdout and the CPU
    seconds it used itself (user + system, from ``wait4``: on a loaded machine they move far
    less than wall time)."""

    seconds: float
    peak_rss_mib: float
    stdout: str = ""
    cpu_seconds: float = 0.0


@dataclass
class Samples:
    """Repeated measurements of one thing; the median is what the table shows."""

    name: str
    seconds: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median seconds."""
        return statistics.median(self.seconds)

    @property
    def peak_rss(self) -> float | None:
        """Largest peak RSS seen over the runs, in MiB (None for in-process timings)."""
        return max(self.peak_rss_mib) if self.peak_rss_mib else None

    def add(self, run: Run) -> None:
        """Record one child-process run."""
        self.seconds.append(run.seconds)
        self.peak_rss_mib.append(run.peak_rss_mib)
        self.cpu_seconds.append(run.cpu_seconds)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "median_s": self.median,
            "runs_s": self.seconds,
            "peak_rss_mib": self.peak_rss,
            "cpu_runs_s": self.cpu_seconds,
        }


def run_process(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    stdin: str | None = None,
    cwd: str | None = None,
) -> Run:
    """Run ``argv`` to completion; its own peak RSS comes from ``wait4`` (not the children's max)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if stdin is not None:
        assert process.stdin is not None
        process.stdin.write(stdin)
        process.stdin.close()
    assert process.stdout is not None and process.stderr is not None
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({process.returncode}): {stderr.strip()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds=elapsed, peak_rss_mib=usage.ru_maxrss / 1024, stdout=stdout, cpu_seconds=cpu)


def side_by_side(
    contenders: Mapping[str, Callable[[], Run | float]], rounds: int, warmup: int = 1
) -> dict[str, Samples]:
    """Measure each contender ``rounds`` times, interleaved, so noise hits them all alike.

    A contender returns a :class:`Run` (child process) or elapsed seconds (in-process).
    """
    samples = {name: Samples(name) for name in contenders}
    for _ in range(warmup):
        for call in contenders.values():
            call()
    for _ in range(rounds):
        for name, call in contenders.items():
            result = call()
            if isinstance(result, Run):
                samples[name].add(result)
            else:
                samples[name].seconds.append(result)
    return samples


def timed(call: Callable[[], object]) -> float:
    """Seconds one in-process call takes."""
    started = time.perf_counter()
    call()
    return time.perf_counter() - started
