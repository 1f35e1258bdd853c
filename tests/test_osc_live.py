"""The OSC surface on a streaming engine (in-process, real UDP on loopback, python-osc client).

The source replays the real carphone clip as a live 30 fps camera would (latest frame
wins), through the real person-alpha stage.
"""

from __future__ import annotations

import struct
import time

import pytest
from pythonosc.osc_message_builder import build_msg
from pythonosc.udp_client import SimpleUDPClient

from bridge.chain import Chain
from bridge.errors import ModelMissingError
from bridge.stages import alpha as alpha_module
from bridge.stages.alpha import PersonAlphaStage
from tests.helpers import ArraySource
from tests.osc_support import KnobsConfig, KnobsStage, ReplyListener, TimingSink, register_knobs, start_daemon, stop_daemon

FPS = 30.0


class Daemon:
    """An engine + OSC surface, a client, a reply listener and the stage's recorded calls."""

    def __init__(self, frames, monkeypatch, spec=(("alpha", {}),), **osc):
        self.calls: list[tuple[float, dict]] = []
        original = PersonAlphaStage.__call__

        def recording(stage, **kwargs):
            self.calls.append((time.perf_counter(), {k: v for k, v in kwargs.items() if k not in ("video", "source_video")}))
            return original(stage, **kwargs)

        monkeypatch.setattr(PersonAlphaStage, "__call__", recording)
        self.listener = ReplyListener()
        self.sink = TimingSink()
        chain = Chain.from_spec(list(spec))
        source = ArraySource(frames, live=True, interval_s=1.0 / FPS, fps=FPS)
        self.engine, self.service = start_daemon(source, chain, self.sink, self.listener.port, **osc)
        self.client = SimpleUDPClient("127.0.0.1", self.service.port)
        self.wait_frames(5)

    def wait_frames(self, n: int, timeout: float = 10.0) -> None:
        target = self.sink.count() + n
        deadline = time.monotonic() + timeout
        while self.sink.count() < target:
            assert time.monotonic() < deadline, "the stream stopped"
            time.sleep(0.01)

    def send(self, address: str, *args) -> float:
        t = time.perf_counter()
        self.client.send_message(address, list(args))
        return t

    def state(self, state: str, after: float, timeout: float = 10.0):
        return self.listener.wait_message_with("/bridge/status/state", [state], after, timeout)

    def close(self) -> None:
        stop_daemon(self.engine, self.service)
        self.listener.close()


def _wait_with(listener, address, args, after, timeout):
    found = []

    def seen():
        found[:] = [m for m in listener.messages if m[1] == address and m[2] == args and m[0] >= after]
        return bool(found)

    return found[0] if listener.wait_for(seen, timeout) else None


ReplyListener.wait_message_with = _wait_with


@pytest.fixture
def daemon(carphone_frames, monkeypatch):
    d = Daemon(carphone_frames, monkeypatch)
    yield d
    d.close()


def test_runtime_param_lands_on_the_next_frame_and_a_burst_coalesces(daemon):
    before = sum(daemon.sink.coverage[-5:]) / 5
    values = [round(0.5 + 0.002 * i, 3) for i in range(1, 200)] + [0.99]
    t_send = time.perf_counter()
    for v in values:
        daemon.client.send_message("/bridge/alpha/threshold", v)
    ack = daemon.listener.wait_message_with("/bridge/ack/alpha/threshold", [pytest.approx(0.99)], t_send, 5.0)
    assert ack is not None, "no ack for the last value"
    daemon.wait_frames(6)
    after_ack = [kw["threshold"] for t, kw in daemon.calls if t > ack[0]]
    assert after_ack and all(v == 0.99 for v in after_ack), "a frame processed after the ack did not use the new value"
    seen = {kw["threshold"] for t, kw in daemon.calls if t > t_send}
    assert seen <= set(values) | {0.5}
    assert len(seen) < 20, f"200 messages within a few frames should coalesce, the stage saw {len(seen)} values"
    assert sum(daemon.sink.coverage[-3:]) / 3 < before - 0.1, "a high threshold must shrink the matte"
    # every ack carries the value as applied
    acks = daemon.listener.of("/bridge/ack/alpha/threshold")
    assert len(acks) == len(values) and acks[-1][2] == [pytest.approx(0.99)]


