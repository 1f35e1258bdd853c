"""A fake of PyPI ``SpoutGL`` 0.1.1 (Windows only) for tests on any OS.

Import it by putting ``tests/fakes`` on ``sys.path``. It has the real binding's class and
method names, argument order and return types (from the pybind11 module
``src/PySpoutGL.cpp`` of jlai/Python-SpoutGL), and it enforces what the real one needs
but cannot check for you:

* Arguments are positional only (pybind11 without ``py::arg``), except the receiver's
  ``waitFrameSync(senderName, timeout=0)`` which does have names.
* OpenGL context: ``createOpenGL()`` makes a context current on the calling thread;
  every other Spout call on an object raises RuntimeError unless that object's context
  was created on the calling thread (the real library crashes or fails silently).
* Buffers: ``sendImage``/``receiveImage`` take any buffer; a non C-contiguous one raises
  BufferError("Buffer must be contiguous"), a too small one BufferError("Buffer not large
  enough"); an unknown GL format raises ValueError (std::invalid_argument).
* Senders and receivers in one process see each other through a shared registry (the
  stand-in for Spout's shared memory sender list). A sender appears on its first
  ``sendImage`` and disappears on ``releaseSender()``.
* Texture formats: a sender's texture is DXGI 87 (BGRA8, Spout's default) unless
  :data:`fake_sender_format` (or ``sender.fake_dxgi_format``) says 28 (RGBA8, what
  TouchDesigner's Spout Out reports). ``sendImage`` converts to the texture's layout as
  OpenGL would. ``receiveImage`` copies the texture's bytes as stored: a receiver that
  asks for GL_RGBA from a BGRA texture (or the reverse) gets R and B swapped, the driver
  quirk platform.md warns about, so a receiver must pick its format from
  ``getSenderFormat()``.
* ``receiveImage`` follows Spout's protocol: on connecting (or when the sender's size or
  format changes) it returns True without copying and raises the updated flag, which
  ``isUpdated()`` reads and clears; later calls copy a frame only when the sender has a
  new one (``isFrameNew()``). With no sender it returns False.
* ``getSenderName`` returns the sender's width, like the real binding's bug.

Names starting with ``fake_`` are test controls, not part of the real API.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from . import enums

__version__ = "0.1.1-fake"

#: DXGI format of new senders' textures: 87 = B8G8R8A8_UNORM (Spout's default), 28 = R8G8B8A8_UNORM (TouchDesigner).
fake_sender_format = 87

_BYTES_PER_PIXEL = {enums.GL_RGBA: 4, enums.GL_BGRA_EXT: 4, enums.GL_RGB: 3, enums.GL_BGR_EXT: 3}
_RED_FIRST = {enums.GL_RGBA, enums.GL_RGB}


class _Texture:
    """A sender's shared texture: (H, W, 4) uint8 in the byte order of its DXGI format."""

    def __init__(self, width: int, height: int, dxgi_format: int) -> None:
        self.width, self.height, self.format = width, height, dxgi_format
        self.pixels = np.zeros((height, width, 4), np.uint8)
        self.frame = 0
        self.sync = threading.Event()

    @property
    def red_first(self) -> bool:
        return self.format == 28


_lock = threading.Lock()
_senders: dict[str, _Texture] = {}
_sync_events: dict[str, threading.Event] = {}


def fake_reset() -> None:
    """Forget every sender (between tests)."""
    with _lock:
        _senders.clear()
        _sync_events.clear()


def fake_sender_names() -> list[str]:
    """Names of the senders that exist now."""
    with _lock:
        return sorted(_senders)


def _check_buffer(buffer: Any, needed: int) -> memoryview:
    view = memoryview(buffer)
    if not view.c_contiguous:
        raise BufferError("Buffer must be contiguous")
    if view.nbytes < needed:
        raise BufferError("Buffer not large enough")
    return view


def _bytes_per_pixel(gl_format: int) -> int:
    try:
        return _BYTES_PER_PIXEL[gl_format]
    except KeyError:
        raise ValueError("Unknown GL format") from None


class _GLObject:
    """The OpenGL-context rule shared by senders and receivers."""

    def __init__(self) -> None:
        self._gl_thread: int | None = None

    def _need_gl(self) -> None:
        if self._gl_thread != threading.get_ident():
            raise RuntimeError("fake SpoutGL: no OpenGL context of this object on this thread; "
                               "call createOpenGL() first, on the thread that makes every Spout call")

    def createOpenGL(self, /) -> bool:
        if self._gl_thread is not None and self._gl_thread != threading.get_ident():
            raise RuntimeError("fake SpoutGL: createOpenGL() on a second thread for one object")
        self._gl_thread = threading.get_ident()
        return True

    def closeOpenGL(self, /) -> bool:
        self._need_gl()
        self._gl_thread = None
        return True

    def isGLDXReady(self, /) -> bool:
        self._need_gl()
        return True

    def getCPUshare(self, /) -> bool:
        self._need_gl()
        return False

    def setCPUshare(self, cpu: bool, /) -> None:
        self._need_gl()

    def getAutoShare(self, /) -> bool:
        self._need_gl()
        return True

    def setAutoShare(self, auto: bool, /) -> None:
        self._need_gl()


