"""camera: source against a fake cv2.VideoCapture that follows OpenCV's API and can be
unplugged and plugged back in: BGR -> RGB, live hand-off, and a lost camera that the
engine reports, retries and picks up again without dying."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from bridge.chain import Chain
from bridge.engine import Engine
from bridge.errors import ConfigError, SourceLost
from bridge.frames import Frame
from bridge.transports import open_source
from bridge.transports.base import Sink, StreamInfo
from bridge.transports.camera import CameraSource
from tests.helpers import wait_for

B, G, R = 10, 120, 230  # a BGR pixel: the source must hand out (230, 120, 10) RGB


class FakeUsbBus:
    """What is plugged in: camera index -> True/False, shared by every FakeCapture."""

    def __init__(self) -> None:
        self.plugged = {0: True}
        self.opened: list[int | str] = []


class FakeCapture:
    """``cv2.VideoCapture`` as OpenCV behaves: a missing device gives ``isOpened() == False``;
    a device unplugged while open makes ``read()`` return ``(False, None)``; frames are BGR
    uint8, delivered at the camera's rate (``read`` blocks until the next one)."""

    bus: FakeUsbBus

    def __init__(self, index, api_preference: int = cv2.CAP_ANY) -> None:
        self.index = index
        self.bus.opened.append(index)
        self._open = bool(self.bus.plugged.get(index, False))
        self._props = {cv2.CAP_PROP_FPS: 100.0, cv2.CAP_PROP_FRAME_WIDTH: 32.0, cv2.CAP_PROP_FRAME_HEIGHT: 24.0}
        self._count = 0

    def isOpened(self) -> bool:
        return self._open

    def read(self, image=None):
        if not self._open or not self.bus.plugged.get(self.index, False):
            return False, None
        time.sleep(1.0 / self._props[cv2.CAP_PROP_FPS])
        h, w = int(self._props[cv2.CAP_PROP_FRAME_HEIGHT]), int(self._props[cv2.CAP_PROP_FRAME_WIDTH])
        frame = np.empty((h, w, 3), np.uint8)
        frame[...] = (B, G, R)
        frame[0, 0, 0] = self._count % 256
        self._count += 1
        return True, frame

    def get(self, prop: int) -> float:
        return self._props.get(prop, 0.0) if self._open else 0.0

    def set(self, prop: int, value: float) -> bool:
        if not self._open:
            return False
        self._props[prop] = float(value)
        return True

    def release(self) -> None:
        self._open = False


@pytest.fixture
def bus(monkeypatch) -> FakeUsbBus:
    bus = FakeUsbBus()
    monkeypatch.setattr(FakeCapture, "bus", bus, raising=False)
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    return bus


class KeepSink(Sink):
    """A live sink that keeps the frames it gets."""

    live = True

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def open(self, info: StreamInfo) -> None:
        self.info = info

    def write(self, frame: Frame) -> None:
        self.frames.append(frame)



def test_uri_forms():
    assert open_source("camera:0").device == 0
    assert open_source("camera:2").device == 2
    assert open_source("camera:/dev/video4").device == "/dev/video4"
    assert open_source("camera:").device == 0
    assert open_source("camera:rtsp://192.168.1.20/stream").device == "rtsp://192.168.1.20/stream"
    with pytest.raises(ConfigError, match="camera:0"):
        open_source("camera:-1")
    for bad in ("abc", "video0", "./clip.mp4", "1.5", "--1", "²"):  # neither an index nor a device path nor a URL
        with pytest.raises(ConfigError, match="neither a camera index"):
            open_source(f"camera:{bad}")


def test_a_well_named_camera_absent_at_start_is_waited_for(bus):
    source = open_source("camera:/dev/video9")  # not plugged in: accepted, read() reports it
    source.open()
    with pytest.raises(SourceLost, match="/dev/video9"):
        source.read()
    source.close()


def test_frames_are_rgb_live_with_fps(bus):
    source = CameraSource(0, width=32, height=24, fps=50)
    source.open()
    assert source.live and source.fps == 50.0  # requested, and reported back by the driver
    frames = [source.read() for _ in range(3)]
    source.close()
    assert [f.index for f in frames] == [0, 1, 2]
    image = frames[1].image
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8
    assert tuple(image[5, 5]) == (R, G, B)  # BGR converted to RGB
    assert frames[0].t_capture <= frames[1].t_capture


def test_missing_camera_raises_source_lost_from_read_not_open(bus):
    source = CameraSource(3)
    source.open()  # a daemon started before the camera is plugged in must not die here
    with pytest.raises(SourceLost, match="camera 3"):
        source.read()
    source.close()


def test_unplugged_then_replugged_camera_recovers_through_the_engine(bus):
    sink = KeepSink()
    states: list[str] = []
    engine = Engine(CameraSource(0), Chain.from_spec([("passthrough", {})]), sink, retry_s=0.05,
                    on_status=lambda stats: states.append(stats.state))
    engine.start()
    try:
        assert wait_for(lambda: len(sink.frames) >= 5 and engine.stats.state == "live")
        bus.plugged[0] = False  # unplug
        assert wait_for(lambda: engine.stats.state == "error")
        assert "camera 0" in engine.stats.last_error
        opened_before = len(bus.opened)
        assert wait_for(lambda: len(bus.opened) >= opened_before + 2)  # it keeps retrying
        assert engine.running  # the daemon is alive
        count = len(sink.frames)
        bus.plugged[0] = True  # plug back in
        assert wait_for(lambda: len(sink.frames) >= count + 5 and engine.stats.state == "live")
        assert engine.stats.source_restarts > 0
        assert engine.stats.last_error is None
        assert tuple(sink.frames[-1].image[5, 5, :3]) == (R, G, B)
    finally:
        engine.stop()
        engine.join(5)
    assert not engine.running
    last_error = max(i for i, state in enumerate(states) if state == "error")
    assert "live" in states[last_error:]  # reported as an error, then live again
    indices = [f.index for f in sink.frames]
    assert indices == sorted(indices)  # a reopened camera keeps counting
