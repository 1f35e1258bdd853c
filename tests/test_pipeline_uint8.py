"""The daemon's uint8 path: frames stay uint8 through stages that do not change pixels.

The chain passes ``keep_uint8=True``; stages that pass frames on return uint8 and the
chain hands that on without the x255 / /255 round trip. What a user sees must not change:
the output bytes equal the float contract's (Scope's) for the same frames; premultiplied
alpha is within one level. Scope's plugin still gets floats.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import torch

from bridge.chain import Chain, StageSlot, to_rgba
from bridge.frames import Frame, compose_rgba
from bridge.stages.base import Pipeline, stack_video
from bridge.stages.passthrough import PassthroughConfig, PassthroughStage
from tests.test_pipeline import StandInConfig
from tests.test_scope_plugin import scope  # noqa: F401  (fixture: Scope's stand-in modules)


def frames(n: int = 4, h: int = 36, w: int = 44) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


class FloatContract(Pipeline):
    """Runs a stage as Scope does (no ``keep_uint8``): the float32 [0, 1] path of the chain."""

    def __init__(self, stage: Pipeline) -> None:
        super().__init__()
        self.stage = stage

    def prepare(self, **kwargs: Any):
        return self.stage.prepare(**kwargs)

    def __call__(self, **kwargs: Any):
        out = self.stage(**{**kwargs, "keep_uint8": False})
        assert out["video"].dtype == torch.float32
        return out

    def reset(self) -> None:
        self.stage.reset()


class Recorder(Pipeline):
    """Keeps the ``video`` it was given; returns it as a uint8 passthrough."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def __call__(self, **kwargs: Any):
        self.inputs.append(kwargs["video"][-1])
        return {"video": kwargs["video"][-1]} if kwargs.get("keep_uint8") else {"video": stack_video(kwargs["video"])}


class MakesRGBA(Pipeline):
    """Returns a finished uint8 RGBA frame (alpha = red channel) and, to be ignored, a float matte."""

    def __call__(self, **kwargs: Any):
        rgb = kwargs["video"][-1][0].numpy()
        rgba = compose_rgba(rgb, rgb[..., 0].copy(), premultiplied=True)
        return {"video": torch.from_numpy(rgba)[None], "alpha": torch.zeros(1, *rgb.shape[:2], 1)}


def frame(image: np.ndarray, index: int = 0) -> Frame:
    return Frame(image, index, time.perf_counter())


def outputs(chain: Chain, images: list[np.ndarray]) -> list[np.ndarray]:
    return [chain.process(frame(image, i)).image for i, image in enumerate(images)]


def test_passthrough_returns_its_uint8_input_itself_only_when_allowed():
    stage = PassthroughStage()
    video = [torch.from_numpy(frames(1)[0])[None]]
    kept = stage(video=video, keep_uint8=True)["video"]
    assert kept.dtype == torch.uint8 and kept.data_ptr() == video[0].data_ptr()
    scope = stage(video=video)["video"]
    assert scope.dtype == torch.float32 and torch.allclose(scope, video[0].float() / 255.0, atol=1e-6)
    floats = stage(video=[video[0].float()], keep_uint8=True)["video"]  # float input: float contract
    assert floats.dtype == torch.float32


def test_passthrough_chain_output_equals_the_float_path_byte_for_byte():
    images = frames()
    uint8 = outputs(Chain.from_spec([("passthrough", {}), ("passthrough", {})]), images)
    config = PassthroughConfig()
    floats = outputs(Chain([StageSlot("a", FloatContract(PassthroughStage()), config),
                            StageSlot("b", FloatContract(PassthroughStage()), config)]), images)
    for a, b, image in zip(uint8, floats, images):
        assert a.dtype == np.uint8 and a.shape == image.shape[:2] + (4,)
        assert np.array_equal(a, b) and np.array_equal(a[..., :3], image) and (a[..., 3] == 255).all()


def test_the_chain_hands_uint8_on_without_a_round_trip():
    recorder = Recorder()
    chain = Chain([StageSlot("pass", PassthroughStage(), PassthroughConfig()), StageSlot("rec", recorder, StandInConfig())])
    image = frames(1)[0]
    out = chain.process(frame(image))
    (given,) = recorder.inputs
    assert given.dtype == torch.uint8 and given.data_ptr() == image.ctypes.data  # the source's own memory
    assert np.array_equal(out.image[..., :3], image)


def test_a_finished_uint8_rgba_frame_goes_to_the_sink_as_it_is():
    image = frames(1)[0]
    out = Chain([StageSlot("rgba", MakesRGBA(), StandInConfig())]).process(frame(image))
    expected = compose_rgba(image, image[..., 0].copy(), premultiplied=True)
    assert np.array_equal(out.image, expected)  # the float matte beside it is ignored


