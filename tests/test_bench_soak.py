"""``avatar-bridge bench soak`` for a few seconds: the abuse mix reaches the daemon, every refused
message and dropped switch is answered, random bytes are counted, a vanished source comes
back and the stream resumes. (The 30-minute figures are in docs/benchmarks.md.)"""

from __future__ import annotations

from bridge.bench.soak import soak


def test_a_short_soak_answers_every_bad_message_and_survives_a_vanished_source():
    out = soak(minutes=0.25, interval_s=5.0, outage_every_s=7.0, outage_s=1.5, presets=None, printer=lambda *a: None)
    rows, v = out["rows"], out["verdict"]
    assert len(rows) >= 3
    counts = v["counts"]
    assert counts["sent_bad"] >= 50 and counts["sent_switches"] >= 3 and counts["sent_params"] >= 500
    assert v["refused"] >= counts["sent_bad"], "every bad message is refused"
    assert v["errors_received"] == v["refused"] + v["dropped_switches"], "each refusal and each dropped switch: one /bridge/error"
    assert v["every_bad_answered"]
    assert v["malformed_counted"] == v["garbage_sent"] > 0, "random bytes are counted as malformed, not answered"
    assert v["outages"] >= 1 and rows[-1]["source_restarts"] >= 1
    after = [r for r in rows if r["source_restarts"] >= 1]
    assert after and after[-1]["frames_out"] > rows[0]["frames_out"], "the stream resumed after the source came back"
