"""The engine's assembly line: stages run side by side, frames keep their order, none twice.

Stand-in stages of known cost (sleeps) take the place of pose -> avatar -> alpha. The
concurrency tests are deterministic (a barrier that only opens when three stages work on
three frames at once); the one throughput test compares the line with a reference loop
of the same sleeps run at the same time in the same process, as a ratio, so a loaded
machine slows both alike (sleeps give the CPU away).
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import pytest
from pydantic import Field

from bridge.chain import Chain, StageSlot
from bridge.engine import Engine, _Reorder
from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, stack_video, ui_field_config
from tests.helpers import ArraySource, ListSink, numbered_images, wait_for


class StandInConfig(BasePipelineConfig):
    pipeline_id = "test-stand-in"
    pipeline_name = "Stand-in"
    pipeline_description = "Sleeps delay_s, then adds offset (test only)."
    usage = [UsageType.MAIN]
    osc_name = "stand-in"
    delay_s: float = Field(default=0.0, ge=0.0, le=1.0, json_schema_extra=ui_field_config(order=1))
    offset: float = Field(default=0.0, ge=0.0, le=1.0, json_schema_extra=ui_field_config(order=2))


class StatelessConfig(StandInConfig):
    max_workers: ClassVar[int] = 2


class StandIn(Pipeline):
    """Records (frame number, thread, params) of every call; optional hook per frame."""

    def __init__(self, config: type[BasePipelineConfig] = StandInConfig, hook=None, post=None, fail_on: tuple[int, ...] = ()):
        super().__init__()
        self.config_cls, self.hook, self.post, self.fail_on = config, hook, post, fail_on
        self.calls: list[tuple[int, str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def get_config_class(self):  # type: ignore[override]
        return self.config_cls

    def __call__(self, **kwargs):
        number = int(kwargs["source_video"][0][0, 0, 0, 0])
        with self.lock:
            self.calls.append((number, threading.current_thread().name,
                               {k: v for k, v in kwargs.items() if k not in ("video", "source_video")}))
        if self.hook is not None:
            self.hook(number)
        time.sleep(kwargs.get("delay_s", 0.0))
        if number in self.fail_on:
            raise RuntimeError(f"bad frame {number}")
        video = stack_video(kwargs["video"])
        if self.post is not None:
            self.post(number)
        return {"video": (video + kwargs.get("offset", 0.0)).clamp_(0, 1)}

    def numbers(self) -> list[int]:
        with self.lock:
            return [n for n, _, _ in self.calls]


def line(*stages: tuple[str, StandIn, dict[str, Any]]) -> Chain:
    return Chain([StageSlot(name, stage, stage.config_cls(**params)) for name, stage, params in stages])


def run(chain: Chain, frames: int, **engine_args) -> ListSink:
    sink = ListSink()
    stats = Engine(ArraySource(numbered_images(frames)), chain, sink, **engine_args).run()
    assert stats.frames_out == frames
    return sink


def test_three_stages_work_on_three_frames_at_once():
    # pose of frame 2, avatar of frame 1 and alpha of frame 0 must be in their calls together:
    # the barrier opens only then (a serial chain would break it after the timeout)
    barrier = threading.Barrier(3, timeout=60)
    met = []

    def at(frame):
        def hook(number):
            if number == frame:
                barrier.wait()
                met.append(frame)
        return hook

    pose, avatar, alpha = StandIn(hook=at(2)), StandIn(hook=at(1)), StandIn(hook=at(0))
    sink = run(line(("pose", pose, {}), ("avatar", avatar, {}), ("alpha", alpha, {})), 6)
    assert sorted(met) == [0, 1, 2]
    assert [f.index for f in sink.frames] == list(range(6))


def test_the_serial_engine_does_not_overlap_stages():
    # the same barrier with pipelined=False: the chain runs on one thread, so it breaks
    barrier = threading.Barrier(2, timeout=0.5)
    broken = []

    def hook(number):
        if number == 1:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                broken.append(number)

    first, second = StandIn(hook=hook), StandIn(hook=lambda n: hook(n + 1))  # second waits at frame 0
    run(line(("a", first, {}), ("b", second, {})), 3, pipelined=False)
    assert broken, "stages overlapped on the one-thread chain"


def test_every_stage_sees_every_frame_once_in_order_and_the_output_keeps_the_order():
    stages = [StandIn(), StandIn(StatelessConfig), StandIn()]
    sink = run(line(("a", stages[0], {"delay_s": 0.002}), ("b", stages[1], {"delay_s": 0.004}), ("c", stages[2], {})), 50)
    assert [f.index for f in sink.frames] == list(range(50))
    assert [int(f.image[0, 0, 0]) for f in sink.frames] == list(range(50))  # each frame's own pixels
    assert stages[0].numbers() == list(range(50)) and stages[2].numbers() == list(range(50))
    assert sorted(stages[1].numbers()) == list(range(50))  # two workers: each frame once
    for stage, threads in ((stages[0], {"bridge-stage-a"}), (stages[2], {"bridge-stage-c"})):
        assert {t for _, t, _ in stage.calls} == threads  # stateful: one worker


def test_a_stateless_stage_runs_frames_on_several_workers_and_they_leave_in_order():
    # frame 0 waits until frame 1 has gone through the same stage: only a second worker can
    # take frame 1 meanwhile, and frame 1 finishes first; the sink still gets 0, 1, 2, ...
    done_1 = threading.Event()
    waited = []
    stage = StandIn(StatelessConfig, hook=lambda n: waited.append(done_1.wait(10)) if n == 0 else None,
                    post=lambda n: done_1.set() if n == 1 else None)
    after = StandIn()
    sink = run(line(("free", stage, {}), ("after", after, {})), 8)
    assert waited == [True]
    assert [f.index for f in sink.frames] == list(range(8))
    assert after.numbers() == list(range(8))
    assert {t for _, t, _ in stage.calls} == {"bridge-stage-free-1", "bridge-stage-free-2"}


def test_no_stage_works_ahead_of_the_line():
    # while the second stage is stuck on frame 0, the first may finish frame 1 (waiting to
    # be taken) but must not go on: frames do not pile up between stages (latency stays
    # bounded: a live frame is picked up only when the line can take it)
    seen = []
    first = StandIn()

    def stuck(number):
        if number == 0:
            wait_for(lambda: len(first.calls) > 2, 0.5)  # returns at once if the first stage runs ahead
            seen.append(len(first.calls))

    run(line(("a", first, {}), ("b", StandIn(hook=stuck), {})), 20)
    assert seen and seen[0] <= 2


def test_a_stage_that_needs_several_frames_keeps_one_worker():
    class Window(StandIn):
        def prepare(self, **kwargs):
            from bridge.stages.base import Requirements
            return Requirements(input_size=3)

    chain = line(("window", Window(StatelessConfig), {}))
    assert chain.workers(0) == 1
    assert line(("free", StandIn(StatelessConfig), {})).workers(0) == 2


def test_reorder_emits_in_sequence_whatever_the_arrival_order():
    out = []
    reorder = _Reorder(out.append)
    for seq in (2, 0, 3, 1, 5):
        reorder.deliver(seq, seq)
    assert out == [0, 1, 2, 3]
    reorder.flush()
    assert out == [0, 1, 2, 3, 5]


def test_a_failing_middle_stage_sends_the_input_and_the_stream_recovers():
    a, b, c = StandIn(), StandIn(fail_on=(3,)), StandIn()
    chain = line(("a", a, {"offset": 0.2}), ("b", b, {}), ("c", c, {}))
    events = []
    sink = ListSink()
    engine = Engine(ArraySource(numbered_images(8)), chain, sink)
    engine_event = chain.on_event
    chain.on_event = lambda e, d: (events.append((e, d)), engine_event(e, d))
    stats = engine.run()
    assert stats.frames_out == 8 and [f.index for f in sink.frames] == list(range(8))
    failed = sink.frames[3].image
    assert (failed[..., :3] == 3).all() and (failed[..., 3] == 255).all()  # the input, opaque
    assert all(int(f.image[0, 0, 0]) == f.index + 51 for f in sink.frames if f.index != 3)
    assert c.numbers() == [n for n in range(8) if n != 3]  # later stages skip the failed frame
    names = [e for e, _ in events]
    assert names.index("error") < names.index("recovered")
    assert ("error", "stage b failed on frame 3: bad frame 3") in events
    assert stats.state == "stopped" and stats.last_error is None


class HookSink(ListSink):
    def __init__(self, hooks):
        super().__init__()
        self.hooks = hooks

    def write(self, frame):
        super().write(frame)
        if frame.index in self.hooks:
            self.hooks[frame.index]()


def test_bypass_and_live_parameters_on_a_running_line():
    holder: dict[str, Chain] = {}

    def at_20(number):
        if number == 20:  # during stage a's call on frame 20
            holder["chain"].set_param("b", "offset", 0.2)
            holder["chain"].set_bypass(True)

    a, b = StandIn(hook=at_20), StandIn()
    chain = holder["chain"] = line(("a", a, {"delay_s": 0.001}), ("b", b, {}))
    sink = HookSink({30: lambda: chain.set_bypass(False)})
    stats = Engine(ArraySource(numbered_images(120)), chain, sink).run()
    assert stats.frames_out == 120 and [f.index for f in sink.frames] == list(range(120))
    processed = b.numbers()
    assert processed == sorted(processed) and processed[:20] == list(range(20))
    assert not set(range(21, 31)) & set(processed)  # entered while bypassed: not processed
    assert set(range(60, 120)) <= set(processed)  # bypass off: processed again
    for f in sink.frames:
        if f.index in processed:  # the new offset from frame 20 on (19 may see it: set mid-frame)
            expected = {f.index + 51} if f.index >= 20 else ({f.index} if f.index < 19 else {19, 70})
            assert int(f.image[0, 0, 0]) in expected, f.index
        else:  # bypassed: the input, opaque
            assert (f.image[..., :3] == f.index).all() and (f.image[..., 3] == 255).all()
    offsets = [params["offset"] for n, _, params in b.calls]
    assert set(offsets[processed.index(60):]) == {0.2}


def test_a_background_reload_swaps_the_stage_between_frames_without_losing_any():
    from tests.helpers import SlowConfig, SlowStage

    events = []
    holder: dict[str, Chain] = {}

    def reload_at_10(number):
        if number == 10:
            holder["chain"].reload("slow", {"size": 3}, wait=True)

    chain = holder["chain"] = Chain([StageSlot("a", StandIn(hook=reload_at_10), StandInConfig()),
                                     StageSlot("slow", SlowStage(), SlowConfig(offset=0.2))])
    old = chain.slots[1].stage
    sink = ListSink()
    engine = Engine(ArraySource(numbered_images(40)), chain, sink)
    engine_event = chain.on_event
    chain.on_event = lambda e, d: (events.append(e), engine_event(e, d))
    stats = engine.run()
    new = chain.slots[1].stage
    assert new is not old and new.size == 3 and chain.slots[1].config.offset == pytest.approx(0.2)
    assert stats.frames_out == 40 and [f.index for f in sink.frames] == list(range(40))
    assert len(old.calls) + len(new.calls) == 40 and len(new.calls) > 0  # each frame through one of them
    assert all(int(f.image[0, 0, 0]) == f.index + 51 for f in sink.frames)  # runtime value kept across the swap
    assert events.index("loading") < events.index("loaded")


def test_a_preset_switched_on_a_running_line_runs_all_its_stages_whatever_their_number():
    # the line is laid out for the first chain (a stateless stage on 2 workers, then one
    # more stage); a switch to 3 stages, then to 1, lands between frames: every frame goes
    # through every stage of the chain it entered, in order, none twice, and a stage that
    # allows one worker never runs two frames at once on the 2-worker station
    busy, most = [0], [0]
    lock = threading.Lock()

    def enter(number):
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])

    def leave(number):
        with lock:
            busy[0] -= 1

    first = line(("s0", StandIn(StatelessConfig), {"delay_s": 0.002}), ("s1", StandIn(), {}))
    three = [StandIn(hook=enter, post=leave), StandIn(), StandIn()]
    bigger = line(("b0", three[0], {"delay_s": 0.002, "offset": 0.2}), ("b1", three[1], {}), ("b2", three[2], {}))
    one = StandIn()
    smaller = line(("c0", one, {"offset": 0.4}))
    engine: dict[str, Engine] = {}

    def switch(chain):
        chain.on_event = engine["e"].chain.on_event  # what the OSC controls do (bridge.osc.controls)
        engine["e"].chain = chain

    sink = HookSink({20: lambda: switch(bigger), 60: lambda: switch(smaller)})
    engine["e"] = Engine(ArraySource(numbered_images(120)), first, sink)
    stats = engine["e"].run()
    assert stats.frames_out == 120 and [f.index for f in sink.frames] == list(range(120))
    assert stats.last_error is None
    through_b = set(three[0].numbers())
    assert through_b and set(three[1].numbers()) == through_b == set(three[2].numbers())
    assert all(len(stage.numbers()) == len(set(stage.numbers())) for stage in three + [one])
    for f in sink.frames:
        value = int(f.image[0, 0, 0])
        if f.index in through_b:
            assert value == f.index + 51, f.index
        elif f.index in one.numbers():
            assert value == f.index + 102, f.index
        else:
            assert value == f.index and f.index <= 30, f.index  # the first chain, before the switch
    assert max(through_b) < min(one.numbers()) and len(one.numbers()) >= 50
    assert most[0] == 1, "a one-worker stage ran two frames at once"


class TimedSink(ListSink):
    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def write(self, frame):
        super().write(frame)
        self.times.append(time.perf_counter())

    def interval(self) -> float:
        """Mean seconds between frames out, first to last (the line's steady rate, no filling)."""
        return (self.times[-1] - self.times[0]) / (len(self.times) - 1)


def test_assembly_line_throughput_is_set_by_the_slowest_stage():
    """Stages of 40/60/20 ms (pose, avatar, alpha stand-ins): the line must deliver a frame
    about every 60 ms (the slowest stage), not every 120 ms (the sum, as a serial chain).

    The yardstick is the same engine with the slowest stage alone, run at the same time in
    the same process: 1/max(stage) as this machine delivers it right now, so a loaded
    machine slows both alike. The line's rate must be within 15 % of it."""
    frames = 40
    line_sink, alone_sink = TimedSink(), TimedSink()
    engines = [
        Engine(ArraySource(numbered_images(frames)), line(("pose", StandIn(), {"delay_s": 0.04}),
                                                          ("avatar", StandIn(), {"delay_s": 0.06}),
                                                          ("alpha", StandIn(), {"delay_s": 0.02})), line_sink),
        Engine(ArraySource(numbered_images(frames)), line(("avatar", StandIn(), {"delay_s": 0.06})), alone_sink),
    ]
    for engine in engines:
        engine.start()
    for engine in engines:
        engine.join(60)
    assert [f.index for f in line_sink.frames] == list(range(frames))
    assert alone_sink.interval() >= 0.06
    ratio = line_sink.interval() / alone_sink.interval()
    assert ratio <= 1.15, (f"the line gave a frame every {line_sink.interval() * 1000:.1f} ms, the slowest stage alone "
                           f"every {alone_sink.interval() * 1000:.1f} ms (serial: about twice that)")
