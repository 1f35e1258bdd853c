"""``ndi:NAME`` source and sink: NDI® video in and out, so the daemon can run on another machine.

NDI® (https://ndi.video) carries video over an IP network; TouchDesigner speaks it natively
(NDI In TOP / NDI Out TOP). This module uses `cyndilib` (MIT), whose wheels bundle the NDI
runtime; NDI® is a registered trademark of Vizrt NDI AB.

* :class:`NDISource` (``--source ndi:SOURCE_NAME``) receives a live stream through the
  NDI frame-sync, latest frame wins, as (H, W, 3) uint8 RGB (the receiver asks the runtime
  for RGBA/RGBX and drops the fourth byte). A source that stops or vanishes raises
  :class:`~bridge.errors.SourceLost`, so the engine reports it and reopens it with back-off;
  the daemon never stops for it.
* :class:`NDISink` (``--sink ndi:SENDER_NAME``) sends (H, W, 4) uint8 RGBA, alpha included
  (NDI High Bandwidth codes RGBA as SpeedHQ 4:2:2:4), at the size of the frames and the
  frame rate the engine's :class:`~bridge.transports.base.StreamInfo` gives. While no new
  frame comes (the source is gone, a model reloads) it repeats a hold frame at the stream's
  frame rate: the last frame or a fully transparent one (``hold``).
* :func:`configure_discovery`: extra IPs for networks without mDNS (rented GPU boxes).

Colour through NDI is lossy (SpeedHQ, 4:2:2 chroma): (200, 10, 77) comes back as about
(197, 9, 71). Alpha is a full-resolution fourth plane coded in 8x8 blocks like the picture:
exact in every block of one alpha value (background, body), within a few levels on a
matte's edges (tests/test_ndi.py holds it to 8 of 255).
"""

from __future__ import annotations

import atexit
import importlib.util
import ipaddress
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable

import numpy as np

from bridge.errors import ConfigError, SourceLost, TransportError
from bridge.frames import Frame
from bridge.transports.base import Sink, Source, StreamInfo

log = logging.getLogger("bridge.ndi")

#: What the sink sends while no new frame comes: the last frame, or transparent black.
HOLD_MODES = ("last", "transparent")
#: Seconds without a frame before a source counts as lost and the sink starts holding.
DEFAULT_TIMEOUT_S = 1.0
#: File name and environment variable the NDI runtime reads its settings from
#: (NDI SDK documentation, "Configuration Files").
CONFIG_FILE = "ndi-config.v1.json"
CONFIG_ENV = "NDI_CONFIG_DIR"

_config_lock = threading.Lock()
_config_key: tuple[str, ...] | None = None
_config_made: tuple[Path | None, Path] | None = None  # (base folder, folder written) of the last config made
_runtime_used = False  # set once this process created an NDI object (the runtime read its config)


# ------------------------------------------------------------------------------ discovery
def parse_ips(extra_ips: str | Iterable[str] | None) -> list[str]:
    """``"10.0.0.5, 192.168.1.20"`` (or a list) -> ``["10.0.0.5", "192.168.1.20"]``.

    Commas and spaces both separate (TouchDesigner's ``extraips`` uses spaces).

    Raises:
        ConfigError: an entry is not an IPv4/IPv6 address.
    """
    if extra_ips is None:
        return []
    items = extra_ips.replace(",", " ").split() if isinstance(extra_ips, str) else [str(i).strip() for i in extra_ips]
    ips = []
    for item in items:
        if not item:
            continue
        try:
            ips.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ConfigError(f"--ndi-extra-ips: {item!r} is not an IP address; give a comma list like 10.0.0.5,192.168.1.20") from None
    return ips


