"""``spout:NAME`` source (a Spout receiver) and sink (a Spout sender), on SpoutGL (Windows).

Spout shares GPU textures between Windows apps (TouchDesigner's Spout Out / Spout In
TOPs). The Python binding, PyPI ``SpoutGL``, copies each frame through CPU memory
(``sendImage`` / ``receiveImage``, 8-bit only). Facts this module follows (platform.md):

* Spout needs a current OpenGL context: ``createOpenGL()`` is called once on the thread
  that then makes every Spout call; ``closeOpenGL()`` on release. The engine calls all
  methods of a source on its source thread and of a sink on its sink thread, and every
  method here checks that it runs on the thread that opened it.
* SpoutGL's methods take positional arguments only (pybind11 without names).
* Receiver: ``setReceiverName(name)``; ``receiveImage(None, glFormat, False, 0)`` until a
  sender connects; when ``isUpdated()`` allocate ``getSenderHeight() x getSenderWidth() x 4``
  uint8 and receive again. ``getSenderFormat()`` is a DXGI format: 28 (RGBA8,
  TouchDesigner) is read as ``GL_RGBA``, 87 (BGRA8, most other senders) as ``GL_BGRA_EXT``
  and swapped to RGB here, or R and B come out swapped on some drivers.
  ``getSenderName`` is bound to the wrong C++ function (it returns the width): never used.
* Sender: ``setSenderName(name)``, ``sendImage(buffer, width, height, GL_RGBA, False, 0)``
  with a C-contiguous RGBA buffer, ``setFrameSync(name)`` so receivers that wait on frame
  sync wake up, ``releaseSender()``.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from typing import Any

import cv2
import numpy as np

from bridge.errors import ConfigError, SourceLost, TransportError
from bridge.frames import Frame
from bridge.transports.base import Sink, Source, StreamInfo

log = logging.getLogger("bridge.transports.spout")

#: DXGI_FORMAT values a sender reports through getSenderFormat() (Microsoft's DXGI_FORMAT enum).
DXGI_R8G8B8A8_UNORM = 28  # TouchDesigner's Spout Out TOP
DXGI_R8G8B8A8_UNORM_SRGB = 29
DXGI_B8G8R8A8_UNORM = 87  # Spout's default; most other senders
DXGI_B8G8R8X8_UNORM = 88
DXGI_B8G8R8A8_UNORM_SRGB = 91
_BGRA_FORMATS = {DXGI_B8G8R8A8_UNORM, DXGI_B8G8R8X8_UNORM, DXGI_B8G8R8A8_UNORM_SRGB}
_RGBA_FORMATS = {DXGI_R8G8B8A8_UNORM, DXGI_R8G8B8A8_UNORM_SRGB}

_INSTALL_HINT = "spout: needs Windows and SpoutGL: pip install SpoutGL"


def load_spoutgl() -> Any:
    """Import SpoutGL.

    Raises:
        TransportError: SpoutGL is not installed (it has Windows wheels only).
    """
    try:
        return importlib.import_module("SpoutGL")
    except ImportError:
        raise TransportError(_INSTALL_HINT) from None


def _sender_name(target: str, kind: str) -> str:
    name = target.strip()
    if not name:
        raise ConfigError(f"spout {kind} needs a sender name: spout:NAME (TouchDesigner: the Spout Out TOP's Sender Name)")
    return name


class _OwnedByOneThread:
    """Remembers the thread that opened a Spout object and refuses calls from any other."""

    _owner: int | None = None
    _owner_name = ""

    def _claim(self) -> None:
        if self._owner is None:
            self._owner, self._owner_name = threading.get_ident(), threading.current_thread().name
        else:
            self._check()

    def _check(self) -> None:
        if self._owner is not None and threading.get_ident() != self._owner:
            raise RuntimeError(f"spout: called from thread {threading.current_thread().name!r}, but its OpenGL "
                               f"context belongs to thread {self._owner_name!r}; make every Spout call on one thread")


class SpoutSource(_OwnedByOneThread, Source):
    """Frames from the Spout sender ``name`` as (H, W, 3) uint8 RGB (alpha is dropped).

    Args:
        name: the sender's name (TouchDesigner: the Spout Out TOP's Sender Name).
        spoutgl: the SpoutGL module (tests pass a fake); imported when None.
        connect_timeout_s: how long ``read`` waits for the sender to appear before
            raising SourceLost (the engine then retries with back-off).
        stall_s: a connected sender that sends no new frame for this long counts as lost,
            so a frozen sender is reported and the engine can always stop.
        poll_s: sleep between checks while no new frame is there (no busy loop).

    Raises:
        TransportError: SpoutGL is missing (at construction).
    """

    live = True

    def __init__(self, name: str, spoutgl: Any = None, connect_timeout_s: float = 1.0,
                 stall_s: float = 2.0, poll_s: float = 0.002) -> None:
        self.name = name
        self._gl = spoutgl if spoutgl is not None else load_spoutgl()
        self.connect_timeout_s, self.stall_s, self.poll_s = connect_timeout_s, stall_s, poll_s
        self._rx: Any = None
        self._buffer: np.ndarray | None = None
        self._gl_format = 0
        self._bgra = False
        self._connected = False
        self._index = 0
        self._t0 = time.perf_counter()
        self._warned_format: int | None = None

    @classmethod
    def from_uri(cls, target: str, **options: Any) -> SpoutSource:
        """``spout:NAME``. Raises ConfigError (no name) or TransportError (no SpoutGL)."""
        return cls(_sender_name(target, "source"))

    def open(self) -> None:
        """Create the receiver and its OpenGL context on the calling (source) thread."""
        self._claim()
        rx = self._gl.SpoutReceiver()
        if not rx.createOpenGL():
            raise TransportError("spout: could not create an OpenGL context; update the GPU driver")
        rx.setReceiverName(self.name)
        self._rx = rx
        self._buffer = None  # receiveImage(None, ...) until a sender connects
        self._gl_format, self._bgra = self._gl.enums.GL_RGBA, False
        self._connected = False

    def _select_format(self, dxgi: int) -> None:
        enums = self._gl.enums
        if dxgi in _BGRA_FORMATS:
            self._gl_format, self._bgra = enums.GL_BGRA_EXT, True
            return
        self._gl_format, self._bgra = enums.GL_RGBA, False
        if dxgi not in _RGBA_FORMATS and self._warned_format != dxgi:
            self._warned_format = dxgi
            log.warning("spout: sender %r uses DXGI format %s, not 8-bit RGBA/BGRA; reading it as RGBA "
                        "(TouchDesigner: set the Spout Out TOP's input to rgba8fixed)", self.name, dxgi)

    def read(self) -> Frame:
        """The sender's next new frame, (H, W, 3) uint8 RGB; waits (sleeping ``poll_s``) for it.

        Raises:
            SourceLost: the sender is not there (after ``connect_timeout_s``), closed, or sent
                nothing new for ``stall_s``.
            RuntimeError: called from another thread than ``open``.
        """
        self._check()
        rx = self._rx
        if rx is None:
            raise SourceLost(f"spout receiver for {self.name!r} is not open")
        started = time.perf_counter()
        while True:
            ok = rx.receiveImage(self._buffer, self._gl_format, False, 0)
            if not ok:
                if self._connected:
                    self._connected = False
                    raise SourceLost(f"spout sender {self.name!r} closed")
                if time.perf_counter() - started > self.connect_timeout_s:
                    raise SourceLost(f"no spout sender named {self.name!r}; start it "
                                     f"(TouchDesigner: a Spout Out TOP with Sender Name {self.name})")
            elif rx.isUpdated():  # connected, or the sender's size/format changed: reallocate
                self._select_format(rx.getSenderFormat())
                self._buffer = np.zeros((rx.getSenderHeight(), rx.getSenderWidth(), 4), np.uint8)
                self._connected = True
                continue
            elif self._buffer is not None and rx.isFrameNew():
                now = time.perf_counter()
                code = cv2.COLOR_BGRA2RGB if self._bgra else cv2.COLOR_RGBA2RGB
                frame = Frame(cv2.cvtColor(self._buffer, code), self._index, now, now - self._t0)
                self._index += 1
                return frame
            elif time.perf_counter() - started > self.stall_s:
                raise SourceLost(f"spout sender {self.name!r} sent no new frame for {self.stall_s:g} s (paused?)")
            time.sleep(self.poll_s)

    def close(self) -> None:
        """Release the receiver and its OpenGL context. Safe to call twice."""
        if self._rx is None:
            return
        self._check()
        rx, self._rx = self._rx, None
        self._connected = False
        try:
            rx.releaseReceiver()
        finally:
            rx.closeOpenGL()


class SpoutSink(_OwnedByOneThread, Sink):
    """Sends RGBA frames ((H, W, 4) uint8) as the Spout sender ``name``.

    Receive it in TouchDesigner with a Spout In TOP set to this sender name. The alpha is
    sent as it comes: use the ``td-over`` preset (premultiplied) for an Over TOP.

    Args:
        name: the sender name other apps see.
        spoutgl: the SpoutGL module (tests pass a fake); imported when None.

    Raises:
        TransportError: SpoutGL is missing (at construction) or no OpenGL context (at open).
    """

    live = True

    def __init__(self, name: str, spoutgl: Any = None) -> None:
        self.name = name
        self._gl = spoutgl if spoutgl is not None else load_spoutgl()
        self._tx: Any = None
        self.frames = 0
        self.failed = 0

    @classmethod
    def from_uri(cls, target: str, **options: Any) -> SpoutSink:
        """``spout:NAME``. Raises ConfigError (no name) or TransportError (no SpoutGL)."""
        return cls(_sender_name(target, "sink"))

    def open(self, info: StreamInfo) -> None:
        """Create the sender and its OpenGL context on the calling (sink) thread."""
        self._claim()
        tx = self._gl.SpoutSender()
        if not tx.createOpenGL():
            raise TransportError("spout: could not create an OpenGL context; update the GPU driver")
        tx.setSenderName(self.name)
        self._tx = tx

    def write(self, frame: Frame) -> None:
        """Send one frame. A failed send is logged and counted (``failed``), not raised:
        the stream goes on with the next frame."""
        self._check()
        image = np.ascontiguousarray(frame.image)  # no copy for the engine's frames
        ok = self._tx.sendImage(image, frame.width, frame.height, self._gl.enums.GL_RGBA, False, 0)
        if ok:
            self._tx.setFrameSync(self.name)
            self.frames += 1
        else:
            self.failed += 1
            if self.failed == 1 or self.failed % 300 == 0:
                log.warning("spout: sending %r failed (%d frames so far); is the GPU driver current?", self.name, self.failed)

    def close(self) -> None:
        """Release the sender and its OpenGL context. Safe to call twice."""
        if self._tx is None:
            return
        self._check()
        tx, self._tx = self._tx, None
        try:
            tx.releaseSender()
        finally:
            tx.closeOpenGL()
