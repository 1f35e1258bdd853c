"""``avatar-bridge bench osc`` runs and measures what docs/benchmarks.md reports (tiny run)."""

from __future__ import annotations

import json

from bridge.cli import main


def test_bench_osc_json(capsys):
    code = main(["bench", "osc", "--json", "--messages", "6", "--rates", "200", "--seconds", "1"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    latency = result["latency"]
    # structure and units, not speed (the numbers themselves belong in docs/benchmarks.md)
    assert latency["messages"] == 6 and 1 <= latency["measured"] <= 6
    # every change shows in the first frame processed after it reached the chain
    assert latency["frames_processed_without_it_max"] == 0
    assert latency["frame_ms"] == round(1000.0 / 30.0, 2)  # ms per frame of the 30 fps source clock
    assert 0 <= latency["median_ms"] <= latency["p95_ms"] <= latency["max_ms"]
    (row,) = result["rates"]
    assert row["rate"] == 200 and row["sent"] == 200
    assert row["acked"] == row["sent"] and row["answered"] == 1.0, "every valid message is acknowledged"
    assert row["fps"] >= 0 and row["quiet_fps"] >= 0 and row["dropped_sending"] >= 0
