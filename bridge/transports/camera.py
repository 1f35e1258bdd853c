"""``camera:N`` source: a webcam or capture card through OpenCV's ``VideoCapture``.

A camera is live: the engine hands its frames to the stages latest-frame-wins. A camera
that cannot be opened (unplugged, busy in another app) or stops delivering frames makes
:meth:`CameraSource.read` raise :class:`~bridge.errors.SourceLost`; the engine reports
it, closes the camera and opens it again with back-off until it is back.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import cv2
import numpy as np

from bridge.errors import ConfigError, SourceLost
from bridge.frames import Frame
from bridge.transports.base import Source

log = logging.getLogger("bridge.transports.camera")


class CameraSource(Source):
    """Frames of camera ``device`` as (H, W, 3) uint8 RGB (OpenCV delivers BGR; converted here).

    Args:
        device: camera index (0 = the first camera) or a device path / URL OpenCV opens
            (``/dev/video2``).
        width, height: requested capture size in pixels (the driver may pick another).
        fps: requested frames per second (the driver may ignore it).
        max_failures: failed grabs in a row before the camera counts as lost; drivers
            (Media Foundation on Windows) fail a few grabs while a camera warms up.

    ``read`` raises :class:`~bridge.errors.SourceLost` when the camera cannot be opened or
    stops delivering; ``open`` itself never fails for a missing camera, so a daemon started
    before the camera is plugged in waits for it.
    """

    live = True

    def __init__(self, device: int | str = 0, width: int | None = None, height: int | None = None,
                 fps: float | None = None, max_failures: int = 5) -> None:
        self.device = device
        self.width, self.height, self.requested_fps = width, height, fps
        self.max_failures = max_failures
        self.fps = fps
        self._cap: Any = None
        self._index = 0
        self._t0 = time.perf_counter()

    @classmethod
    def from_uri(cls, target: str, **options: Any) -> CameraSource:
        """``camera:N`` (index), ``camera:/dev/videoN`` (a device path) or ``camera:rtsp://...``
        (a stream URL OpenCV opens); ``camera:`` alone is camera 0.

        Only the form is checked here: a camera that is well named but absent at start is
        waited for (``read`` raises :class:`~bridge.errors.SourceLost`, the engine retries).

        Raises:
            ConfigError: a negative index, or a target that is neither an index, nor an
                absolute device path, nor a URL (``camera:abc``).
        """
        target = target.strip()
        if re.fullmatch(r"-?[0-9]+", target):  # ASCII digits only ("²".isdigit() is True)
            index = int(target)
            if index < 0:
                raise ConfigError(f"camera index must be 0 or more, not {index}: camera:0 is the first camera")
            return cls(index)
        if not target:
            return cls(0)
        if not _is_device_path(target):
            raise ConfigError(f"camera:{target}: {target!r} is neither a camera index (camera:0 is the first camera) "
                              f"nor a device path (camera:/dev/video2) or stream URL (camera:rtsp://host/stream)")
        return cls(target)

    def _label(self) -> str:
        return f"camera {self.device}"

    def open(self) -> None:
        """Open the camera; a camera that is not there is reported by ``read``, not here."""
        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            log.debug("%s: cannot open (unplugged, or in use by another app?)", self._label())
            return
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(self.width))
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(self.height))
        if self.requested_fps:
            cap.set(cv2.CAP_PROP_FPS, float(self.requested_fps))
        reported = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(reported) if reported and reported > 0 else self.requested_fps
        self._cap = cap

    def read(self) -> Frame:
        """The newest camera frame, (H, W, 3) uint8 RGB; ``pts`` is seconds since the source was made.

        Raises:
            SourceLost: the camera is not open, or ``max_failures`` grabs in a row failed.
        """
        if self._cap is None:
            raise SourceLost(f"{self._label()} is not available; plug it in or close the app using it")
        for _ in range(self.max_failures):
            ok, image = self._cap.read()
            if ok and image is not None:
                now = time.perf_counter()
                frame = Frame(_to_rgb(image), self._index, now, now - self._t0)
                self._index += 1
                return frame
            time.sleep(0.01)
        raise SourceLost(f"{self._label()} stopped delivering frames (unplugged?)")

    def close(self) -> None:
        if self._cap is not None:
            cap, self._cap = self._cap, None
            cap.release()


def _is_device_path(target: str) -> bool:
    """An absolute path (``/dev/video2``, ``C:\\...``, ``\\\\.\\...``) or a URL (``rtsp://host/x``)."""
    return (target.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", target))
            or bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", target)))


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or grey, or BGRA) capture -> a new (H, W, 3) uint8 RGB array."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
