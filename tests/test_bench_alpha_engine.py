"""``avatar-bridge bench alpha`` and ``bench engine`` run and report what docs/benchmarks.md quotes.

These check that the commands work and their numbers are well-formed, not how fast
anything is (timings belong in the benchmark output, not in assertions).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bridge.chain
from bridge.cli import main


def _json_out(capsys) -> object:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bench_engine_measures_the_engine_and_a_baseline_chain_against_a_copy(capsys):
    baseline = Path(bridge.chain.__file__)
    code = main(["bench", "engine", "--sizes", "64x48", "--frames", "5", "--repeats", "1", "--llc-mib", "0.5",
                 "--baseline-chain", str(baseline), "--json"])
    assert code == 0
    (result,) = _json_out(capsys)
    assert (result["width"], result["height"], result["frames"], result["repeats"]) == (64, 48, 5, 1)
    # the frames cycled through are distinct and together exceed the cache: none is copied from cache
    assert result["cache_mib"] == 0.5
    assert result["pool_frames"] * 64 * 48 * 3 >= 1.5 * 0.5 * 2**20
    for key in ("copy", "copy_cached", "process", "engine", "baseline_process", "baseline_engine"):
        assert isinstance(result[f"{key}_ms"], (int, float)) and result[f"{key}_ms"] >= 0.0  # ms; a copy may round to 0
    for key in ("process", "engine", "baseline_process", "baseline_engine"):
        ratio = result[f"{key}_ratio"]  # to the copy; None when the copy rounded to 0 ms
        assert ratio is None or (isinstance(ratio, (int, float)) and ratio >= 0.0)


def test_bench_engine_line_reports_fps_against_max_and_sum(capsys):
    code = main(["bench", "engine", "--sizes", "32x32", "--frames", "10", "--repeats", "1", "--llc-mib", "0.1", "--line", "--json"])
    assert code == 0
    out = _json_out(capsys)
    (size,) = out["sizes"]
    line = out["line"]
    assert (size["width"], size["height"]) == (32, 32)
    assert line["stages_ms"] == [20.0, 30.0, 10.0] and line["frames"] == 10
    assert line["ideal_line_fps"] == round(1000 / 30, 2) and line["ideal_serial_fps"] == round(1000 / 60, 2)
    for name in ("line", "serial"):
        assert line[f"{name}_fps"] > 0
        assert line[f"{name}_latency_ms"] >= 60.0  # ms: a frame spends at least every stage's sleep
        assert line[f"{name}_vs_ideal"] == pytest.approx(line[f"{name}_fps"] / line[f"ideal_{name}_fps"], abs=0.002)


def test_last_level_cache_is_the_highest_level_in_sysfs(tmp_path):
    from bridge.bench.engine import DEFAULT_LLC_BYTES, last_level_cache_bytes

    for name, level, size in (("index0", 1, "48K"), ("index2", 2, "2048K"), ("index3", 3, "32M")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "level").write_text(f"{level}\n")
        (tmp_path / name / "size").write_text(f"{size}\n")
    assert last_level_cache_bytes(str(tmp_path)) == 32 * 2**20
    fallback = last_level_cache_bytes(str(tmp_path / "missing"))  # getconf, else the default
    assert fallback > 0 and (fallback == DEFAULT_LLC_BYTES or fallback % 1024 == 0)


def test_bench_engine_refuses_a_cache_size_that_is_not_positive(capsys):
    assert main(["bench", "engine", "--sizes", "32x32", "--llc-mib", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--llc-mib" in err


def test_bench_engine_rejects_bad_sizes_with_one_line(capsys):
    assert main(["bench", "engine", "--sizes", "12x12"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "16x16" in err


def test_bench_alpha_reports_speed_flicker_and_iou(capsys):
    code = main(["bench", "alpha", "--width", "320", "--height", "240", "--frames", "4", "--repeats", "1", "--json"])
    assert code == 0
    result = _json_out(capsys)
    speed, quality = result["speed"], result["quality"]
    assert all(isinstance(speed[k]["ms"], (int, float)) and speed[k]["ms"] >= 0.0 for k in ("refine_on", "refine_off"))
    assert speed["segmentation_only"]["input"] == "320x240"
    flicker = quality["flicker"]
    assert quality["frames"] == 120
    assert flicker["temporal_on"] < flicker["temporal_off"] < flicker["raw_segmenter"]
    assert quality["iou"]["temporal_on"]["mean"] >= 0.85
