"""CPU time and memory of a whole process tree, from /proc (n8n runs child processes)."""

from __future__ import annotations

import os

__all__ = ["tree_pids", "tree_cpu_seconds", "tree_rss_kib"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as handle:
        # The command name may hold spaces; the fields after the closing parenthesis do not.
        return handle.read().rpartition(")")[2].split()


def tree_pids(root: int) -> list[int]:
    """``root`` and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(_stat_fields(int(entry))[1])
        except (OSError, IndexError, ValueError):  # exited while we looked
            continue
        children.setdefault(parent, []).append(int(entry))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, ()))
    return found


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of the tree so far. A process's own time plus its waited-for dead
    children's (cutime, cstime): live children are counted once, as themselves."""
    total = 0
    for pid in tree_pids(root):
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])
    return total / _CLOCK_TICKS


def tree_rss_kib(root: int) -> int:
    """VmRSS summed over the tree (pages shared between the processes count once per process,
    as ``ps`` would show them: an upper bound for a multi-process server)."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total
