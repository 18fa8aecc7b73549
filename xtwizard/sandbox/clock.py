"""The sandbox clock: real time, optionally sped up, and advanceable from the control API.

Everything in the sandbox that ages (tokens, device codes, replication delay, certificate issuance, the
move service) reads this clock, so tests advance it instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SandboxClock:
    """Epoch seconds that run `scale` times faster than wall time, plus manual jumps."""

    def __init__(self, scale: float = 1.0, start: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._base = time.time() if start is None else start
        self._mono0 = monotonic()
        self._scale = scale

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        with self._lock:
            return self._base + (self._monotonic() - self._mono0) * self._scale

    def advance(self, seconds: float) -> float:
        """Jump forward (never back: tokens and moves must not un-age)."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._base += seconds
        return self.now()

    def set_scale(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError("time scale must be positive")
        with self._lock:
            mono = self._monotonic()
            self._base += (mono - self._mono0) * self._scale
            self._mono0 = mono
            self._scale = scale

    def real_seconds(self, sandbox_seconds: float) -> float:
        """How long a span of sandbox time lasts on the wall clock (what clients see as expires_in)."""
        return sandbox_seconds / self._scale
