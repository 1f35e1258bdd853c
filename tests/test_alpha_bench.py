"""The contact sheet of ``avatar-bridge bench alpha --quality``: each case over a checkerboard
next to its reference, so a person can judge the matte by looking."""

from __future__ import annotations

import cv2
import numpy as np

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
