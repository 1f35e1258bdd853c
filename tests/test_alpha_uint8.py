"""The alpha stage's uint8 path (the daemon's ``keep_uint8=True``): same bytes as the float path.

The chain passes ``keep_uint8=True``; with uint8 input frames the stage returns a finished
(T, H, W, 4) uint8 RGBA frame and a (T, H, W, 1) uint8 matte, made with OpenCV, and never a
float image. Scope calls without ``keep_uint8`` and keeps the float contract.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bridge.chain import to_rgba
from bridge.stages.alpha import PersonAlphaStage


@pytest.fixture(scope="module")
def stage():
    return PersonAlphaStage()


@pytest.fixture(scope="module")
def frames(carphone_frames):
    # real frames at a common stream size; frame 40 and 41 move, so temporal smoothing works
    return [cv2.resize(f, (320, 240), interpolation=cv2.INTER_CUBIC) for f in carphone_frames[40:43]]


def _run(stage, frames, **params):
    stage.reset()
    return [stage(video=[torch.from_numpy(f)[None]], **params) for f in frames]


@pytest.mark.parametrize("mode", ["straight", "premultiplied"])
def test_uint8_path_gives_the_float_paths_rgba(stage, frames, mode):
    floats = _run(stage, frames, alpha_mode=mode)
    bytes_ = _run(stage, frames, alpha_mode=mode, keep_uint8=True)
    for f, b, rgb in zip(floats, bytes_, frames):
        video, alpha = b["video"], b["alpha"]
        assert video.dtype == torch.uint8 and tuple(video.shape) == (1, 240, 320, 4)
        assert alpha.dtype == torch.uint8 and tuple(alpha.shape) == (1, 240, 320, 1)
        expected = to_rgba(f["video"][0], f["alpha"][0])  # what the chain made of the float output
        got = to_rgba(video[0], alpha[0])
        assert got is not None and np.shares_memory(got, video.numpy()), "a 4-channel uint8 frame goes out as it is"
        a = f["alpha"][0, ..., 0].numpy()
        assert np.array_equal(alpha[0, ..., 0].numpy(), cv2.convertScaleAbs(a, alpha=255.0)), "alpha = round(255 a)"
        assert np.array_equal(got[..., 3], expected[..., 3])
        assert 0.05 < (got[..., 3] > 127).mean() < 0.95, "a real matte, not all or nothing"
        diff = np.abs(got[..., :3].astype(int) - expected[..., :3].astype(int))
        if mode == "straight":
            assert np.array_equal(got[..., :3], rgb), "straight RGB is the input's own bytes"
            assert diff.max() == 0
        else:
            assert diff.max() <= 1, f"premultiplied RGB within one level, got {diff.max()}"
            assert (got[..., :3][got[..., 3] == 0] == 0).all(), "transparent pixels are black when premultiplied"


def test_float_input_or_no_flag_keeps_the_float_contract(stage, frames):
    frame = frames[0]
    for kwargs in ({"keep_uint8": False}, {}, {"keep_uint8": True, "float_input": True}):
        video = torch.from_numpy(frame)[None]
        if kwargs.pop("float_input", False):
            video = video.float()
        stage.reset()
        out = stage(video=[video], **kwargs)
        assert out["video"].dtype == torch.float32 and out["video"].shape[-1] == 3
        assert out["alpha"].dtype == torch.float32 and float(out["video"].max()) <= 1.0


def test_uint8_path_segments_the_input_frame_when_told(stage, frames):
    # alpha_source="input": the matte comes from source_video, the colour from video
    picture = np.full_like(frames[0], 90)  # a flat grey picture (e.g. a main stage's output)
    out = stage(video=[torch.from_numpy(picture)[None]], source_video=[torch.from_numpy(frames[0])[None]],
                alpha_source="input", keep_uint8=True)
    rgba = out["video"][0].numpy()
    assert (rgba[..., :3] == 90).all()
    assert 0.05 < (rgba[..., 3] > 127).mean() < 0.95


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (40, 1), (2, 2), (3, 500)])
def test_a_frame_of_any_size_down_to_one_pixel_gets_a_matte_of_its_size(stage, shape):
    # a source that sends a degenerate frame (a 1x1 placeholder, a one-line strip) must not fail
    # the stage: the frame would go out opaque and the error repeat on every frame
    h, w = shape
    frame = np.random.default_rng(h * 1000 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    stage.reset()
    for keep in (True, False):
        out = stage(video=[torch.from_numpy(frame)[None]], keep_uint8=keep)
        assert out["video"].shape[1:3] == (h, w)
        assert out["alpha"].shape == (1, h, w, 1)
    if min(shape) == 1:
        assert int(out["alpha"].count_nonzero()) == 0  # nobody fits in one pixel: transparent
