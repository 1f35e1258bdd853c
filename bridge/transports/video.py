"""``video:PATH`` source: every frame of a video file, in order, decoded with PyAV.

A file source is not live: the engine reads it with back-pressure, so every frame is
processed and none is dropped. When the file has an audio track, ``audio_path`` is
set so a ``movie:`` sink carries the audio over.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bridge.errors import TransportError
from bridge.frames import Frame
from bridge.transports.base import Source


class VideoFileSource(Source):
    """Frames of a video file as (H, W, 3) uint8 RGB.

    Args:
        path: the video file (any container/codec FFmpeg reads).

    Raises:
        TransportError: at ``open``: the file is missing, unreadable or has no video.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._container: Any = None
        self._frames: Any = None
        self._index = 0
        self._offset = 0.0  # pts offset added on each loop, seconds
        self._last_pts = 0.0

    @classmethod
    def from_uri(cls, target: str, **options: Any) -> VideoFileSource:
        """``video:PATH``."""
        if not target:
            raise TransportError("video source needs a file: video:PATH")
        return cls(target)

    def open(self) -> None:
        import av

        if not self.path.is_file():
            raise TransportError(f"video source: no file {str(self.path)!r}; check the path (video:PATH)")
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise TransportError(f"video source: cannot read {str(self.path)!r} ({exc}); is it a video file?") from None
        if not self._container.streams.video:
            self._container.close()
            raise TransportError(f"video source: {str(self.path)!r} has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.audio_path = str(self.path) if self._container.streams.audio else None
        self._frames = self._container.decode(stream)

    def read(self) -> Frame | None:
        import av

        try:
            vf = next(self._frames)
        except StopIteration:
            return None
        except av.FFmpegError:  # a corrupt tail: end the file here, keep what was read
            return None
        pts = (vf.time or 0.0) + self._offset
        self._last_pts = pts
        frame = Frame(vf.to_ndarray(format="rgb24"), self._index, time.perf_counter(), pts)
        self._index += 1
        return frame

    def rewind(self) -> bool:
        frame_time = 1.0 / self.fps if self.fps else 0.0
        self.close()
        self.open()
        self._offset = self._last_pts + frame_time
        return True

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
