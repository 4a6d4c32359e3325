"""The last lines the daemon logged, kept in memory for the console `log`."""

from __future__ import annotations

import logging
from collections import deque


class RecentLog(logging.Handler):
    _instance: "RecentLog | None" = None

    def __init__(self, size: int = 200):
        super().__init__(logging.DEBUG)
        self.lines: deque[str] = deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # never let logging break the daemon
            pass

    @classmethod
    def install(cls) -> "RecentLog":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    @classmethod
    def text(cls, count: int = 50) -> str:
        if cls._instance is None:
            return ""
        return "\n".join(list(cls._instance.lines)[-count:])
