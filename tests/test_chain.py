"""Chain: live parameters (validated, coalesced, next frame), bypass, background reloads."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bridge.errors import ConfigError
from bridge.frames import Frame
from tests.helpers import SlowStage, slow_chain


def frame(value: int = 100) -> Frame:
    return Frame(np.full((4, 4, 3), value, np.uint8), 0, time.perf_counter())


def test_runtime_param_applies_on_next_frame_and_coalesces():
    chain = slow_chain()
    assert chain.process(frame()).image[0, 0, 0] == 100
    for value in (0.1, 0.2, 0.3):  # many sets within one frame: last wins
        applied = chain.set_param("slow", "offset", value)
        assert applied == value
    out = chain.process(frame())
    assert abs(int(out.image[0, 0, 0]) - (100 + 0.3 * 255)) <= 1
    stage = chain.slots[0].stage
    assert [c["offset"] for c in stage.calls] == [0.0, 0.3]


def test_bad_values_are_refused_and_never_reach_the_stage():
    chain = slow_chain()
    with pytest.raises(ConfigError, match="offset"):
        chain.set_param("slow", "offset", 7.0)
    with pytest.raises(ConfigError, match="offset"):
        chain.set_param("slow", "offset", "loud")
    with pytest.raises(ConfigError, match="nope"):
        chain.set_param("slow", "nope", 1)
    with pytest.raises(ConfigError, match="no stage"):
        chain.set_param("missing", "offset", 0.1)
    chain.process(frame())
    assert chain.slots[0].stage.calls[-1]["offset"] == 0.0


def test_bypass_sends_input_untouched_with_opaque_alpha():
    chain = slow_chain(offset=0.5)
    chain.set_bypass(True)
    out = chain.process(frame(42))
    assert (out.image[..., :3] == 42).all() and (out.image[..., 3] == 255).all()


def test_load_time_change_reloads_in_background_and_keeps_runtime_values():
    chain = slow_chain()
    chain.set_param("slow", "offset", 0.2)
    old = chain.slots[0].stage
    thread = chain.set_param("slow", "size", 3)
    assert thread == 3
    while chain.loading and not chain._swaps:
        time.sleep(0.01)
    chain.process(frame())
    new = chain.slots[0].stage
    assert new is not old and new.size == 3
    assert chain.slots[0].config.offset == pytest.approx(0.2)


def test_failed_reload_keeps_old_stage_and_reports():
    chain = slow_chain()
    events = []
    chain.on_event = lambda e, d: events.append((e, d))
    old = chain.slots[0].stage
    SlowStage.fail_next_load = True
    chain.reload("slow", {"size": 4}, wait=True)
    chain.process(frame())
    assert chain.slots[0].stage is old and chain.slots[0].config.size == 1
    assert not chain.loading
    assert events[0] == ("loading", "slow")
    assert events[-1][0] == "error" and "simulated load failure" in events[-1][1]


def test_stage_exception_keeps_stream_with_input_frame():
    chain = slow_chain()

    class Boom(SlowStage):
        def __call__(self, **kwargs):
            raise RuntimeError("kaput")

    chain.slots[0].stage = Boom()
    out = chain.process(frame(9))
    assert (out.image[..., :3] == 9).all() and (out.image[..., 3] == 255).all()
    assert "kaput" in chain.last_error