def test_bypass_and_ping(daemon):
    t = daemon.send("/bridge/bypass", 1.0)  # a CHOP toggle arrives as a float
    assert daemon.listener.wait_message_with("/bridge/ack/bypass", [1], t, 5.0)
    daemon.wait_frames(3)
    assert daemon.sink.coverage[-1] == 1.0, "bypass sends the input with opaque alpha"
    t = daemon.send("/bridge/bypass", "false")
    assert daemon.listener.wait_message_with("/bridge/ack/bypass", [0], t, 5.0)
    daemon.wait_frames(3)
    assert daemon.sink.coverage[-1] < 0.9
    t = daemon.send("/bridge/ping", 42, "td")
    assert daemon.listener.wait_message_with("/bridge/pong", [42, "td"], t, 5.0)


def test_load_time_change_reloads_in_background_without_a_gap(daemon):
    old_stage = daemon.engine.chain.slot("alpha").stage
    daemon.send("/bridge/alpha/threshold", 0.6)
    t = daemon.send("/bridge/alpha/model", "general")
    assert daemon.listener.wait_message_with("/bridge/ack/alpha/model", ["general"], t, 5.0)
    loading = daemon.state("loading", t)
    live = daemon.state("live", t)
    assert loading and live and live[0] >= loading[0], "state must go loading -> live"
    daemon.wait_frames(10)
    slot = daemon.engine.chain.slot("alpha")
    assert slot.stage is not old_stage and slot.config.model == "general"
    assert slot.config.threshold == 0.6, "runtime values survive the reload"
    gap = daemon.sink.max_gap_between(t, time.perf_counter())
    assert gap < 0.3, f"output stalled {gap:.3f} s during the reload"
    assert daemon.engine.stats.state == "live"


def test_failing_reload_keeps_the_old_stage_and_reports(daemon, monkeypatch):
    def broken(model):
        raise ModelMissingError(f"person-alpha: no {model} model here (test)")

    monkeypatch.setattr(alpha_module, "load_selfie_segmenter", broken)
    old_stage = daemon.engine.chain.slot("alpha").stage
    t = daemon.send("/bridge/alpha/model", "general")
    assert daemon.listener.wait_message_with("/bridge/ack/alpha/model", ["general"], t, 5.0)
    error = daemon.listener.wait_for(
        lambda: any(m[1] == "/bridge/status/error" and "reload of alpha failed" in m[2][0] and m[0] >= t
                    for m in daemon.listener.messages), 5.0)
    assert error, "the failed reload was not reported on /bridge/status/error"
    assert "no general model here" in daemon.engine.stats.last_error
    assert daemon.state("error", t)
    n = daemon.sink.count()
    daemon.wait_frames(10)
    slot = daemon.engine.chain.slot("alpha")
    assert slot.stage is old_stage and slot.config.model == "landscape"
    assert daemon.sink.max_gap_between(t, time.perf_counter()) < 0.3
    assert daemon.sink.count() >= n + 10 and min(daemon.sink.coverage[-5:]) < 0.9, "old stage still mattes"
    t = daemon.send("/bridge/alpha/threshold", 0.55)  # the next accepted control clears the error
    assert daemon.state("live", t)


def _malformed() -> list[bytes]:
    return [
        b"",
        b"\x00\x01\x02garbage",
        b"/bridge/alpha/threshold",  # address not terminated
        b"#bundle\x00" + b"\x00" * 4,  # truncated bundle
        b"/x\x00\x00,i\x00\x00\x00\x01",  # truncated int
        b"/x\x00\x00,s\x00\x00abc",  # unterminated string
        b"/x\x00\x00,b\x00\x00" + struct.pack(">i", 1000) + b"ab",  # blob longer than the datagram
        b"/x\x00\x00,[\x00\x00",  # unclosed array
        b"\xff\xfe/\x00",
        b"/\xff\xfe\x00,f\x00\x00\x00\x00\x00\x00",  # address is not UTF-8
    ]


