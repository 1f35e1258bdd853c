"""The contact sheet of ``avatar-bridge bench alpha --quality``: each case over a checkerboard
next to its reference, so a person can judge the matte by looking."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bridge.bench.alpha import checkerboard, composite, contact_sheet


def test_contact_sheet_shows_the_matte_and_the_reference_over_a_checkerboard(carphone_frames, tmp_path):
    rgb = carphone_frames[0]  # 176x144
    alpha = np.zeros(rgb.shape[:2], np.float32)
    alpha[:, 88:] = 1.0  # right half opaque
    ref = np.zeros(rgb.shape[:2], np.uint8)  # reference: nobody
    path = contact_sheet([("left half", rgb, alpha, ref), ("again", rgb, alpha, ref)], tmp_path / "sheet.png", tile_height=144)
    sheet = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    header, gap = 22, 8
    assert sheet.shape[0] == 2 * (header + 144 + gap)
    row = sheet[header:header + 144]
    board = checkerboard(144, 176)
    stage_tile, reference_tile = row[:, :176], row[:, 180:356]
    assert np.array_equal(stage_tile[:, :80], board[:, :80]), "transparent: the checkerboard shows"
    assert np.abs(stage_tile[:, 96:].astype(int) - rgb[:, 96:].astype(int)).max() <= 1, "opaque: the frame shows"
    assert np.array_equal(reference_tile, board), "the reference (nobody) is all checkerboard"


def test_composite_blends_by_alpha():
    rgb = np.full((24, 24, 3), 250, np.uint8)
    half = composite(rgb, np.full((24, 24), 0.5, np.float32))
    expected = (250 * 0.5 + checkerboard(24, 24).astype(np.float32) * 0.5 + 0.5).astype(np.uint8)
    assert np.array_equal(half, expected)
    assert np.array_equal(composite(rgb, np.full((24, 24), 255, np.uint8)), rgb)


def test_variants_are_the_same_picture_reframed():
    from bridge.bench.alpha import VARIANTS, variant_frames

    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :50] = 255  # a white band on the left
    ref = image[..., 0].copy()
    out = variant_frames(image, ref)
    assert [name for name, _, _ in out] == list(VARIANTS)
    shapes = {name: (a.shape, b.shape) for name, a, b in out}
    assert shapes["original"] == ((100, 200, 3), (100, 200))
    assert shapes["x0.75"] == ((75, 150, 3), (75, 150))
    assert shapes["central 80%"] == ((80, 160, 3), (80, 160))
    assert shapes["1.5x wide"] == ((100, 300, 3), (100, 300))
    assert shapes["640x480"] == ((480, 640, 3), (480, 640))
    assert shapes["16:9 crop"] == ((100, 133, 3), (100, 133))  # 2:1 is wider than 16:9: cut to 4:3
    assert shapes["letterboxed"] == ((132, 200, 3), (132, 200))
    assert shapes["pillarboxed"] == ((100, 300, 3), (100, 300))
    boxed = dict((name, (a, b)) for name, a, b in out)
    assert boxed["letterboxed"][0][:16].max() == 0 and boxed["letterboxed"][0][-16:].max() == 0
    assert boxed["pillarboxed"][0][:, :50].max() == 0 and boxed["pillarboxed"][0][:, 50:100].min() == 255
    tall = dict((name, (a, b)) for name, a, b in variant_frames(np.zeros((480, 640, 3), np.uint8), np.zeros((480, 640), np.uint8)))
    assert tall["16:9 crop"][0].shape == (360, 640, 3)
    flipped = dict((name, (a, b)) for name, a, b in out)["h-flip"]
    assert flipped[0][0, -1, 0] == 255 and flipped[0][0, 0, 0] == 0 and flipped[1][0, -1] == 255
    # tilted: the turned picture's largest same-aspect rectangle, 1 / (cos 12 + 2 sin 12) of
    # each side less a pixel, with no corner left empty by the turn (the white band stays on the left)
    assert shapes["tilted +12"] == ((69, 141, 3), (69, 141)) and shapes["tilted -12"] == ((69, 141, 3), (69, 141))
    for name in ("tilted +12", "tilted -12"):
        turned = boxed[name][0]
        assert turned[:, :5].min() == 255 and turned[:, -20:].max() == 0, name
    # turned anticlockwise (+), the band's right edge leans left at the top; clockwise, right
    edge = {name: [int((boxed[name][0][row, :, 0] > 127).sum()) for row in (0, -1)] for name in ("tilted +12", "tilted -12")}
    assert edge["tilted +12"][0] < edge["tilted +12"][1] and edge["tilted -12"][0] > edge["tilted -12"][1], edge
    bright = np.full((100, 200, 3), 200, np.uint8)
    assert min(a.min() for name, a, _ in variant_frames(bright, bright[..., 0]) if name.startswith("tilted")) == 200
    for name, a, b in out:  # image and reference stay aligned
        level = {"underexposed": 25, "washed out": 181}.get(name, 127)  # white is 51 and 232 there
        assert ((a[..., 0] > level) == (b > 127)).mean() > 0.98, name
    dark = boxed["underexposed"][0]
    assert dark.shape == image.shape and 40 <= dark[:, :50].mean() <= 62 and dark[:, 60:].max() <= 20
    hazy = boxed["washed out"][0]
    assert hazy.shape == image.shape and 220 <= hazy[:, :50].mean() <= 244 and 120 <= hazy[:, 60:].mean() <= 140


def test_bench_variants_compares_a_parameter_change(capsys):
    import json

    from bridge.cli import main

    assert main(["bench", "alpha", "--variants", "--case", "camera", "--compare", "object_cut=0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["compare"] == {"object_cut": 0.0}
    camera = result["cases"]["camera"]["original"]
    # the object cut takes the tripod head out of camera.png: better with it than without
    assert camera["iou"] >= 0.95 > camera["iou_compare"]
    assert set(result["cases"]) == {"camera"}
    rows = result["cases"]["camera"].values()
    assert result["mean"] == pytest.approx(np.mean([r["iou"] for r in rows]), abs=1e-3)
    assert result["mean_compare"] == pytest.approx(np.mean([r["iou_compare"] for r in rows]), abs=1e-3)


def test_bench_variants_refuses_an_unknown_or_out_of_bounds_parameter(capsys):
    from bridge.cli import main

    assert main(["bench", "alpha", "--variants", "--compare", "bogus=1"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert main(["bench", "alpha", "--variants", "--compare", "object_cut=3"]) == 2
    assert "object_cut" in capsys.readouterr().err
    assert main(["bench", "alpha", "--variants", "--case", "street"]) == 2  # a clip, not a still
    assert "--case 'street'" in capsys.readouterr().err


def test_frame_timing_reports_the_worst_frames_as_well_as_the_median(monkeypatch):
    """A live stream drops a frame when one call runs past the frame period, so the bench
    reports the 99th percentile and the worst frame, not only the median and mean. A fake
    clock makes every tenth call cost 50 ms and the rest 5 ms (no real timing involved)."""
    import bridge.bench.alpha as bench

    clock = {"now": 0.0}
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock["now"])
    monkeypatch.setattr(bench.time, "process_time", lambda: clock["now"])

    def call(item: int) -> None:
        clock["now"] += 0.050 if item % 10 == 9 else 0.005

    timing = bench._timed(call, list(range(100)), warmup=5, repeats=2)
    assert timing["ms"] == timing["ms_all_passes"] == 5.0
    assert timing["mean"] == pytest.approx(9.5)
    assert timing["max"] == 50.0
    assert timing["p99"] == 50.0


def test_a_clip_warm_up_can_start_earlier_or_later_and_still_ends_where_the_scored_frames_begin():
    from bridge.bench.alpha import CLIP_WARMUP, warmup_frames

    plain = warmup_frames("cg")
    assert len(plain) == CLIP_WARMUP["cg"]
    longer, shorter = warmup_frames("cg", 3), warmup_frames("cg", -3)
    assert len(longer) == len(plain) + 3 and len(shorter) == len(plain) - 3
    # the same frames, counted back from the first scored one
    assert all(np.array_equal(a, b) for a, b in zip(longer[3:], plain))
    assert all(np.array_equal(a, b) for a, b in zip(shorter, plain[3:]))
    assert warmup_frames("cg", -100) == []
    assert len(warmup_frames("cg-hair", 3)) == 12  # its scored frames begin 12 frames into the clip
    assert warmup_frames("camera", 3) == []  # a still has no warm-up


def test_bench_quality_starts_scores_each_clip_from_an_earlier_and_a_later_start(monkeypatch, capsys, tmp_path):
    """``--starts``: a clip case is run again with its warm-up START_SHIFT frames shorter and
    longer. A stand-in for the stage's run returns the reference itself after the usual
    warm-up, everything matted after the shorter one and nothing after the longer one, so
    each start's score says which warm-up it came from."""
    import bridge.bench.alpha as bench
    from bridge.cli import main
    from bridge.matte import iou

    name = "cg"
    monkeypatch.setattr(bench, "MATTE_CASES", {name: bench.MATTE_CASES[name]})
    frames, refs = bench.matte_case(name)
    usual = bench.CLIP_WARMUP[name]
    lengths = []

    def fake_run_case(stage, frames, warmup=(), **params):
        lengths.append(len(warmup))
        if len(warmup) == usual:
            mattes = [r.astype(np.float32) / 255.0 for r in refs]
        else:
            fill = 1.0 if len(warmup) < usual else 0.0
            mattes = [np.full(r.shape, fill, np.float32) for r in refs]
        return mattes, [1.0] * len(frames)

    monkeypatch.setattr(bench, "run_case", fake_run_case)
    quality = bench.measure_matte_quality(starts=True)
    assert sorted(lengths) == [usual - bench.START_SHIFT, usual, usual + bench.START_SHIFT]
    everything = float(np.mean([iou(np.ones(r.shape, np.float32), r.astype(np.float32) / 255.0) for r in refs]))
    assert quality["cases"][name]["iou_starts"] == [round(everything, 4), 1.0, 0.0]
    # without --starts each case runs once
    lengths.clear()
    assert "iou_starts" not in bench.measure_matte_quality()["cases"][name] and lengths == [usual]
    # the table shows both starts' scores
    monkeypatch.setattr(bench, "measure_framing_speed", lambda *a, **k: {"width": 640, "height": 480, "frames": 1})
    capsys.readouterr()
    assert main(["bench", "alpha", "--quality", "--starts", "--sheet", str(tmp_path / "sheet.png")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith(name))
    assert row.split()[-2:] == [f"{everything:.4f}", "0.0000"]
