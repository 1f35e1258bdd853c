"""``null:`` sink: discards frames (benchmarks, dry runs)."""

from __future__ import annotations

from typing import Any

from bridge.frames import Frame
from bridge.transports.base import Sink


class NullSink(Sink):
    """Counts and discards RGBA frames. ``frames`` is the number written."""

    def __init__(self) -> None:
        self.frames = 0

    @classmethod
    def from_uri(cls, target: str, **options: Any) -> NullSink:
        """``null:`` (the target is ignored)."""
        return cls()

    def write(self, frame: Frame) -> None:
        self.frames += 1
