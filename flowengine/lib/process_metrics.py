"""Process and Python runtime metrics under the names every Prometheus client library uses.

``process_*`` (memory, CPU seconds, open and maximum file descriptors, start time) and
``python_gc_*`` / ``python_info``, named, typed and labelled as the official Python client
(prometheus_client) exposes them, so existing dashboards and alerts work unchanged.

Memory and the start time come from ``/proc`` (Linux). Where there is no ``/proc`` those
metrics are left out rather than guessed; CPU time (:func:`os.times`), the descriptor limit
(:mod:`resource`) and, where ``/dev/fd`` lists them, open descriptors are portable. Values are
read when ``/metrics`` is scraped, never on a hot path. A read that fails at scrape time (say
no descriptor is left to open ``/proc/self/stat``) shows NaN instead of failing the scrape.
"""

from __future__ import annotations

import gc
import math
import os
import platform
from collections.abc import Callable, Mapping

from .metrics import Registry

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

__all__ = ["register_process_metrics"]

# Fields of /proc/self/stat, counted as proc(5) does (1-based), after the "(comm)" field.
_STAT_STARTTIME = 22
_STAT_VSIZE = 23
_STAT_RSS = 24


def _stat_fields(proc: str) -> list[str]:
    with open(os.path.join(proc, "self", "stat"), "rb") as file:
        text = file.read().decode("ascii", "replace")
    # The command name may contain spaces and parentheses: the fields start after the last ")".
    # Field 3 (state) is then the first one, so field n sits at index n - 3.
    return text[text.rindex(")") + 2 :].split()


def _stat_field(proc: str, number: int) -> int:
    return int(_stat_fields(proc)[number - 3])


def _boot_time(proc: str) -> float:
    with open(os.path.join(proc, "stat"), "rb") as file:
        for line in file:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("no btime line in /proc/stat")


def _or_nan(read: Callable[[], float]) -> Callable[[], float]:
    def guarded() -> float:
        try:
            return read()
        except (OSError, ValueError, IndexError):
            return math.nan

    return guarded


def _fd_directory(proc: str) -> str | None:
    for candidate in (os.path.join(proc, "self", "fd"), "/dev/fd"):
        try:
            os.listdir(candidate)
        except OSError:
            continue
        return candidate
    return None


def register_process_metrics(registry: Registry, proc: str = "/proc") -> None:
    """Add the ``process_*`` and ``python_*`` metrics to ``registry``; ``proc`` is where the
    proc filesystem is mounted (a test points it elsewhere to see the fallback)."""
    _register_process(registry, proc)
    _register_python(registry)


def _register_process(registry: Registry, proc: str) -> None:
    try:
        _stat_fields(proc)
        ticks = os.sysconf("SC_CLK_TCK")
        page = os.sysconf("SC_PAGESIZE")
        start = _boot_time(proc) + _stat_field(proc, _STAT_STARTTIME) / ticks
    except (OSError, ValueError, IndexError, AttributeError):
        pass  # no /proc: memory and start time are unknown here, so they are not exposed
    else:
        registry.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            callback=_or_nan(lambda: _stat_field(proc, _STAT_VSIZE)),
        )
        registry.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            callback=_or_nan(lambda: _stat_field(proc, _STAT_RSS) * page),
        )
        registry.gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            callback=lambda: start,
        )
    registry.counter(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        callback=lambda: sum(os.times()[:2]),
    )
    fd_directory = _fd_directory(proc)
    if fd_directory is not None:
        registry.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            callback=_or_nan(lambda: len(os.listdir(fd_directory))),
        )
    if resource is not None:
        registry.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            callback=lambda: resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        )


def _gc_stat(key: str) -> Callable[[], Mapping[str | tuple[str, ...], float]]:
    def read() -> Mapping[str | tuple[str, ...], float]:
        return {str(generation): stats[key] for generation, stats in enumerate(gc.get_stats())}

    return read


def _register_python(registry: Registry) -> None:
    registry.counter(
        "python_gc_objects_collected_total",
        "Objects collected during gc",
        ("generation",),
        callback=_gc_stat("collected"),
    )
    registry.counter(
        "python_gc_objects_uncollectable_total",
        "Uncollectable objects found during GC",
        ("generation",),
        callback=_gc_stat("uncollectable"),
    )
    registry.counter(
        "python_gc_collections_total",
        "Number of times this generation was collected",
        ("generation",),
        callback=_gc_stat("collections"),
    )
    major, minor, patchlevel = platform.python_version_tuple()
    info = (platform.python_implementation(), major, minor, patchlevel, platform.python_version())
    registry.gauge(
        "python_info",
        "Python platform information",
        ("implementation", "major", "minor", "patchlevel", "version"),
        callback=lambda: {info: 1},
    )
