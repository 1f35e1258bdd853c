"""OSC value coercion: what TouchDesigner really sends becomes the field's type, or is refused."""

from __future__ import annotations

import math
from typing import Literal, Optional

import numpy as np
import pytest
from pydantic import Field

from bridge.chain import Chain
from bridge.engine import Engine
from bridge.frames import Frame
from bridge.osc.controls import Controls
from bridge.osc.values import ValueRejected, coerce, from_float32
from bridge.stages.alpha import PersonAlphaConfig
from bridge.stages.base import BasePipelineConfig
from tests.helpers import ArraySource, ListSink, numbered_images


class ListConfig(BasePipelineConfig):
    pipeline_id = "test-list"
    osc_name = "lst"
    t_index_list: list[int] = Field(default=[10, 20])
    seed: Optional[int] = Field(default=None)
    steps: Literal[1, 2, 4] = Field(default=1)


def f32(x: float) -> float:
    """``x`` as it arrives in an OSC ``f`` argument (float32)."""
    return float(np.float32(x))


@pytest.mark.parametrize(
    "param, args, expected",
    [
        ("threshold", (f32(0.65),), 0.65),  # float32 read back as the decimal that was sent
        ("threshold", (1,), 1.0),
        ("threshold", ("0.25",), 0.25),
        ("refine_eps", (f32(0.1),), 0.1),  # a slider's maximum stays in range
        ("refine_radius", (6.0,), 6),  # CHOPs send ints as floats
        ("refine_radius", ("12",), 12),
        ("refine", (1.0,), True),  # CHOP toggle
        ("refine", (0.0,), False),
        ("refine", (True,), True),  # OSC T
        ("refine", (False,), False),  # OSC F
        ("refine", ("true",), True),
        ("refine", ("False",), False),
        ("refine", ("on",), True),
        ("alpha_mode", ("premultiplied",), "premultiplied"),
        ("alpha_mode", (1.0,), "premultiplied"),  # a menu's index from a CHOP
        ("alpha_mode", (0,), "straight"),
    ],
)
def test_what_td_sends_is_coerced(param, args, expected):
    value = coerce(PersonAlphaConfig, param, args)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    "param, args, reason",
    [
        ("threshold", ("abc",), "expects a number"),
        ("threshold", (True,), "expects a number"),
        ("threshold", (b"\x00\x01",), "blob"),
        ("threshold", (math.nan,), "finite"),
        ("threshold", (math.inf,), "finite"),
        ("threshold", (), "one value, got none"),
        ("threshold", (0.1, 0.2), "one value, got 2"),
        ("refine_radius", (6.4,), "whole number"),
        ("refine_radius", ("six",), "whole number"),
        ("refine", (0.5,), "toggle"),
        ("refine", (2,), "toggle"),
        ("refine", ("maybe",), "toggle"),
        ("alpha_mode", ("transparent",), "straight | premultiplied"),
        ("alpha_mode", (2,), "straight | premultiplied"),
        ("alpha_mode", (0.5,), "straight | premultiplied"),
    ],
)
def test_wrong_types_are_refused_with_what_is_expected(param, args, reason):
    with pytest.raises(ValueRejected, match=reason):
        coerce(PersonAlphaConfig, param, args)


class Replies:
    """Records what the controls would send."""

    def __init__(self):
        self.sent = []

    def ack(self, address, value=None):
        self.sent.append(("ack", address, value))

    def error(self, address, reason):
        self.sent.append(("error", address, reason))


def test_out_of_range_is_rejected_not_clamped_and_the_stage_keeps_its_value():
    chain = Chain.from_spec([("alpha", {"threshold": 0.4})])
    engine = Engine(ArraySource(numbered_images(2)), chain, ListSink())
    replies = Replies()
    controls = Controls(engine, replies)
    controls.param("alpha", "threshold", (f32(1.5),))
    controls.param("alpha", "refine_radius", (99.0,))
    assert replies.sent[0][:2] == ("error", "/bridge/alpha/threshold")
    assert "less than or equal to 1" in replies.sent[0][2]
    assert replies.sent[1][0] == "error" and "less than or equal to 32" in replies.sent[1][2]
    chain.process(Frame(numbered_images(1, 32, 32)[0], 0, 0.0))
    assert chain.slot("alpha").config.threshold == 0.4 and chain.slot("alpha").runtime["threshold"] == 0.4
    assert chain.slot("alpha").config.refine_radius == PersonAlphaConfig.model_fields["refine_radius"].default
    controls.param("alpha", "threshold", (f32(1.0),))  # the end of the range is accepted
    assert replies.sent[-1] == ("ack", "/bridge/alpha/threshold", 1.0)


def test_lists_optionals_and_int_choices():
    assert coerce(ListConfig, "t_index_list", (10, 25.0, 40)) == [10, 25, 40]
    assert coerce(ListConfig, "t_index_list", ("10, 25, 40",)) == [10, 25, 40]
    with pytest.raises(ValueRejected, match="whole number"):
        coerce(ListConfig, "t_index_list", (10, 2.5))
    assert coerce(ListConfig, "seed", (None,)) is None
    assert coerce(ListConfig, "seed", ("none",)) is None
    assert coerce(ListConfig, "seed", (7.0,)) == 7
    assert coerce(ListConfig, "steps", (4.0,)) == 4
    assert coerce(ListConfig, "steps", ("2",)) == 2
    with pytest.raises(ValueRejected):
        coerce(ListConfig, "steps", (3,))


def test_from_float32_leaves_doubles_alone():
    assert from_float32(f32(0.3)) == 0.3
    assert from_float32(0.3000000000000001) == 0.3000000000000001