def _wrong() -> list[bytes]:
    msgs = [
        ("/bridge/nope/param", [1.0]),  # unknown address
        ("/nothing", [1]),
        ("/bridge/alpha/threshold", [0.5]),  # a stage that is not in the running chain
        ("/bridge/knobs/gain", ["abc"]),  # wrong type
        ("/bridge/knobs/gain", [1.5]),  # out of range
        ("/bridge/knobs/gain", [-0.25]),
        ("/bridge/knobs/gain", [float("nan")]),
        ("/bridge/knobs/gain", []),  # missing value
        ("/bridge/knobs/gain", [0.1, 0.2]),  # two values
        ("/bridge/knobs/steps", [2.5]),
        ("/bridge/knobs/steps", [99]),
        ("/bridge/knobs/enabled", [0.5]),
        ("/bridge/knobs/mode", ["glow"]),
        ("/bridge/knobs/size", [9]),  # load-time, out of range: no reload starts
        ("/bridge/bypass", ["maybe"]),
        ("/bridge/preset", ["../etc/passwd"]),
        ("/bridge/preset", ["no-such-preset"]),
    ]
    return [build_msg(a, args).dgram for a, args in msgs]


def _paced(sock, target, dgrams, count, rate, listener=None, window=1000):
    """Send ``count`` datagrams (cycling ``dgrams``) at ``rate`` per second, in 5 ms slices.

    With ``listener``, never run more than ``window`` error replies ahead (a starved
    daemon must not turn this into a test of the UDP receive buffer).
    """
    t0 = time.perf_counter()
    per_slice = max(1, rate // 200)
    for sent in range(count):
        if sent % per_slice == 0:
            delay = t0 + sent / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if listener is not None:
                assert listener.wait_for(lambda: listener.errors >= sent - window, 10.0), "error replies stopped"
        sock.sendto(dgrams[sent % len(dgrams)], target)


def test_flood_of_malformed_and_wrong_messages_never_touches_the_stream(carphone_frames, monkeypatch):
    # A stage that costs nothing, so that the rate measured is the OSC surface's effect on
    # the stream and not other processes' load on a shared 2-core machine.
    register_knobs(monkeypatch)
    daemon = Daemon(carphone_frames, monkeypatch, spec=[("knobs", {})])
    try:
        _flood(daemon)
    finally:
        daemon.close()


def _flood(daemon):
    sock = daemon.client._sock
    target = ("127.0.0.1", daemon.service.port)
    calls = KnobsStage.calls
    first = calls[0]
    t0 = time.perf_counter()
    time.sleep(1.0)
    t_flood = time.perf_counter()

    _paced(sock, target, _malformed(), 10_000, 8000)
    t = daemon.send("/bridge/ping", 1)
    assert daemon.listener.wait_message_with("/bridge/pong", [1], t, 10.0), "server stopped answering"
    assert daemon.service.server.counters.malformed == 10_000
    assert daemon.listener.errors == 0, "malformed datagrams are dropped without a reply"

    # 2,500/s: a TD network sending 40 channels at 60 Hz, all of them wrong
    _paced(sock, target, _wrong(), 10_000, 2500, daemon.listener)
    assert daemon.listener.wait_for(lambda: daemon.listener.errors >= 10_000, 10.0), \
        f"{10_000 - daemon.listener.errors} wrong messages got no /bridge/error"
    t_end = time.perf_counter()
    time.sleep(1.0)
    t_after = time.perf_counter()
    assert daemon.listener.errors == 10_000, "exactly one error reply per wrong message"
    assert not [m for m in daemon.listener.messages if m[1].startswith("/bridge/ack") and m[0] >= t_flood]

    # the stream kept its rate (against the rate just before and just after), the heartbeat never stopped
    baseline = (daemon.sink.fps_between(t0, t_flood) + daemon.sink.fps_between(t_end, t_after)) / 2
    during = daemon.sink.fps_between(t_flood, t_end)
    print(f"flood: {t_end - t_flood:.2f} s, baseline {baseline:.1f} fps, during {during:.1f} fps")
    assert during >= 0.7 * baseline, f"stream slowed from {baseline:.1f} to {during:.1f} fps under the flood"
    assert daemon.sink.max_gap_between(t_flood, t_end) < 0.5
    beats = [m[0] for m in daemon.listener.of("/bridge/status/heartbeat") if t0 <= m[0] <= t_after]
    assert len(beats) >= int(t_after - t0) - 1
    assert max(b - a for a, b in zip([t0] + beats, beats + [t_after])) < 1.6, "heartbeat gap over 1.5 s"
    assert daemon.engine.running and daemon.engine.stats.state == "live"
    # no stage ever saw anything but its initial, valid parameters
    assert len(calls) > 100
    assert all(kw == first for kw in calls)
    assert first == KnobsConfig().runtime_params()
    # the status reports the counter
    t = time.perf_counter()
    assert daemon.listener.wait_message_with("/bridge/status/malformed", [10_000], t, 2.5)
