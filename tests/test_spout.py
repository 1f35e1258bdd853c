"""spout: source and sink against the fake SpoutGL in tests/fakes (real API names, positional
arguments, one OpenGL context per thread enforced, senders shared in-process).

Covers: TouchDesigner's RGBA8 (DXGI 28) and the BGRA8 default (DXGI 87) read with the
right colours, a sink whose RGBA (alpha included) reaches a receiver, a round trip
SpoutSink -> SpoutSource through two engines, a sender that closes and comes back while
the daemon keeps running, no busy loop and no repeated frame while a sender is idle,
calls from a wrong thread refused, and a one-line error without SpoutGL.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bridge.chain import Chain
from bridge.cli import main
from bridge.engine import Engine
from bridge.errors import ConfigError, SourceLost, TransportError
from bridge.frames import Frame
from bridge.transports import open_sink, open_source
from bridge.transports.base import Sink, Source, StreamInfo
from bridge.transports.spout import SpoutSource
from tests.helpers import wait_for

FAKES = Path(__file__).parent / "fakes"
RGB = (200, 60, 20)  # R, G and B all differ: a swap shows


@pytest.fixture
def spoutgl(monkeypatch):
    """The fake SpoutGL, importable as ``SpoutGL`` for this test only."""
    for name in ("SpoutGL", "SpoutGL.enums"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(FAKES))
    import SpoutGL

    assert SpoutGL.__version__.endswith("fake")
    SpoutGL.fake_reset()
    yield SpoutGL
    SpoutGL.fake_reset()
    for name in ("SpoutGL", "SpoutGL.enums"):
        sys.modules.pop(name, None)



class FakeTouchDesigner:
    """A Spout Out TOP stand-in: its own thread with its own GL context, sending (h, w) RGBA
    frames of colour RGB whose pixel (0, 0) green counts the frames sent, at ``fps``."""

    def __init__(self, spoutgl, name: str, dxgi_format: int = 28, size=(24, 32), fps: float = 200.0):
        self.gl, self.name, self.format, self.size, self.fps = spoutgl, name, dxgi_format, size, fps
        self.sent = 0
        self.send_now = threading.Event()  # with fps=0: send one frame each time this is set
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FakeTouchDesigner:
        self._thread.start()
        return self

    def _run(self) -> None:
        sender = self.gl.SpoutSender()
        sender.fake_dxgi_format = self.format
        assert sender.createOpenGL()
        sender.setSenderName(self.name)
        h, w = self.size
        image = np.empty((h, w, 4), np.uint8)
        image[...] = (*RGB, 255)
        while not self._stop.is_set():
            if self.fps:
                time.sleep(1.0 / self.fps)
            elif not self.send_now.wait(0.01):
                continue
            self.send_now.clear()
            image[0, 0, 1] = self.sent % 256
            assert sender.sendImage(image, w, h, self.gl.enums.GL_RGBA, False, 0)
            self.sent += 1
        sender.releaseSender()
        sender.closeOpenGL()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class KeepSink(Sink):
    live = True

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def write(self, frame: Frame) -> None:
        self.frames.append(frame)


class RgbaSource(Source):
    """A live source of RGB frames with a frame counter in pixel (0, 0) red."""

    live = True
    fps = 100.0

    def __init__(self, n: int, size=(24, 32)):
        self.n, self.size, self.i = n, size, 0

    def read(self) -> Frame | None:
        if self.i >= self.n:
            return None
        time.sleep(0.01)
        image = np.empty((*self.size, 3), np.uint8)
        image[...] = RGB
        image[0, 0, 0] = self.i
        self.i += 1
        return Frame(image, self.i - 1, time.perf_counter())


def on_thread(fn):
    """Run ``fn`` on a new thread; return its result or raise its exception."""
    with ThreadPoolExecutor(1) as other:
        return other.submit(fn).result(10)


# ------------------------------------------------------------------------ errors
def test_without_spoutgl_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "SpoutGL", None)  # import SpoutGL -> ImportError
    for make in (open_source, open_sink):
        with pytest.raises(TransportError) as err:
            make("spout:TDOut")
        assert str(err.value) == "spout: needs Windows and SpoutGL: pip install SpoutGL"
    assert main(["run", "--source", "spout:TDOut", "--sink", "null:"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["avatar-bridge: spout: needs Windows and SpoutGL: pip install SpoutGL"]


def test_uri_needs_a_sender_name(spoutgl):
    with pytest.raises(ConfigError, match="spout:NAME"):
        open_source("spout:")
    assert open_source("spout:TD Out 1").name == "TD Out 1"


def test_fake_enforces_the_real_rules(spoutgl):
    receiver = spoutgl.SpoutReceiver()
    with pytest.raises(RuntimeError, match="createOpenGL"):
        receiver.receiveImage(None, spoutgl.enums.GL_RGBA, False, 0)
    sender = spoutgl.SpoutSender()
    sender.createOpenGL()
    with pytest.raises(TypeError):
        sender.setSenderName(name="x")  # positional only, like pybind11 without py::arg
    with pytest.raises(RuntimeError):
        on_thread(lambda: sender.setSenderName("x"))  # the context belongs to this thread
    sender.closeOpenGL()


def test_calls_from_another_thread_than_open_are_refused(spoutgl):
    sender = FakeTouchDesigner(spoutgl, "TDOut").start()
    try:
        source = open_source("spout:TDOut")
        with ThreadPoolExecutor(1) as source_thread:  # one thread, like the engine's source thread
            source_thread.submit(source.open).result(5)
            assert source_thread.submit(source.read).result(5).image.shape == (24, 32, 3)
            with pytest.raises(RuntimeError, match="one thread"):
                source.read()
            with pytest.raises(RuntimeError, match="one thread"):
                source.close()
            source_thread.submit(source.close).result(5)
    finally:
        sender.stop()


# ------------------------------------------------------------------------ receiving
@pytest.mark.parametrize("dxgi_format", [28, 87], ids=["rgba8-touchdesigner", "bgra8-default"])
def test_receives_right_colours_for_the_sender_format(spoutgl, dxgi_format):
    sender = FakeTouchDesigner(spoutgl, "TDOut", dxgi_format).start()
    source = open_source("spout:TDOut")
    try:
        source.open()
        frames = [source.read() for _ in range(5)]
    finally:
        source.close()
        sender.stop()
    assert source.live
    for frame in frames:
        assert frame.image.shape == (24, 32, 3) and frame.image.dtype == np.uint8
        assert tuple(frame.image[5, 5]) == RGB  # BGRA swapped back; RGBA as is
    counters = [int(f.image[0, 0, 1]) for f in frames]
    assert counters == sorted(set(counters))  # every frame is a new one
    assert [f.index for f in frames] == list(range(5))


def test_idle_sender_waits_without_busy_loop_or_repeated_frame(spoutgl, monkeypatch):
    sender = FakeTouchDesigner(spoutgl, "Slow", fps=0).start()
    calls = []
    real_receive = spoutgl.SpoutReceiver.receiveImage
    monkeypatch.setattr(spoutgl.SpoutReceiver, "receiveImage",
                        lambda self, *args: calls.append(1) or real_receive(self, *args))
    source = SpoutSource("Slow", spoutgl, stall_s=0.3)
    try:
        source.open()
        sender.send_now.set()
        first = source.read()
        calls.clear()
        t0 = time.perf_counter()
        with pytest.raises(SourceLost, match="no new frame"):
            source.read()  # connected, nothing new: wait, then report a frozen sender
        waited = time.perf_counter() - t0
        assert waited >= 0.29  # it waits stall_s before calling the sender frozen (a lower bound: no load can shorten it)
        assert len(calls) <= waited / 0.002 + 1  # it sleeps >= 2 ms between polls, so no busy loop, however slow the machine
        sender.send_now.set()
        second = source.read()  # the next new frame, not the old one again
    finally:
        source.close()
        sender.stop()
    assert int(second.image[0, 0, 1]) == int(first.image[0, 0, 1]) + 1


def test_sender_closes_and_comes_back_while_daemon_runs(spoutgl):
    sink = KeepSink()
    states: list[str] = []
    engine = Engine(open_source("spout:TDOut"), Chain.from_spec([("passthrough", {})]), sink, retry_s=0.05,
                    on_status=lambda stats: states.append(stats.state))
    td = FakeTouchDesigner(spoutgl, "TDOut").start()
    engine.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 5 and engine.stats.state == "live")
        td.stop()  # TouchDesigner closes its Spout Out TOP
        assert wait_for(lambda: engine.stats.state == "error")
        assert "TDOut" in engine.stats.last_error
        time.sleep(0.3)
        assert engine.running
        count = len(sink.frames)
        td = FakeTouchDesigner(spoutgl, "TDOut", dxgi_format=87, size=(30, 40)).start()  # back, new size and format
        assert wait_for(lambda: len(sink.frames) >= count + 5 and engine.stats.state == "live")
        assert engine.stats.source_restarts > 0 and engine.stats.last_error is None
        last = sink.frames[-1].image
        assert last.shape == (30, 40, 4) and tuple(last[5, 5, :3]) == RGB
    finally:
        td.stop()
        engine.stop()
        engine.join(5)  # raises if a Spout call ever came from a wrong thread
    assert not engine.running


# ------------------------------------------------------------------------ sending
@pytest.mark.parametrize("dxgi_format", [87, 28])
def test_sink_sends_rgba_with_alpha_to_a_spout_in(spoutgl, monkeypatch, dxgi_format):
    """What TouchDesigner's Spout In TOP gets from the daemon's sender: RGBA, alpha included."""
    monkeypatch.setattr(spoutgl, "fake_sender_format", dxgi_format)
    h, w = 16, 20
    image = np.zeros((h, w, 4), np.uint8)
    image[..., :3] = RGB
    image[..., 3] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]  # a horizontal alpha ramp
    sink = open_sink("spout:AvatarBridge")
    sink_thread = ThreadPoolExecutor(1)  # one thread for every call, like the engine's sink thread
    sink_thread.submit(lambda: (sink.open(StreamInfo(w, h, 30.0)), sink.write(Frame(image, 0, 0.0)))).result(5)

    receiver = spoutgl.SpoutReceiver()
    receiver.createOpenGL()
    receiver.setReceiverName("AvatarBridge")
    assert receiver.receiveImage(None, spoutgl.enums.GL_RGBA, False, 0) and receiver.isUpdated()
    assert receiver.getSenderFormat() == dxgi_format
    bgra = receiver.getSenderFormat() == 87
    buffer = np.zeros((receiver.getSenderHeight(), receiver.getSenderWidth(), 4), np.uint8)
    assert receiver.receiveImage(buffer, spoutgl.enums.GL_BGRA_EXT if bgra else spoutgl.enums.GL_RGBA, False, 0)
    assert receiver.isFrameNew()
    got = buffer[..., [2, 1, 0, 3]] if bgra else buffer
    np.testing.assert_array_equal(got, image)
    receiver.releaseReceiver()
    receiver.closeOpenGL()

    with pytest.raises(RuntimeError, match="one thread"):
        sink.write(Frame(image, 1, 0.0))  # not from the thread that opened it
    sink_thread.submit(sink.close).result(5)
    sink_thread.shutdown()
    assert spoutgl.fake_sender_names() == []  # releaseSender on close


@pytest.mark.parametrize("dxgi_format", [87, 28])
def test_round_trip_sink_to_source_through_two_engines(spoutgl, monkeypatch, dxgi_format):
    monkeypatch.setattr(spoutgl, "fake_sender_format", dxgi_format)
    sender = Engine(RgbaSource(150), Chain.from_spec([("passthrough", {})]), open_sink("spout:Loop"))
    received = KeepSink()
    receiver = Engine(open_source("spout:Loop"), Chain.from_spec([("passthrough", {})]), received, retry_s=0.05)
    receiver.start()
    sender.start()
    try:
        assert wait_for(lambda: len(received.frames) >= 20)
    finally:
        sender.stop()
        receiver.stop()
        sender.join(5)
        receiver.join(5)
    for frame in received.frames:
        assert tuple(frame.image[5, 5, :3]) == RGB
    counters = [int(f.image[0, 0, 0]) for f in received.frames]
    assert counters == sorted(set(counters))  # in order, none received twice
