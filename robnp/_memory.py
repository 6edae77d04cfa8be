"""Memory checks every layer can make before it allocates: the machine's available
memory, a peak estimate by part (:class:`MemoryEstimate`), and :func:`check_fits`,
which refuses an estimate that cannot fit with one line naming the size responsible,
the estimate and the memory available.

The estimates themselves are written next to the allocations they mirror (the MLP's
initialisation in :mod:`robnp.model`, data generation in :mod:`robnp.data`, an
evaluation in :mod:`robnp.attacks._threat`, training in :mod:`robnp.training.fit`,
verification in :mod:`robnp.verify.bab`); :mod:`robnp.limits` composes the study's.
They count the arrays robnp allocates, not the interpreter, NumPy and Numba (about
160 MB resident per process), so they refuse only what cannot fit.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .errors import ConfigError

__all__ = ["MAX_SIZE", "check_size", "MemoryEstimate", "available_memory", "format_bytes",
           "check_fits"]


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of one piece of work, by part.

    Attributes
    ----------
    parts : tuple of (str, str, float)
        ``(what, the sizes it grows with, bytes)`` for each part.
    """

    parts: tuple[tuple[str, str, float], ...]

    @property
    def total(self) -> float:
        return float(sum(part[2] for part in self.parts))

    @property
    def largest(self) -> tuple[str, str, float]:
        return max(self.parts, key=lambda part: part[2])


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``'7.6 GiB'``; astronomically large values in
    powers of ten (``'3.2e+22 B'``)."""
    if not math.isfinite(n) or n >= 1024 ** 7:
        return f"{n:.1e} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _cgroup_headroom() -> float | None:
    """Bytes left under this process's cgroup v2 memory limit, if it has one."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            base = os.path.join("/sys/fs/cgroup", line[3:].lstrip("/"))
            try:
                with open(os.path.join(base, "memory.max"), encoding="ascii") as handle:
                    limit = handle.read().strip()
                with open(os.path.join(base, "memory.current"), encoding="ascii") as handle:
                    current = int(handle.read().strip())
            except (OSError, ValueError):
                return None
            if limit == "max":
                return None
            try:
                return max(0.0, float(int(limit) - current))
            except ValueError:
                return None
    return None


def available_memory() -> float | None:
    """Bytes of memory available to new allocations, or None if unknown.

    ``MemAvailable`` from ``/proc/meminfo`` (what Linux can hand out without
    swapping), else free physical pages from ``os.sysconf``; the smaller of that
    and what a cgroup memory limit leaves.
    """
    found = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found = float(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        found = None
    if found is None:
        try:
            found = float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            found = None
    headroom = _cgroup_headroom()
    if headroom is not None:
        found = headroom if found is None else min(found, headroom)
    return found


#: Largest count any size may take: beyond it a float no longer holds every integer
#: and NumPy's index arithmetic is near overflow; no machine has memory for it anyway.
MAX_SIZE = 2 ** 53


def check_size(name: str, value) -> int:
    """``value`` as an int if it is at most :data:`MAX_SIZE`; a ConfigError otherwise."""
    if value > MAX_SIZE:
        raise ConfigError(f"{name} must be at most 2**53 = {MAX_SIZE}, got {value}")
    return int(value)


#: Estimates up to this many bytes are not checked unless the memory available is
#: given: reading it costs about 40 microseconds, a fifth of a small MLP's or data
#: set's construction, and every machine that runs robnp has this much.
SMALL = 64 * 1024 ** 2


def check_fits(estimate: MemoryEstimate, what: str, available: float | None = None,
               where: str = "this machine") -> None:
    """Raise :class:`~robnp.errors.ConfigError` if ``estimate`` exceeds the memory
    available on ``where`` (:func:`available_memory` unless given); nothing if that is
    unknown, or if the estimate is at most :data:`SMALL` and the memory available was
    not given.

    The message names ``what`` is being refused, its largest part and the sizes it
    grows with, the estimate, and the memory available.
    """
    if available is None:
        if estimate.total <= SMALL:
            return
        available = available_memory()
    if available is None or estimate.total <= available:
        return
    part, sizes, _ = estimate.largest
    raise ConfigError(
        f"{what} needs about {format_bytes(estimate.total)} of memory, mostly {part} "
        f"({sizes}), but {where} has {format_bytes(available)} available; "
        f"reduce those sizes")
