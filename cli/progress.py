"""Progress on stderr: on a terminal one bar redrawn in place below the log lines;
elsewhere nothing but log lines. ``robnp sweep`` shows its tasks; ``robnp attack``
and ``robnp verify`` show their work once it has run longer than
:data:`DELAY_SECONDS`, so a short run prints exactly what it printed before."""

from __future__ import annotations

import sys
import time

import click

#: A computation shorter than this shows no progress at all.
DELAY_SECONDS = 3.0
#: Without a terminal, a long computation logs a line at most this often.
LOG_SECONDS = 30.0
_BAR_WIDTH = 30


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m07s``, ``5h02m`` (hours from 100 minutes on)."""
    seconds = int(round(seconds))
    if seconds >= 6000:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def is_terminal() -> bool:
    return sys.stderr.isatty()


class Status:
    """One progress line (see the module docstring); ``log`` writes a line above it."""

    def __init__(self, total: int, unit: str = "tasks"):
        self.total = total
        self.unit = unit
        self.tty = is_terminal()
        self.shown = False

    def log(self, line: str) -> None:
        click.echo(f"\r\033[K{line}" if self.shown else line, err=True)
        self.shown = False

    def draw(self, fraction: float, count: str, eta: float | None) -> None:
        """Redraw the bar: ``fraction`` done, ``count`` after it, then the ETA."""
        if not self.tty:
            return
        filled = int(_BAR_WIDTH * min(max(fraction, 0.0), 1.0))
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        eta_text = f"  ETA {format_seconds(eta)}" if eta is not None and fraction < 1 else ""
        click.echo(f"\r\033[K{self.unit} [{bar}] {count}{eta_text}", err=True, nl=False)
        self.shown = True

    def update(self, done: int, eta: float | None) -> None:
        """Redraw the bar at ``done`` of ``total``; ``eta`` is None until known."""
        self.draw(done / max(self.total, 1), f"{done}/{self.total}", eta)

    def close(self) -> None:
        if self.shown:
            click.echo("", err=True)
            self.shown = False


class DelayedProgress:
    """A ``progress(done, total)`` callback for the library (``robnp.evaluate``,
    ``robnp.verify.verify_radii``): silent for the first :data:`DELAY_SECONDS`, then
    a bar on a terminal, or elsewhere a log line at most every :data:`LOG_SECONDS`.
    The ETA is the time so far per unit of work done times the work left."""

    def __init__(self, label: str, clock=time.monotonic):
        self.label = label
        self._clock = clock
        self._start = clock()
        self._status = Status(0, unit=label)
        self._logged = None

    def __call__(self, done: float, total: float) -> None:
        now = self._clock()
        elapsed = now - self._start
        if elapsed < DELAY_SECONDS or total <= 0:
            return
        fraction = done / total
        eta = elapsed * (total - done) / done if done > 0 else None
        if self._status.tty:
            self._status.draw(fraction, f"{fraction:4.0%}", eta)
        elif self._logged is None or now - self._logged >= LOG_SECONDS:
            self._logged = now
            eta_text = f", ETA {format_seconds(eta)}" if eta is not None and done < total else ""
            click.echo(f"{self.label}: {fraction:.0%} done after {format_seconds(elapsed)}"
                       f"{eta_text}", err=True)

    def close(self) -> None:
        self._status.close()
