"""A background loop: each sandbox worker runs one step at once, then every few seconds."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Loop:
    """Runs `step` now, then `interval` seconds after each step ends, until `stop()`.

    `interval` is a number or a function that gives one (for jittered pacing).

    A step that raises is logged and the loop goes on: one bad tick must not end the demo.
    """

    def __init__(
        self,
        name: str,
        interval: float | Callable[[], float],
        step: Callable[[], object],
        *,
        log: logging.Logger,
    ) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._log = log
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the loop is being stopped."""
        return self._stopping.wait(seconds)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception:
                self._log.exception("%s: a step failed; the loop goes on", self.name)
            pause = self.interval() if callable(self.interval) else self.interval
            if self._stopping.wait(pause):
                break
