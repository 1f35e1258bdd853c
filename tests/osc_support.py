"""Helpers for the OSC tests: a reply listener, an in-process daemon, a timing sink."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from typing import Any, Callable, Literal

import numpy as np
from pydantic import Field
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

from bridge.bench.osc import ClockedSource
from bridge.chain import Chain
from bridge.engine import Engine
from bridge.frames import Frame
from bridge.osc.daemon import start_with_engine
from bridge.stages.alpha import PersonAlphaStage
from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, stack_video, ui_field_config
from bridge.transports.base import Sink, StreamInfo


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ReplyListener:
    """Receives the daemon's replies on 127.0.0.1:``port`` on a thread.

    ``messages`` holds (perf_counter time, address, args) of every message;
    ``errors`` counts ``/bridge/error`` replies.
    """

    def __init__(self, port: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.messages: list[tuple[float, str, list[Any]]] = []
        self.errors = 0
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = OscMessage(data)
            with self.cond:
                self.messages.append((time.perf_counter(), msg.address, msg.params))
                if msg.address == "/bridge/error":
                    self.errors += 1
                self.cond.notify_all()

    def of(self, address: str) -> list[tuple[float, str, list[Any]]]:
        """Messages received at ``address`` (exact)."""
        with self.cond:
            return [m for m in self.messages if m[1] == address]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Wait until ``predicate()`` (called with the lock held) is true."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def wait_message(self, address: str, timeout: float = 30.0, after: float = 0.0) -> tuple[float, str, list[Any]] | None:
        """The first message at ``address`` received after perf_counter time ``after``."""
        found: list = []

        def seen() -> bool:
            found[:] = [m for m in self.messages if m[1] == address and m[0] >= after]
            return bool(found)

        return found[0] if self.wait_for(seen, timeout) else None

    def wait_message_with(self, address: str, args: list[Any], after: float, timeout: float = 30.0) -> tuple[float, str, list[Any]] | None:
        """The first message at ``address`` with exactly ``args``, received after perf_counter time ``after``."""
        found: list = []

        def seen() -> bool:
            found[:] = [m for m in self.messages if m[1] == address and m[2] == args and m[0] >= after]
            return bool(found)

        return found[0] if self.wait_for(seen, timeout) else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self.sock.close()


class TimingSink(Sink):
    """Live sink that keeps, per frame, its write time, index and alpha coverage (mean alpha in [0,1])."""

    live = True

    def __init__(self) -> None:
        self.times: list[float] = []
        self.indices: list[int] = []
        self.coverage: list[float] = []
        self.lock = threading.Lock()

    def open(self, info: StreamInfo) -> None:
        pass

    def write(self, frame: Frame) -> None:
        cov = float(frame.image[..., 3].mean()) / 255.0
        with self.lock:
            self.times.append(time.perf_counter())
            self.indices.append(frame.index)
            self.coverage.append(cov)

    def count(self) -> int:
        with self.lock:
            return len(self.times)

    def fps_between(self, t0: float, t1: float) -> float:
        with self.lock:
            n = sum(1 for t in self.times if t0 <= t < t1)
        return n / (t1 - t0)

    def max_gap_between(self, t0: float, t1: float) -> float:
        with self.lock:
            ts = [t for t in self.times if t0 <= t <= t1]
        return max(np.diff(ts)) if len(ts) > 1 else float("inf")


def osc_args(reply_port: int, port: int = 0, **extra: Any) -> argparse.Namespace:
    """The ``run`` options the OSC extension reads, on loopback with a free port."""
    values = dict(osc_host="127.0.0.1", osc_port=port or free_udp_port(), osc_reply=f"127.0.0.1:{reply_port}",
                  osc_allow=None, no_osc=False)
    values.update(extra)
    return argparse.Namespace(**values)


def start_daemon(source: Any, chain: Chain, sink: Sink, reply_port: int, **osc: Any) -> tuple[Engine, Any]:
    """An engine (looping ``source``) with the OSC surface, both started. Returns (engine, service)."""
    engine = Engine(source, chain, sink, loop=True)
    service = start_with_engine(engine, osc_args(reply_port, **osc))
    engine.start()
    return engine, service


def stop_daemon(engine: Engine, service: Any) -> None:
    engine.stop()
    service()
    engine.join(5.0)


FPS = 30.0


class Daemon:
    """A streaming engine (carphone on a 30 fps clock -> ``spec`` -> :class:`TimingSink`) with
    the OSC surface, a python-osc client, a reply listener, and ``calls``: (time, runtime
    kwargs) of every person-alpha stage call."""

    def __init__(self, frames, monkeypatch, spec=(("alpha", {}),), reply_port: int | None = None, **osc):
        self.calls: list[tuple[float, dict]] = []
        original = PersonAlphaStage.__call__

        def recording(stage, **kwargs):
            self.calls.append((time.perf_counter(), {k: v for k, v in kwargs.items() if k not in ("video", "source_video")}))
            return original(stage, **kwargs)

        monkeypatch.setattr(PersonAlphaStage, "__call__", recording)
        self.listener = ReplyListener()
        self.sink = TimingSink()
        chain = Chain.from_spec(list(spec))
        source = ClockedSource(frames, FPS)
        self.engine, self.service = start_daemon(source, chain, self.sink, reply_port or self.listener.port, **osc)
        self.client = SimpleUDPClient("127.0.0.1", self.service.port)
        self.wait_frames(5)

    def wait_frames(self, n: int, timeout: float = 30.0) -> None:
        target = self.sink.count() + n
        deadline = time.monotonic() + timeout
        while self.sink.count() < target:
            assert time.monotonic() < deadline, "the stream stopped"
            time.sleep(0.01)

    def send(self, address: str, *args) -> float:
        t = time.perf_counter()
        self.client.send_message(address, list(args))
        return t

    def state(self, state: str, after: float, timeout: float = 30.0):
        return self.listener.wait_message_with("/bridge/status/state", [state], after, timeout)

    def close(self) -> None:
        stop_daemon(self.engine, self.service)
        self.listener.close()


class KnobsConfig(BasePipelineConfig):
    """A cheap test stage with one parameter of each kind (not registered by default)."""

    pipeline_id = "test-knobs"
    pipeline_name = "Knobs"
    pipeline_description = "Records its parameters and passes frames through (tests only)."
    usage = [UsageType.MAIN]
    osc_name = "knobs"
    gain: float = Field(default=0.5, ge=0.0, le=1.0, description="a float in [0, 1]",
                        json_schema_extra=ui_field_config(order=1))
    steps: int = Field(default=2, ge=1, le=8, description="an int in [1, 8]", json_schema_extra=ui_field_config(order=2))
    enabled: bool = Field(default=True, description="a toggle", json_schema_extra=ui_field_config(order=3))
    mode: Literal["a", "b"] = Field(default="a", description="a choice", json_schema_extra=ui_field_config(order=4))
    size: int = Field(default=1, ge=1, le=4, description="load-time", json_schema_extra=ui_field_config(order=5, is_load_param=True))


class KnobsStage(Pipeline):
    """Passes frames through and records every call's parameters in ``calls``."""

    calls: list[dict[str, Any]] = []

    @classmethod
    def get_config_class(cls):
        return KnobsConfig

    def __init__(self, device=None, size: int = 1, **kwargs):
        super().__init__(device)

    def __call__(self, **kwargs):
        KnobsStage.calls.append({k: v for k, v in kwargs.items() if k not in ("video", "source_video", "keep_uint8")})
        return {"video": stack_video(kwargs.get("video"))}


def register_knobs(monkeypatch) -> None:
    """Register :class:`KnobsStage` for one test (the registry is restored afterwards)."""
    from bridge.stages import registry

    registry._load_builtins()
    monkeypatch.setitem(registry._STAGES, KnobsConfig.pipeline_id, KnobsStage)
    KnobsStage.calls = []


def preset_daemon(frames, monkeypatch, folder, presets: dict[str, str], **kwargs) -> Daemon:
    """A :class:`Daemon` whose presets folder (``AVATAR_BRIDGE_PRESETS``) is ``folder``,
    holding ``presets`` (name -> YAML text) as ``<name>.yaml``; ``daemon.folder`` is it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in presets.items():
        (folder / f"{name}.yaml").write_text(text)
    monkeypatch.setenv("AVATAR_BRIDGE_PRESETS", str(folder))
    daemon = Daemon(frames, monkeypatch, **kwargs)
    daemon.folder = folder
    return daemon
