"""Source and sink interfaces (GStreamer's source -> filter -> sink, without GStreamer).

The engine calls every method of a source on the source thread and every method of a
sink on the sink thread, ``open`` included, so a transport whose library is bound to
one thread (Spout's OpenGL context) can keep that promise without locks.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.frames import Frame


@dataclass
class StreamInfo:
    """What a sink learns before its first frame.

    Attributes:
        width, height: frame size in pixels (of the RGBA frames the sink gets).
        fps: nominal frame rate (frames per second) of the source, or a default.
        audio_path: a media file whose audio track should go with the video, if any.
        audio_start: seconds into ``audio_path`` where frame 0 starts.
    """

    width: int
    height: int
    fps: float
    audio_path: str | None = None
    audio_start: float = 0.0


class Source:
    """A frame source. ``live`` sources hand off latest-frame-wins; file sources block.

    Subclasses implement ``open``, ``read`` and ``close``; ``fps`` and ``audio_path``
    may be set by ``open``.
    """

    #: True for camera/Spout/NDI: frames arrive in real time and may be dropped.
    live: bool = False
    #: nominal frames per second, when known after ``open``.
    fps: float | None = None
    #: a file whose audio belongs to this video, when there is one (set by ``open``).
    audio_path: str | None = None

    def open(self) -> None:
        """Open the source. Raises :class:`bridge.errors.TransportError` with a fix."""

    def read(self) -> Frame | None:
        """The next frame (``image`` (H, W, 3) uint8 RGB), or None at the end of a file.

        Raises:
            bridge.errors.SourceLost: a live source vanished; the engine closes,
                waits and reopens it.
        """
        raise NotImplementedError

    def rewind(self) -> bool:
        """Start again from the first frame (``--loop``). Returns False if not possible."""
        return False

    def close(self) -> None:
        """Release the source. Safe to call twice."""


class Sink:
    """A frame sink: gets RGBA frames ((H, W, 4) uint8) in output order."""

    #: True for Spout/NDI: the engine may drop frames before a slow live sink.
    live: bool = False
    #: seconds the engine waits for a new frame before calling :meth:`idle` (after ``open``).
    idle_s: float = 0.1

    def open(self, info: StreamInfo) -> None:
        """Prepare for frames of ``info``'s size. Raises TransportError with a fix."""

    def idle(self) -> None:
        """Called on the sink thread when no new frame came for ``idle_s`` seconds.

        Does nothing by default; a live sink may repeat a hold frame here (the NDI sink
        keeps sending its last or a transparent frame while the source is gone).
        """

    def write(self, frame: Frame) -> None:
        """Send or store one RGBA frame (``frame.image`` (H, W, 4) uint8)."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release. Safe to call twice, and without ``open``."""