@pytest.mark.parametrize("alpha_kind", ["none", "uint8", "float"])
def test_to_rgba_builds_the_same_bytes_from_uint8_and_float(alpha_kind):
    image = frames(1)[0]
    rng = np.random.default_rng(3)
    matte = rng.random(image.shape[:2] + (1,), dtype=np.float32)
    matte8 = np.clip(np.rint(matte * 255.0), 0, 255).astype(np.uint8)
    alpha = {"none": None, "uint8": torch.from_numpy(matte8), "float": torch.from_numpy(matte)}[alpha_kind]
    from_uint8 = to_rgba(torch.from_numpy(image), alpha)
    from_float = to_rgba(torch.from_numpy(image).float() / 255.0, None if alpha is None else torch.from_numpy(matte))
    assert np.array_equal(from_uint8, from_float)
    assert np.array_equal(from_uint8[..., :3], image)
    assert np.array_equal(from_uint8[..., 3:], np.full_like(matte8, 255) if alpha is None else matte8)


def test_to_rgba_returns_a_uint8_rgba_frame_without_copying():
    rgba = torch.from_numpy(np.ascontiguousarray(np.dstack([frames(1)[0], frames(1)[0][..., :1]])))
    assert to_rgba(rgba, None).ctypes.data == rgba.data_ptr()


def test_compose_rgba_premultiplies_within_one_level_of_the_float_product():
    image = frames(1)[0]
    matte = np.random.default_rng(5).random(image.shape[:2], dtype=np.float32)
    matte8 = np.clip(np.rint(matte * 255.0), 0, 255).astype(np.uint8)
    rgba = compose_rgba(image, matte8, premultiplied=True)
    product = np.clip(np.rint(image.astype(np.float32) * matte[..., None]), 0, 255)
    assert np.abs(rgba[..., :3].astype(int) - product.astype(int)).max() <= 1
    assert np.array_equal(rgba[..., 3], matte8)
    assert np.array_equal(compose_rgba(image, matte8)[..., :3], image)  # straight: colour untouched


@pytest.mark.parametrize("mode", ["straight", "premultiplied"])
def test_alpha_chain_output_unchanged_by_the_uint8_path(carphone_frames, mode):
    """The person-alpha stage through the daemon's chain (keep_uint8) against the same stage
    on the float contract, same frames: straight bytes equal, premultiplied within 1 level."""
    from bridge.stages.alpha import PersonAlphaConfig, PersonAlphaStage

    images = carphone_frames[:6]
    params = {"alpha_mode": mode}
    uint8 = outputs(Chain.from_spec([("alpha", params)]), images)
    floats = outputs(Chain([StageSlot("alpha", FloatContract(PersonAlphaStage()), PersonAlphaConfig(**params))]), images)
    for a, b in zip(uint8, floats):
        assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
        if mode == "straight":
            assert np.array_equal(a, b)
        else:
            assert np.array_equal(a[..., 3], b[..., 3])
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert any((a[..., 3] < 255).any() for a in uint8)  # a real matte, not an opaque frame


def test_passthrough_then_alpha_equals_the_float_path(carphone_frames):
    from bridge.stages.alpha import PersonAlphaConfig, PersonAlphaStage

    images = carphone_frames[:4]
    uint8 = outputs(Chain.from_spec([("passthrough", {}), ("alpha", {})]), images)
    floats = outputs(Chain([StageSlot("passthrough", FloatContract(PassthroughStage()), PassthroughConfig()),
                            StageSlot("alpha", FloatContract(PersonAlphaStage()), PersonAlphaConfig())]), images)
    for a, b in zip(uint8, floats):
        assert np.array_equal(a, b)


def test_the_scope_plugin_still_gets_floats_when_a_uint8_path_is_asked_for(scope):
    from bridge.scope_plugin.adapter import _StageAdapter

    class Adapter(_StageAdapter):
        pass

    seen: dict[str, Any] = {}

    class Spy(PassthroughStage):
        def __call__(self, **kwargs):
            seen.update(kwargs)
            return super().__call__(**kwargs)

    adapter = Adapter.__new__(Adapter)
    adapter.stage = Spy()
    adapter.device = torch.device("cpu")
    adapter.stage_params = lambda kwargs: {}  # type: ignore[method-assign]
    adapter._scope_config = PassthroughConfig
    adapter._spec = type("Spec", (), {"matte_output": False, "control_output": False})()
    out = adapter(video=[torch.from_numpy(frames(1)[0])[None]], keep_uint8=True)
    assert seen["keep_uint8"] is False
    assert out["video"].dtype == torch.float32
