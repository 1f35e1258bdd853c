"""Engine: order and completeness for files, latest-frame-wins for live sources, stats, threads."""

from __future__ import annotations

from bridge.engine import BlockingHandoff, Engine, LatestSlot
from tests.helpers import ArraySource, ListSink, SlowStage, numbered_images, slow_chain, wait_for


def test_file_source_gives_every_frame_in_order_with_back_pressure():
    images = numbered_images(40)
    sink = ListSink()
    engine = Engine(ArraySource(images), slow_chain(delay_s=0.005), sink)
    stats = engine.run()
    assert [f.index for f in sink.frames] == list(range(40))
    assert [int(f.image[0, 0, 0]) for f in sink.frames] == [i % 256 for i in range(40)]
    assert stats.frames_in == stats.frames_out == 40 and stats.dropped == 0
    assert sink.frames[0].image.shape == (8, 8, 4) and (sink.frames[0].image[..., 3] == 255).all()
    assert sink.closed and stats.state == "stopped"


def test_live_source_drops_old_frames_instead_of_queueing(monkeypatch):
    images = numbered_images(60)
    sink = ListSink()
    source = ArraySource(images, live=True)
    original = SlowStage.__call__

    def busy_until_the_camera_is_done(stage, **kwargs):
        # the first frame's stage call lasts until the camera has delivered all 60 frames:
        # the ones in between must be dropped, whatever the machine's speed
        assert wait_for(lambda: source.pos == len(images), 60.0)
        return original(stage, **kwargs)

    monkeypatch.setattr(SlowStage, "__call__", busy_until_the_camera_is_done)
    stats = Engine(source, slow_chain(), sink).run()
    indices = [f.index for f in sink.frames]
    assert indices == sorted(indices)  # dropped, never reordered
    assert indices[-1] == 59  # the newest frame wins
    assert len(indices) <= 2  # the frame being processed, then the newest: nothing queued up behind the busy stage
    assert stats.dropped == 60 - len(indices) and stats.frames_out + stats.dropped == stats.frames_in == 60


def test_stats_fps_stage_ms_latency():
    sink = ListSink()
    engine = Engine(ArraySource(numbered_images(30)), slow_chain(delay_s=0.01), sink)
    stats = engine.run()
    # units, not speed: the stage sleeps 10 ms a frame, so its time is at least that (in ms, not s);
    # fps is measured (no upper bound: a loaded machine may hand the sink a few frames at once)
    assert stats.stage_ms["slow"] >= 9.5
    assert stats.fps > 0.0
    assert stats.latency_ms >= stats.stage_ms["slow"]
    snap = stats.snapshot()
    assert set(snap) >= {"state", "fps", "stage_ms", "latency_ms", "dropped", "frames_in", "frames_out"}


def test_max_frames_and_loop():
    sink = ListSink()
    engine = Engine(ArraySource(numbered_images(5)), slow_chain(), sink, max_frames=12, loop=True)
    stats = engine.run()
    assert stats.frames_out == 12
    assert [f.index for f in sink.frames] == list(range(12))  # a looping file keeps counting
    assert [int(f.image[0, 0, 0]) for f in sink.frames] == [i % 5 for i in range(12)]


def test_source_and_sink_calls_stay_on_their_own_threads():
    source, sink = ArraySource(numbered_images(3)), ListSink()
    Engine(source, slow_chain(), sink).run()
    assert source.threads == {"bridge-source"}
    assert sink.threads == {"bridge-sink"}


def test_stop_ends_a_live_stream():
    source = ArraySource(numbered_images(100_000), live=True, interval_s=0.001)
    engine = Engine(source, slow_chain(), ListSink())
    engine.start()
    assert wait_for(lambda: engine.stats.frames_out > 0, 60.0)
    engine.stop()
    stats = engine.join(timeout=60)
    assert not engine.running and stats.frames_out > 0 and stats.state == "stopped"


def test_handoffs():
    slot = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.get(0.1) == 4 and slot.dropped == 4
    queue = BlockingHandoff(2)
    queue.put(1)
    queue.put(2)
    assert queue.get(0.1) == 1 and queue.get(0.1) == 2


def test_a_bypassed_stage_keeps_the_error_state():
    from bridge.chain import Chain, StageSlot, UnloadedStage
    from tests.helpers import SlowConfig, SlowStage

    chain = Chain([StageSlot("slow", UnloadedStage(SlowStage, "model missing: run models fetch"), SlowConfig())])
    sink = ListSink()
    engine = Engine(ArraySource(numbered_images(5)), chain, sink)
    engine.clear_error()  # e.g. after an accepted OSC message
    assert "model missing" in engine.stats.last_error
    stats = engine.run()
    assert stats.frames_out == 5  # the stream goes on through the bypassed slot
    assert "slow bypassed: model missing" in stats.last_error


def test_a_stage_failing_on_some_frames_reports_then_returns_to_live():
    from tests.helpers import SlowStage

    class Flaky(SlowStage):
        def __call__(self, **kwargs):
            self.n = getattr(self, "n", 0) + 1
            if self.n in (3, 4):
                raise RuntimeError("bad frame")
            return super().__call__(**kwargs)

    chain = slow_chain()
    chain.slots[0].stage = Flaky()
    states = []
    sink = ListSink()
    engine = Engine(ArraySource(numbered_images(10), interval_s=0.01), chain, sink,
                    on_status=lambda stats: states.append((stats.state, stats.last_error)))
    stats = engine.run()
    assert stats.frames_out == 10  # the failed frames went out as the input, opaque
    assert ("error", "stage slow failed on frame 2: bad frame") in states
    error_at = states.index(("error", "stage slow failed on frame 2: bad frame"))
    assert ("live", None) in states[error_at:]  # back to live once frames go through again
