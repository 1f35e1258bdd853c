"""``avatar-bridge bench alpha`` and ``bench engine`` run and report what docs/benchmarks.md quotes.

These check that the commands work and their numbers are well-formed, not how fast
anything is (timings belong in the benchmark output, not in assertions).
"""

from __future__ import annotations

import json
from pathlib import Path

import bridge.chain
from bridge.cli import main


def _json_out(capsys) -> object:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bench_engine_measures_the_engine_and_a_baseline_chain_against_a_copy(capsys):
    baseline = Path(bridge.chain.__file__)
    code = main(["bench", "engine", "--sizes", "64x48", "--frames", "5", "--repeats", "1", "--baseline-chain", str(baseline), "--json"])
    assert code == 0
    (result,) = _json_out(capsys)
    assert (result["width"], result["height"], result["frames"]) == (64, 48, 5)
    for key in ("process", "engine", "baseline_process", "baseline_engine"):
        assert result[f"{key}_ms"] > 0 and result[f"{key}_ratio"] > 0
    assert result["copy_ms"] > 0


def test_bench_engine_rejects_bad_sizes_with_one_line(capsys):
    assert main(["bench", "engine", "--sizes", "12x12"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "16x16" in err


def test_bench_alpha_reports_speed_flicker_and_iou(capsys):
    code = main(["bench", "alpha", "--width", "320", "--height", "240", "--frames", "4", "--repeats", "1", "--json"])
    assert code == 0
    result = _json_out(capsys)
    speed, quality = result["speed"], result["quality"]
    assert speed["refine_on"]["ms"] > 0 and speed["refine_off"]["ms"] > 0
    assert speed["segmentation_only"]["input"] == "320x240"
    flicker = quality["flicker"]
    assert quality["frames"] == 120
    assert flicker["temporal_on"] < flicker["temporal_off"] < flicker["raw_segmenter"]
    assert quality["iou"]["temporal_on"]["mean"] >= 0.85