class SpoutSender(_GLObject):
    """Fake ``SpoutGL.SpoutSender``."""

    def __init__(self) -> None:
        super().__init__()
        self._name = "python"  # Spout names an unnamed sender after the executable
        self._texture: _Texture | None = None
        self.fake_dxgi_format = fake_sender_format

    def __enter__(self) -> SpoutSender:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any, /) -> None:
        self.releaseSender()

    def setSenderName(self, name: str, /) -> None:
        self._need_gl()
        if self._texture is not None:
            self.releaseSender()
        self._name = str(name)

    def sendImage(self, buffer: Any, width: int, height: int, glFormat: int, invert: bool, hostFbo: int, /) -> bool:
        self._need_gl()
        bpp = _bytes_per_pixel(glFormat)
        view = _check_buffer(buffer, width * height * bpp)
        src = np.frombuffer(view, np.uint8, count=width * height * bpp).reshape(height, width, bpp)
        if invert:
            src = src[::-1]
        with _lock:
            texture = self._texture
            if texture is None or (texture.width, texture.height, texture.format) != (width, height, self.fake_dxgi_format):
                existing = _senders.get(self._name)
                if existing is not None and existing is not texture:
                    return False  # the name belongs to another sender
                texture = self._texture = _Texture(width, height, self.fake_dxgi_format)
                _senders[self._name] = texture
            # OpenGL converts the upload into the texture's layout
            same_order = (glFormat in _RED_FIRST) == texture.red_first
            channels = [0, 1, 2] if same_order else [2, 1, 0]
            texture.pixels[..., :3] = src[..., channels]
            texture.pixels[..., 3] = src[..., 3] if bpp == 4 else 255
            texture.frame += 1
        return True

    def releaseSender(self, /) -> None:
        self._need_gl()
        with _lock:
            if self._texture is not None and _senders.get(self._name) is self._texture:
                del _senders[self._name]
            self._texture = None

    def getFrame(self, /) -> int:
        self._need_gl()
        return self._texture.frame if self._texture else 0

    def setFrameSync(self, name: str, /) -> None:
        self._need_gl()
        with _lock:
            event = _sync_events.setdefault(str(name), threading.Event())
        event.set()

    def waitFrameSync(self, name: str, timeout: int, /) -> bool:
        self._need_gl()
        return _wait_sync(name, timeout)


def _wait_sync(name: str, timeout_ms: int) -> bool:
    with _lock:
        event = _sync_events.get(str(name))
    if event is None:  # Spout: no sync event -> do not block
        return True
    signalled = event.wait(timeout_ms / 1000.0)
    event.clear()
    return signalled


class SpoutReceiver(_GLObject):
    """Fake ``SpoutGL.SpoutReceiver``."""

    def __init__(self) -> None:
        super().__init__()
        self._name = ""
        self._connected: _Texture | None = None
        self._width = self._height = self._format = 0
        self._updated = False
        self._frame_new = False
        self._last_frame = -1

    def __enter__(self) -> SpoutReceiver:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any, /) -> None:
        self.releaseReceiver()

    def setReceiverName(self, name: str, /) -> None:
        self._need_gl()
        self._name = str(name)

    def releaseReceiver(self, /) -> None:
        self._need_gl()
        self._connected = None
        self._updated = self._frame_new = False
        self._last_frame = -1

    def receiveImage(self, buffer: Any, glFormat: int, invert: bool, hostFbo: int, /) -> bool:
        self._need_gl()
        bpp = _bytes_per_pixel(glFormat)
        with _lock:
            texture = _senders.get(self._name)
            if texture is None:
                self._connected = None
                self._frame_new = False
                return False
            if texture is not self._connected or (self._width, self._height, self._format) != (texture.width, texture.height, texture.format):
                self._connected = texture
                self._width, self._height, self._format = texture.width, texture.height, texture.format
                self._updated, self._frame_new, self._last_frame = True, False, -1
                return True
            if self._updated or buffer is None:
                self._frame_new = False
                return True
            view = memoryview(buffer)
            if view.nbytes == 0:
                self._frame_new = False
                return True
            view = _check_buffer(buffer, self._width * self._height * bpp)
            if texture.frame == self._last_frame:
                self._frame_new = False
                return True
            pixels = texture.pixels[::-1] if invert else texture.pixels
            out = np.frombuffer(view, np.uint8, count=self._width * self._height * bpp).reshape(self._height, self._width, bpp)
            out[...] = pixels[..., :bpp]  # raw bytes, whatever order was asked for (the driver quirk)
            self._last_frame = texture.frame
            self._frame_new = True
            return True

    def isUpdated(self, /) -> bool:
        self._need_gl()
        updated, self._updated = self._updated, False
        return updated

    def isConnected(self, /) -> bool:
        self._need_gl()
        return self._connected is not None

    def isFrameNew(self, /) -> bool:
        self._need_gl()
        return self._frame_new

    def isFrameCountEnabled(self, /) -> bool:
        self._need_gl()
        return True

    def getSenderName(self, /) -> int:
        self._need_gl()
        return self._width  # the real binding maps getSenderName to GetSenderWidth

    def getSenderWidth(self, /) -> int:
        self._need_gl()
        return self._width

    def getSenderHeight(self, /) -> int:
        self._need_gl()
        return self._height

    def getSenderFormat(self, /) -> int:
        self._need_gl()
        return self._format

    def getSenderFrame(self, /) -> int:
        self._need_gl()
        return self._connected.frame if self._connected is not None else 0

    def setFrameSync(self, name: str, /) -> None:
        self._need_gl()
        with _lock:
            event = _sync_events.setdefault(str(name), threading.Event())
        event.set()

    def waitFrameSync(self, senderName: str, timeout: int = 0) -> bool:
        self._need_gl()
        return _wait_sync(senderName, timeout)
