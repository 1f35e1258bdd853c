"""Matte refinement (bridge/matte.py) on synthetic images whose right answer is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bridge import matte


def disk_scene(size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dark round "person" on a bright wall: (true matte (H, W) float32 0/1, luma (H, W) uint8 with noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    truth = ((yy - 0.47 * size) ** 2 + (xx - 0.52 * size) ** 2 < (0.31 * size) ** 2).astype(np.float32)
    luma = np.clip(np.where(truth > 0, 60.0, 200.0) + rng.normal(0, 3, truth.shape), 0, 255).astype(np.uint8)
    return truth, luma


def test_soft_threshold_is_a_linear_ramp_around_the_threshold():
    mask = np.linspace(0, 1, 101, dtype=np.float32)[None, :]
    alpha = matte.soft_threshold(mask, 0.5, 0.1)
    assert alpha.dtype == np.float32 and alpha.shape == mask.shape
    at = lambda p: float(alpha[0, int(round(p * 100))])  # noqa: E731
    assert at(0.0) == 0.0 and at(0.4) == pytest.approx(0.0, abs=1e-6)
    assert at(0.45) == pytest.approx(0.25, abs=1e-5)
    assert at(0.5) == pytest.approx(0.5, abs=1e-5)
    assert at(0.6) == pytest.approx(1.0, abs=1e-6) and at(1.0) == 1.0
    hard = matte.soft_threshold(mask, 0.3, 0.0)
    assert set(np.unique(hard)) == {0.0, 1.0}
    assert hard[0, 30] == 0.0 and hard[0, 31] == 1.0
    gain, offset = matte.ramp(0.5, 0.1)
    np.testing.assert_allclose(np.clip(gain * mask + offset, 0, 1), alpha, atol=1e-6)


def test_guided_filter_moves_a_blocky_edge_onto_the_image_edge():
    truth, luma = disk_scene()
    # what a segmenter on an 8x coarser grid gives, shown with its blocks (nearest upsampling)
    blocky = cv2.resize(cv2.resize(truth, (12, 12), interpolation=cv2.INTER_AREA), (96, 96), interpolation=cv2.INTER_NEAREST)
    assert matte.iou(blocky, truth) < 0.92
    refined = matte.guided_refine(blocky, luma, radius=4, eps=1e-3)
    assert refined.dtype == np.float32 and refined.shape == truth.shape
    assert 0.0 <= refined.min() and refined.max() <= 1.0
    assert matte.iou(refined, truth) > 0.99, "the matte's edge now follows the image edge"
    alpha = matte.soft_threshold(refined, 0.5, 0.1)  # as the stage does after refining
    assert alpha[truth > 0].mean() > 0.97 and alpha[truth == 0].mean() < 0.03


def test_fast_guided_filter_upsamples_a_low_res_mask_onto_the_full_res_edge():
    truth, luma = disk_scene(seed=1)
    small_mask = cv2.resize(truth, (24, 24), interpolation=cv2.INTER_AREA)  # a 4x coarser segmentation
    small_guide = cv2.resize(luma, (24, 24), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    bilinear = cv2.resize(small_mask, (96, 96), interpolation=cv2.INTER_LINEAR)
    out = np.empty((96, 96), np.float32)
    refined = matte.FastGuidedFilter()(small_mask, small_guide, luma, 1, 1e-3, out=out)
    assert refined is out
    assert matte.iou(bilinear, truth) < 0.99
    assert matte.iou(refined, truth) > 0.995
    # sharp at full resolution: few pixels are neither person nor wall
    assert np.mean((refined > 0.05) & (refined < 0.95)) < 0.5 * np.mean((bilinear > 0.05) & (bilinear < 0.95))


def test_fast_guided_filter_folds_the_soft_threshold_into_its_coefficients():
    truth, full = disk_scene(seed=2)
    guide = cv2.resize(full, (24, 24), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    mask = cv2.GaussianBlur(cv2.resize(truth, (24, 24), interpolation=cv2.INTER_AREA), (0, 0), 1.0)
    gf = matte.FastGuidedFilter()
    plain = gf(mask, guide, full, 2, 1e-3).copy()
    gain, offset = matte.ramp(0.5, 0.1)
    folded = gf(mask, guide, full, 2, 1e-3, gain, offset)
    np.testing.assert_allclose(folded, matte.soft_threshold(plain, 0.5, 0.1), atol=1e-4)


def test_temporal_smoothing_cuts_flicker_on_a_still_noisy_sequence():
    rng = np.random.default_rng(3)
    guide = rng.uniform(0.2, 0.8, (40, 40)).astype(np.float32)
    truth = np.zeros((40, 40), np.float32)
    truth[:, :20] = 1.0
    noisy = [np.clip(truth + rng.normal(0, 0.15, truth.shape), 0, 1).astype(np.float32) for _ in range(30)]
    smoother = matte.TemporalSmoother()
    smoothed = [smoother.update(m, 0.8, guide).copy() for m in noisy]
    assert matte.flicker(smoothed) < 0.4 * matte.flicker(noisy)
    off = matte.TemporalSmoother()
    np.testing.assert_array_equal(off.update(noisy[0], 0.0, guide), noisy[0])
    np.testing.assert_array_equal(off.update(noisy[1], 0.0, guide), noisy[1])


def test_temporal_smoothing_follows_a_moving_edge_without_lag():
    # a person edge moving 3 px a frame: the image moves too, so the gate takes the new mask
    smoother, plain = matte.TemporalSmoother(), matte.TemporalSmoother()
    lag_gated, lag_plain = [], []
    for t in range(12):
        edge = 10 + 3 * t
        mask = (np.arange(64)[None, :] < edge).astype(np.float32).repeat(32, 0)
        guide = np.where(mask > 0, 0.25, 0.75).astype(np.float32)
        gated = smoother.update(mask, 0.8, guide)
        ema = plain.update(mask, 0.8)  # no guide: a plain moving average
        lag_gated.append(matte.iou(gated, mask))
        lag_plain.append(matte.iou(ema, mask))
    assert min(lag_gated) > 0.97
    assert min(lag_plain[3:]) < 0.9, "a plain moving average trails the edge"


def test_temporal_smoother_reset_and_size_change_pass_the_mask_through():
    smoother = matte.TemporalSmoother()
    a = np.zeros((8, 8), np.float32)
    b = np.ones((8, 8), np.float32)
    smoother.update(a, 0.9)
    assert smoother.update(b, 0.9).mean() == pytest.approx(0.1)
    smoother.reset()
    np.testing.assert_array_equal(smoother.update(b, 0.9), b)
    np.testing.assert_array_equal(smoother.update(np.zeros((4, 4), np.float32), 0.9), 0.0)


def test_work_scale_and_downscale():
    assert matte.work_scale(480, 640) == 2
    assert matte.work_scale(1080, 1920) == 6
    assert matte.work_scale(144, 176) == 1
    assert matte.work_scale(480, 640, matte.REFINE_MAX_SIDE) == 4
    image = np.arange(480 * 640 * 3, dtype=np.uint32).reshape(480, 640, 3).astype(np.uint8)
    assert matte.downscale(image, 1) is image
    assert matte.downscale(image, 2).shape == (240, 320, 3)
    assert matte.downscale(image[:479, :639], 2).shape == (239, 319, 3)  # not exact: bilinear


def test_black_bars_are_the_dark_runs_of_rows_and_columns_from_each_border():
    picture = np.full((100, 160, 3), 40, np.uint8)
    picture[40:60, 70:90] = 200
    # no bars
    assert matte.black_bars(picture) == (0, 0, 0, 0)
    # a letterbox of 12 rows on top and 9 below, with codec noise up to BAR_LEVEL in them
    frame = picture.copy()
    frame[:12] = matte.BAR_LEVEL
    frame[-9:] = 0
    frame[-9:, 5, 2] = matte.BAR_LEVEL
    assert matte.black_bars(frame) == (12, 9, 0, 0)
    # one pixel a level brighter ends the bar there
    frame[5, 100, 0] = matte.BAR_LEVEL + 1
    assert matte.black_bars(frame) == (5, 9, 0, 0)
    # a pillarbox (a portrait picture in a landscape frame)
    frame = picture.copy()
    frame[:, :30] = 0
    frame[:, -25:] = 0
    assert matte.black_bars(frame) == (0, 0, 30, 25)
    # a dark picture row inside the picture is no bar: only runs from a border count
    frame = picture.copy()
    frame[50] = 0
    assert matte.black_bars(frame) == (0, 0, 0, 0)
    # black everywhere: all bar
    assert matte.black_bars(np.zeros((100, 160, 3), np.uint8))[0] == 100


def test_the_picture_between_bars_is_held_steady_and_moves_only_when_the_bars_do():
    area = matte.PictureArea()
    h, w = 288, 352  # the band clips: 32-row bars, dark picture rows next to them on dark frames
    assert area.bars is None
    # the first frame's bars are taken at once, without a move to report
    assert area.update((32, 32, 0, 0), h, w) is False and area.bars == (32, 32, 0, 0)
    # a dark picture row read as bar on some frames: within PICTURE_TOLERANCE, nothing moves
    jitter = int(h * matte.PICTURE_TOLERANCE)
    for _ in range(10):
        assert area.update((32 + jitter, 32, 0, 0), h, w) is False
    assert area.bars == (32, 32, 0, 0)
    # a frame black everywhere says nothing about the picture
    for _ in range(10):
        assert area.update((h, 0, 0, 0), h, w) is False
    assert area.bars == (32, 32, 0, 0)
    # new bars (a pillarbox: another source) move the picture after PICTURE_FRAMES frames in a row
    for _ in range(matte.PICTURE_FRAMES - 1):
        assert area.update((0, 0, 60, 60), h, w) is False
    assert area.update((0, 0, 60, 60), h, w) is True and area.bars == (0, 0, 60, 60)
    # a change that does not hold that long moves nothing
    for _ in range(matte.PICTURE_FRAMES - 1):
        assert area.update((0, 0, 0, 0), h, w) is False
    assert area.update((0, 0, 60, 60), h, w) is False and area.bars == (0, 0, 60, 60)
    assert area.update((0, 0, 0, 0), h, w) is False, "the run of new bars was broken: it starts over"
    # bars come in pairs: a dark run above a lit picture alone (a black ceiling) is no bar,
    # and of an uneven pair only the common part counts
    area.reset()
    assert area.update((80, 0, 0, 0), h, w) is False and area.bars == (0, 0, 0, 0)
    area.reset()
    assert area.update((90, 32, 0, 40), h, w) is False and area.bars == (32, 32, 0, 0)
    area.reset()
    assert area.update((40, 30, 60, 50), h, w) is False and area.bars == (40, 30, 60, 50)  # within the tolerance
    # frames of another size (the source's resolution changed): their bars are taken at once
    assert area.update((10, 10, 0, 0), 144, 176) is True and area.bars == (10, 10, 0, 0)
    # bars that would leave less than PICTURE_MIN of a side are a dark scene: the whole frame
    area.reset()
    assert area.update((100, 100, 0, 0), h, w) is False and area.bars == (0, 0, 0, 0)
    area.reset()
    assert area.update((0, 0, 90, 90), h, w) is False and area.bars == (0, 0, 0, 0)


def test_a_dark_or_washed_out_frame_is_stretched_for_the_models_and_a_usual_one_is_not():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert matte.exposure_levels(frame) == (0.0, 1.0)  # its levels span 0-255
    dark = (frame * 0.4).astype(np.uint8)  # levels 0-101
    black, gain = matte.exposure_levels(dark)
    assert black <= 2 and gain == pytest.approx(matte.EXPOSURE_LEVEL / 101.0, rel=0.03)
    lifted = matte.apply_levels(dark, black, gain)
    assert lifted.dtype == np.uint8 and lifted.shape == dark.shape
    assert np.percentile(lifted.max(axis=2), matte.EXPOSURE_PERCENTILE) == pytest.approx(matte.EXPOSURE_LEVEL, abs=4)
    # haze: levels 120-220, the black point goes to 0 and the span to EXPOSURE_LEVEL
    hazy = (frame * (100 / 255) + 120).astype(np.uint8)
    black, gain = matte.exposure_levels(hazy)
    assert 119 <= black <= 123 and gain == pytest.approx(matte.EXPOSURE_LEVEL / 100.0, rel=0.05)
    stretched = matte.apply_levels(hazy, black, gain)
    assert np.percentile(stretched.min(axis=2), 100 - matte.EXPOSURE_PERCENTILE) <= 4
    # at most EXPOSURE_MAX_GAIN: a nearly black frame's noise is not stretched to full scale
    assert matte.exposure_levels((frame * 0.02).astype(np.uint8))[1] == matte.EXPOSURE_MAX_GAIN
    # saturates instead of wrapping around, both ways
    assert matte.apply_levels(np.full((2, 2, 3), 200, np.uint8), 0.0, 2.0).max() == 255
    assert matte.apply_levels(np.full((2, 2, 3), 10, np.uint8), 50.0, 2.0).max() == 0


def test_feather_blurs_only_when_asked():
    alpha = np.zeros((32, 32), np.float32)
    alpha[:, 16:] = 1.0
    assert matte.feather(alpha, 0.0) is alpha
    soft = matte.feather(alpha, 2.0)
    assert 0.3 < soft[0, 16] < 0.7 and soft[0, 0] < 0.01 and soft[0, 31] > 0.99


def test_flicker_and_iou_measures():
    a = np.zeros((10, 10), np.float32)
    b = np.ones((10, 10), np.float32)
    assert matte.flicker([a]) == 0.0
    assert matte.flicker([a, b, a]) == pytest.approx(1000.0)
    half = a.copy()
    half[:, :5] = 1.0
    assert matte.iou(half, b) == pytest.approx(0.5)
    assert matte.iou(a, a) == 1.0


def test_stage_premultiplied_output_is_rgb_times_alpha_at_640x480(carphone_frames):
    from bridge.stages.alpha import PersonAlphaStage

    stage = PersonAlphaStage()
    rgb = cv2.resize(carphone_frames[5], (640, 480), interpolation=cv2.INTER_CUBIC)
    video = [torch.from_numpy(rgb)[None]]
    straight = stage(video=video, temporal=0.0, alpha_mode="straight")
    premul = stage(video=video, temporal=0.0, alpha_mode="premultiplied")
    assert premul["alpha"].shape == (1, 480, 640, 1)
    torch.testing.assert_close(premul["alpha"], straight["alpha"])
    torch.testing.assert_close(premul["video"], straight["video"] * straight["alpha"], atol=1e-6, rtol=0)
    torch.testing.assert_close(straight["video"][0], torch.from_numpy(rgb).float() / 255.0)


def test_stage_reads_refinement_parameters_on_every_call(carphone_frames):
    from bridge.stages.alpha import PersonAlphaStage

    stage = PersonAlphaStage()
    video = [torch.from_numpy(cv2.resize(carphone_frames[0], (640, 480)))[None]]
    a = stage(video=video, temporal=0.0)["alpha"]
    b = stage(video=video, temporal=0.0, refine_radius=6, refine_eps=0.05)["alpha"]
    c = stage(video=video, temporal=0.0, refine=False)["alpha"]
    d = stage(video=video, temporal=0.0, softness=0.0)["alpha"]
    e = stage(video=video, temporal=0.0)["alpha"]
    assert float((a - b).abs().max()) > 0.1 and float((a - c).abs().max()) > 0.1
    assert set(torch.unique(d).tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(a, e)  # nothing was cached from the calls in between