def configure_discovery(extra_ips: str | Iterable[str] | None = None, config_dir: str | os.PathLike | None = None) -> Path | None:
    """Let NDI find sources and receivers by IP where mDNS does not reach.

    NDI discovers peers with mDNS, which rented GPU boxes, VPNs and many venue networks
    block. The runtime can instead probe a list of IPs, read from ``ndi-config.v1.json``
    (``{"ndi": {"networks": {"ips": "10.0.0.5,127.0.0.1"}}}``) in the folder named by the
    environment variable ``NDI_CONFIG_DIR``. The runtime reads that file once, when the
    first NDI object (finder, receiver, sender) of the process is created, so this runs
    before any ``ndi:`` transport opens (each one calls it first).

    With ``extra_ips`` it writes a fresh config folder (removed at exit) holding the IPs,
    merged into the settings of ``config_dir`` (or of the folder ``NDI_CONFIG_DIR``
    already names), and points ``NDI_CONFIG_DIR`` at it; the user's own file is never
    modified. With only ``config_dir`` it points ``NDI_CONFIG_DIR`` at that folder.

    Args:
        extra_ips: IPv4/IPv6 addresses of the machines to reach (comma/space list or list).
        config_dir: an NDI config folder to use or to start from.

    Returns:
        The folder ``NDI_CONFIG_DIR`` names now, or None when nothing was asked.

    Raises:
        ConfigError: a bad IP, a missing config folder or an unreadable config file.
    """
    global _config_key, _config_made
    ips = parse_ips(extra_ips)
    if config_dir is not None and not Path(config_dir).is_dir():
        raise ConfigError(f"--ndi-config-dir: no folder {str(config_dir)!r}; give the folder that holds {CONFIG_FILE}")
    if not ips:
        if config_dir is None:
            return None
        with _config_lock:
            _warn_if_late((str(config_dir),))
            os.environ[CONFIG_ENV] = str(config_dir)
            _config_key = (str(config_dir),)
        return Path(config_dir)
    with _config_lock:
        env = os.environ.get(CONFIG_ENV)
        if config_dir is not None:
            base_dir: Path | None = Path(config_dir)
        elif env and _config_made is not None and env == str(_config_made[1]):
            base_dir = _config_made[0]  # NDI_CONFIG_DIR is the folder made here before: same base
        else:
            base_dir = Path(env) if env else None
        key = (str(base_dir), *ips)
        if key == _config_key and env:
            return Path(env)
        settings: dict[str, Any] = {}
        if base_dir is not None and (base_dir / CONFIG_FILE).is_file():
            try:
                settings = json.loads((base_dir / CONFIG_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read {base_dir / CONFIG_FILE} ({exc}); fix the JSON or leave out --ndi-config-dir") from None
            if not isinstance(settings, dict) or not isinstance(settings.get("ndi", {}), dict):
                raise ConfigError(f"{base_dir / CONFIG_FILE} is not an NDI config (expected {{\"ndi\": {{...}}}}); fix it or leave out --ndi-config-dir")
        networks = settings.setdefault("ndi", {}).setdefault("networks", {})
        known = [ip for ip in str(networks.get("ips", "")).replace(",", " ").split() if ip]
        networks["ips"] = ",".join(dict.fromkeys(known + ips))
        folder = Path(tempfile.mkdtemp(prefix="avatar-bridge-ndi-"))
        atexit.register(shutil.rmtree, folder, True)
        (folder / CONFIG_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")
        _warn_if_late(key)
        os.environ[CONFIG_ENV] = str(folder)
        _config_key, _config_made = key, (base_dir, folder)
        log.info("NDI discovery: extra IPs %s (config %s)", networks["ips"], folder / CONFIG_FILE)
        return folder


def _warn_if_late(key: tuple[str, ...]) -> None:
    if _runtime_used and key != _config_key:
        log.warning("NDI is already running in this process; new discovery settings apply after a restart")


def load_cyndilib() -> SimpleNamespace:
    """The cyndilib names this module uses (imported on first use).

    Raises:
        TransportError: cyndilib is missing, or the NDI runtime inside it fails to load.
    """
    global _runtime_used
    try:
        from cyndilib.finder import Finder
        from cyndilib.receiver import Receiver
        from cyndilib.sender import Sender
        from cyndilib.video_frame import VideoFrameSync, VideoSendFrame
        from cyndilib.wrapper.ndi_recv import RecvBandwidth, RecvColorFormat
        from cyndilib.wrapper.ndi_structs import FourCC
    except (ImportError, OSError) as exc:
        if importlib.util.find_spec("cyndilib") is None:
            raise TransportError("ndi: needs cyndilib (its wheels bundle the NDI runtime): pip install cyndilib") from None
        raise TransportError(f"ndi: cyndilib is installed but the NDI runtime in it failed to load ({exc}); "
                             "reinstall it: pip install --force-reinstall cyndilib") from None
    _runtime_used = True
    return SimpleNamespace(Finder=Finder, Receiver=Receiver, Sender=Sender,
                           VideoFrameSync=VideoFrameSync, VideoSendFrame=VideoSendFrame,
                           RecvBandwidth=RecvBandwidth, RecvColorFormat=RecvColorFormat, FourCC=FourCC)


def match_source(names: Iterable[str], wanted: str) -> str | None:
    """The NDI source in ``names`` that ``wanted`` means, or None.

    NDI names sources ``"MACHINE (stream)"``. ``wanted`` may be that full name, or just the
    stream name (``TDOut`` matches ``"LAPTOP (TDOut)"``); with several machines sending the
    same stream name, the first in sorted order wins.
    """
    names = sorted(names)
    if wanted in names:
        return wanted
    for name in names:
        head, sep, tail = name.partition(" (")  # machine names have no spaces; stream names may
        if sep and tail.endswith(")") and tail[:-1] == wanted:
            return name
    return None


def _timeout(value: Any, option: str = "--ndi-timeout") -> float:
    try:
        seconds = float(DEFAULT_TIMEOUT_S if value is None else value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option}: {value!r} is not a number of seconds") from None
    if not 0.05 <= seconds <= 60:
        raise ConfigError(f"{option}: {seconds} s is out of range; use 0.05 to 60 seconds")
    return seconds


# ------------------------------------------------------------------------------ source
class NDISource(Source):
    """Live frames from the NDI source ``name`` as (H, W, 3) uint8 RGB, latest frame wins.

    Args:
        name: ``"MACHINE (stream)"`` or just the stream name (see :func:`match_source`).
        timeout_s: seconds to wait for the source to appear or send a new frame before
            :meth:`read` raises SourceLost (the engine then reopens it with back-off).
        extra_ips, config_dir: discovery settings, see :func:`configure_discovery`.
        poll_s: how often :meth:`read` asks for a new frame (adds at most this latency).

    Frames come through the NDI frame-sync (``FrameSync.capture_video``), which always
    holds the newest frame: a new NDI timestamp means a new frame, frames that arrived
    between two reads are skipped inside the runtime. It is polled every ``poll_s``
    rather than waited on because cyndilib's blocking ``Receiver.receive(timeout)`` keeps
    the GIL for the whole wait, which stalls the stage and sink threads (measured here:
    a 50 ms wait let a Python thread run at most every 100 ms), and on this machine's
    NDI 6.3 runtime ``receive(..., 0)`` returned only a few of the frames that arrived.
    ``fps`` is the stream's frame rate once the first frame came.
    """

    live = True

    def __init__(self, name: str, timeout_s: float = DEFAULT_TIMEOUT_S, extra_ips: Any = None,
                 config_dir: str | None = None, recv_name: str = "avatar-bridge", poll_s: float = 0.001) -> None:
        self.name = name
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.extra_ips, self.config_dir, self.recv_name = extra_ips, config_dir, recv_name
        self.connected_to: str | None = None
        self._lib: SimpleNamespace | None = None
        self._finder: Any = None
        self._receiver: Any = None
        self._video: Any = None
        self._stamp: tuple[float, float] | None = None
        self._index = 0
        self._t0: float | None = None
        self._frames_this_open = 0

    @classmethod
    def from_uri(cls, target: str, ndi_timeout: Any = None, ndi_extra_ips: Any = None,
                 ndi_config_dir: str | None = None, **options: Any) -> NDISource:
        """``ndi:SOURCE_NAME`` (e.g. ``ndi:TDOut`` or ``"ndi:LAPTOP (TDOut)"``).

        Raises:
            ConfigError: no name, or a bad option.
        """
        if not target.strip():
            raise ConfigError("ndi source needs a name: ndi:SOURCE_NAME, e.g. ndi:TDOut or \"ndi:LAPTOP (TDOut)\"")
        parse_ips(ndi_extra_ips)  # fail early, in one line
        return cls(target.strip(), _timeout(ndi_timeout), ndi_extra_ips, ndi_config_dir)

    def open(self) -> None:
        """Start looking for the source (returns at once; a missing source is not an error here).

        Raises:
            TransportError: cyndilib or the NDI runtime is missing.
        """
        configure_discovery(self.extra_ips, self.config_dir)
        lib = self._lib = load_cyndilib()
        # no finder thread: it refreshes its list only every few seconds once it saw a
        # source; read() asks for the current list itself while it looks for the source
        self._finder = lib.Finder()
        self._receiver = lib.Receiver(color_format=lib.RecvColorFormat.RGBX_RGBA, bandwidth=lib.RecvBandwidth.highest,
                                      recv_name=self.recv_name)
        self._video = lib.VideoFrameSync()
        self._receiver.frame_sync.set_video_frame(self._video)
        self.connected_to = None
        self._stamp = None
        self._frames_this_open = 0

    def _connect(self) -> bool:
        name = match_source(self._finder.update_sources(), self.name)
        source = self._finder.get_source(name) if name is not None else None
        if source is None:
            return False
        self._receiver.set_source(source)
        self.connected_to = name
        log.info("NDI source %r: connected to %r", self.name, name)
        return True

    def read(self) -> Frame:
        """The newest frame (waits up to ``timeout_s`` for one).

        Raises:
            SourceLost: the source is not found, went away, or sent nothing new for ``timeout_s``.
        """
        if self._receiver is None:
            raise SourceLost(f"NDI source {self.name!r} is not open")
        video, sync = self._video, self._receiver.frame_sync
        start = time.perf_counter()
        deadline = start + self.timeout_s
        while True:
            if self.connected_to is None and not self._connect():
                time.sleep(0.02)
            else:
                sync.capture_video()
                if video.xres > 0:
                    stamp = (video.get_timestamp_posix(), video.get_timecode_posix())
                    if stamp != self._stamp:
                        self._stamp = stamp
                        return self._take(video)
                now = time.perf_counter()
                if self._frames_this_open and now - start > 0.1 and not self._receiver.is_connected():
                    raise SourceLost(f"NDI source {self.connected_to!r} went away")
                time.sleep(self.poll_s)
            if time.perf_counter() >= deadline:
                if self.connected_to is None:
                    seen = ", ".join(sorted(self._finder.update_sources())) or "none"
                    raise SourceLost(f"NDI source {self.name!r} not found (seen: {seen}); check the name and --ndi-extra-ips")
                raise SourceLost(f"NDI source {self.connected_to!r} sent no new frame for {self.timeout_s:g} s")

    def _take(self, video: Any) -> Frame:
        now = time.perf_counter()
        view = memoryview(video)  # the runtime's buffer, zero-copy; released (freed) below
        try:
            data = np.frombuffer(view, np.uint8)
            rgb = _to_rgb(data, video.xres, video.yres, video.get_line_stride(), video.get_fourcc(), self._lib.FourCC)
            del data
        finally:
            view.release()
        if self._frames_this_open == 0:
            rate = video.get_frame_rate()
            if rate and float(rate) > 0:
                self.fps = float(rate)
        self._frames_this_open += 1
        if self._t0 is None:
            self._t0 = now
        frame = Frame(rgb, self._index, now, now - self._t0)
        self._index += 1
        return frame

    def close(self) -> None:
        """Disconnect and release the receiver and finder. Safe to call twice."""
        receiver = self._receiver
        self._receiver = self._finder = self._video = None
        self.connected_to = None
        if receiver is not None:
            try:
                receiver.disconnect()
            except Exception:  # the runtime may already be gone at exit
                pass


def _to_rgb(buf: np.ndarray, width: int, height: int, stride: int, fourcc: Any, FourCC: Any) -> np.ndarray:
    """A received NDI frame buffer -> a new (H, W, 3) uint8 RGB array (one conversion copy).

    Raises:
        SourceLost: a pixel format this receiver did not ask for (the engine reconnects).
    """
    import cv2  # OpenCV (opencv-python-headless); imported here to keep CLI start-up fast

    four = {FourCC.RGBA: cv2.COLOR_RGBA2RGB, FourCC.RGBX: cv2.COLOR_RGBA2RGB,
            FourCC.BGRA: cv2.COLOR_BGRA2RGB, FourCC.BGRX: cv2.COLOR_BGRA2RGB}
    if fourcc in four:
        rows = buf[: height * stride].reshape(height, stride)[:, : width * 4]
        return cv2.cvtColor(rows.reshape(height, width, 4), four[fourcc])
    if fourcc == FourCC.UYVY:
        rows = buf[: height * stride].reshape(height, stride)[:, : width * 2]
        return cv2.cvtColor(rows.reshape(height, width, 2), cv2.COLOR_YUV2RGB_UYVY)
    raise SourceLost(f"NDI sent pixel format {getattr(fourcc, 'name', fourcc)}, expected RGBA/BGRA/UYVY; reconnecting")


# ------------------------------------------------------------------------------ sink
class NDISink(Sink):
    """Sends (H, W, 4) uint8 RGBA frames as the NDI sender ``name`` (alpha included).

    Args:
        name: the sender (stream) name; receivers see ``"MACHINE (name)"``.
        hold: ``"last"`` repeats the last frame, ``"transparent"`` sends RGBA (0, 0, 0, 0)
            while no new frame comes for ``hold_after_s`` seconds.
        hold_after_s: seconds without a new frame before holding starts (a slower chain
            is not a stall); hold frames then go out at the stream's frame rate.
        extra_ips, config_dir: discovery settings, see :func:`configure_discovery`.

    The stream's size and frame rate come from :class:`StreamInfo` (the engine's output
    size and the source's fps); a frame of another size restarts the sender at that size.
    ``sent`` counts frames sent, ``repeated`` the hold frames among them.

    Raises:
        TransportError: at ``open``, cyndilib missing or the sender cannot start.
    """

    live = True

    def __init__(self, name: str, hold: str = "last", hold_after_s: float = DEFAULT_TIMEOUT_S,
                 extra_ips: Any = None, config_dir: str | None = None) -> None:
        if hold not in HOLD_MODES:
            raise ConfigError(f"--ndi-hold: {hold!r} is not one of {', '.join(HOLD_MODES)}")
        self.name, self.hold, self.hold_after_s = name, hold, hold_after_s
        self.extra_ips, self.config_dir = extra_ips, config_dir
        self.sent = 0
        self.repeated = 0
        self.advertised: str | None = None
        self._lib: SimpleNamespace | None = None
        self._sender: Any = None
        self._fps = 30.0
        self._size: tuple[int, int] | None = None
        self._last: np.ndarray | None = None
        self._transparent: np.ndarray | None = None
        self._t_new = 0.0
        self._t_sent = 0.0

    @classmethod
    def from_uri(cls, target: str, ndi_hold: str | None = None, ndi_timeout: Any = None, ndi_extra_ips: Any = None,
                 ndi_config_dir: str | None = None, **options: Any) -> NDISink:
        """``ndi:SENDER_NAME`` (e.g. ``ndi:AvatarBridge``).

        Raises:
            ConfigError: no name, or a bad option.
        """
        if not target.strip():
            raise ConfigError("ndi sink needs a sender name: ndi:SENDER_NAME, e.g. ndi:AvatarBridge")
        parse_ips(ndi_extra_ips)
        return cls(target.strip(), ndi_hold or "last", _timeout(ndi_timeout), ndi_extra_ips, ndi_config_dir)

    def open(self, info: StreamInfo) -> None:
        """Start the sender at ``info``'s size and frame rate."""
        configure_discovery(self.extra_ips, self.config_dir)
        self._lib = load_cyndilib()
        self._fps = info.fps if info.fps and info.fps > 0 else 30.0
        self.idle_s = min(0.1, 1.0 / self._fps)
        self._start(info.width, info.height)

    def _start(self, width: int, height: int) -> None:
        lib = self._lib
        self._stop_sender()
        frame = lib.VideoSendFrame()
        frame.set_resolution(width, height)
        frame.set_frame_rate(Fraction(self._fps).limit_denominator(1001))
        frame.set_fourcc(lib.FourCC.RGBA)
        # clock_video=False: the engine paces frames; a clocked sender would block the sink thread
        sender = lib.Sender(self.name, clock_video=False)
        sender.set_video_frame(frame)
        try:
            sender.open()
        except Exception as exc:
            raise TransportError(f"ndi sink: cannot start NDI sender {self.name!r} ({exc}); try another name") from None
        self._sender, self._size = sender, (width, height)
        self._transparent = np.zeros(width * height * 4, np.uint8)
        self._last = None
        self.advertised = sender.source.name if sender.source is not None else self.name
        log.info("NDI sender %r live: %dx%d RGBA at %.3g fps", self.advertised, width, height, self._fps)

    def write(self, frame: Frame) -> None:
        """Send one RGBA frame (``frame.image`` (H, W, 4) uint8); copied once into the sender."""
        image = frame.image
        if image.ndim != 3 or image.shape[2] != 4:
            raise TransportError(f"ndi sink expects (H, W, 4) RGBA frames, got shape {image.shape}")
        height, width = image.shape[:2]
        if (width, height) != self._size:
            log.info("NDI sender %r: size changed to %dx%d, restarting it", self.name, width, height)
            self._start(width, height)
        data = np.ascontiguousarray(image).reshape(-1)
        self._sender.write_video_async(data)
        self._last = data
        self._t_new = self._t_sent = time.perf_counter()
        self.sent += 1

    def idle(self) -> None:
        """Called by the engine when no new frame came for ``idle_s``: send a hold frame when due."""
        if self._sender is None or self._last is None:
            return
        now = time.perf_counter()
        if now - self._t_new < self.hold_after_s or now - self._t_sent < 1.0 / self._fps:
            return
        self._sender.write_video_async(self._last if self.hold == "last" else self._transparent)
        self._t_sent = now
        self.sent += 1
        self.repeated += 1

    def _stop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()

    def close(self) -> None:
        """Stop the sender (receivers see the source go away). Safe to call twice."""
        self._stop_sender()
