"""``images:DIR`` source (sorted stills) and sink (one RGBA PNG per frame).

The sink names each file by the source frame index, ``frame_000012.png``, so a file
rendered twice, or with dropped frames, lines up with its source. PNG alpha is
straight by the PNG spec; a premultiplied stream is written as it comes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bridge.errors import TransportError
from bridge.frames import Frame
from bridge.transports.base import Sink, Source, StreamInfo

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class ImageDirSource(Source):
    """Stills from a folder, in sorted file-name order, as (H, W, 3) uint8 RGB frames.

    Args:
        path: the folder. ``fps``: nominal rate for sinks (default 30).

    Raises:
        TransportError: at ``open``, when the folder is missing or has no images.
    """

    def __init__(self, path: str | Path, fps: float = 30.0) -> None:
        self.path = Path(path)
        self.fps = fps
        self._files: list[Path] = []
        self._pos = 0
        self._index = 0

    @classmethod
    def from_uri(cls, target: str, fps: float | None = None, **options: Any) -> ImageDirSource:
        """``images:DIR``."""
        return cls(target, fps or 30.0)

    def open(self) -> None:
        if not self.path.is_dir():
            raise TransportError(f"images source: no folder {str(self.path)!r}; give an existing folder of stills (images:DIR)")
        self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise TransportError(f"images source: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {str(self.path)!r}")
        self._pos = 0

    def read(self) -> Frame | None:
        while self._pos < len(self._files):
            path = self._files[self._pos]
            self._pos += 1
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:  # unreadable file: skip it, keep the stream going
                continue
            frame = Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self._index, time.perf_counter(), self._index / self.fps)
            self._index += 1
            return frame
        return None

    def rewind(self) -> bool:
        self._pos = 0
        return bool(self._files)


class ImageDirSink(Sink):
    """Writes each RGBA frame as ``DIR/frame_NNNNNN.png`` (N = source frame index).

    Raises:
        TransportError: at ``open``, when the folder cannot be created.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.written = 0
        self._bgra: np.ndarray | None = None

    @classmethod
    def from_uri(cls, target: str, **options: Any) -> ImageDirSink:
        """``images:DIR`` (created if missing)."""
        if not target:
            raise TransportError("images sink needs a folder: images:DIR")
        return cls(target)

    def open(self, info: StreamInfo) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportError(f"images sink: cannot create {str(self.path)!r} ({exc.strerror}); choose a writable folder") from None

    def write(self, frame: Frame) -> None:
        image = frame.image
        if self._bgra is None or self._bgra.shape != image.shape:
            self._bgra = np.empty_like(image)
        cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA, dst=self._bgra)
        target = self.path / f"frame_{frame.index:06d}.png"
        if not cv2.imwrite(str(target), self._bgra):
            raise TransportError(f"images sink: could not write {str(target)!r}; check free space and permissions")
        self.written += 1
