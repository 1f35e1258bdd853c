"""Test helpers: in-memory sources and sinks, and a slow stage, built on the real interfaces."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import torch
from pydantic import Field

from bridge.chain import Chain, StageSlot
from bridge.frames import Frame
from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, stack_video, ui_field_config
from bridge.transports.base import Sink, Source, StreamInfo


class ArraySource(Source):
    """Frames from a list of (H, W, 3) uint8 arrays; ``live`` and ``interval_s`` simulate a camera."""

    def __init__(self, images: list[np.ndarray], live: bool = False, interval_s: float = 0.0, fps: float = 30.0):
        self.images, self.live, self.interval_s, self.fps = images, live, interval_s, fps
        self.pos = 0
        self.index = 0
        self.threads: set[str] = set()

    def open(self) -> None:
        self.threads.add(threading.current_thread().name)

    def read(self) -> Frame | None:
        self.threads.add(threading.current_thread().name)
        if self.pos >= len(self.images):
            return None
        if self.interval_s:
            time.sleep(self.interval_s)
        frame = Frame(self.images[self.pos], self.index, time.perf_counter(), self.index / self.fps)
        self.pos += 1
        self.index += 1
        return frame

    def rewind(self) -> bool:
        self.pos = 0
        return True


class ListSink(Sink):
    """Keeps every RGBA frame it gets; records the thread of each call."""

    def __init__(self, live: bool = False):
        self.live = live
        self.frames: list[Frame] = []
        self.info: StreamInfo | None = None
        self.closed = False
        self.threads: set[str] = set()

    def open(self, info: StreamInfo) -> None:
        self.threads.add(threading.current_thread().name)
        self.info = info

    def write(self, frame: Frame) -> None:
        self.threads.add(threading.current_thread().name)
        self.frames.append(frame)

    def close(self) -> None:
        self.closed = True


class SlowConfig(BasePipelineConfig):
    pipeline_id = "test-slow"
    pipeline_name = "Slow"
    pipeline_description = "Sleeps, then adds a runtime offset to every pixel (test only)."
    usage = [UsageType.MAIN]
    osc_name = "slow"
    delay_s: float = Field(default=0.0, ge=0.0, le=1.0, description="sleep per call",
                           json_schema_extra=ui_field_config(order=1, label="Delay"))
    offset: float = Field(default=0.0, ge=0.0, le=1.0, description="added to every pixel",
                          json_schema_extra=ui_field_config(order=2, label="Offset"))
    size: int = Field(default=1, ge=1, le=8, description="load-time dummy",
                      json_schema_extra=ui_field_config(order=3, label="Size", is_load_param=True))


class SlowStage(Pipeline):
    """Test stage (not registered): sleeps ``delay_s`` and adds ``offset``; ``size`` is load-time."""

    fail_next_load = False
    calls: list[dict[str, Any]]

    @classmethod
    def get_config_class(cls):
        return SlowConfig

    def __init__(self, device=None, size: int = 1, **kwargs):
        super().__init__(device)
        if SlowStage.fail_next_load:
            SlowStage.fail_next_load = False
            raise RuntimeError("simulated load failure")
        self.size = size
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append({k: v for k, v in kwargs.items() if k not in ("video", "source_video")})
        time.sleep(kwargs.get("delay_s", 0.0))
        video = stack_video(kwargs.get("video"))
        return {"video": (video + kwargs.get("offset", 0.0)).clamp_(0, 1)}


def slow_chain(**params: Any) -> Chain:
    config = SlowConfig(**params)
    return Chain([StageSlot("slow", SlowStage(**config.load_params()), config)])


def numbered_images(n: int, h: int = 8, w: int = 8) -> list[np.ndarray]:
    """n frames whose pixels all equal their index (mod 256), to check order."""
    return [np.full((h, w, 3), i % 256, np.uint8) for i in range(n)]


def wait_for(condition, timeout: float = 30.0) -> bool:
    """Poll ``condition()`` every 5 ms until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False
