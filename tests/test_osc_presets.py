"""``/bridge/preset``: validated first, applied whole or not at all; names and YAML are safe."""

from __future__ import annotations

import threading

import pytest

from bridge.errors import ModelMissingError
from bridge.stages import alpha as alpha_module
from bridge.stages.alpha import PersonAlphaConfig, PersonAlphaStage
from bridge.stages.passthrough import PassthroughStage
from tests.osc_support import preset_daemon

PRESETS = {
    "base": "stages:\n  - stage: alpha\n",
    "soft": "stages:\n  - stage: alpha\n    params: {threshold: 0.3, softness: 0.3, feather: 2.0, alpha_mode: premultiplied}\n",
    "typo": "stages:\n  - stage: alpha\n    params: {threshold: 0.3, softnes: 0.3}\n",
    "too-soft": "stages:\n  - stage: alpha\n    params: {threshold: 0.3, softness: 3.0}\n",
    "general": "stages:\n  - stage: alpha\n    params: {model: general, threshold: 0.8}\n",
    "plain": "stages:\n  - stage: passthrough\n",
}
CHANGED = ("threshold", "softness", "feather", "alpha_mode")
DEFAULTS = PersonAlphaConfig().model_dump()


@pytest.fixture
def daemon(carphone_frames, monkeypatch, tmp_path):
    d = preset_daemon(carphone_frames, monkeypatch, tmp_path / "presets", PRESETS)
    yield d
    d.close()


def _error(daemon, needle: str, after: float) -> str:
    found = []

    def seen():
        found[:] = [m[2][0] for m in daemon.listener.messages if m[1] == "/bridge/error" and m[0] >= after and needle in m[2][0]]
        return bool(found)

    assert daemon.listener.wait_for(seen, 10.0), f"no /bridge/error with {needle!r}"
    return found[0]


def test_runtime_only_preset_lands_whole_at_one_frame_and_resets_unset_fields(daemon):
    stage = daemon.engine.chain.slot("alpha").stage
    t = daemon.send("/bridge/alpha/refine_radius", 12)
    assert daemon.listener.wait_message_with("/bridge/ack/alpha/refine_radius", [12], t)
    daemon.wait_frames(2)
    t = daemon.send("/bridge/preset", "soft")
    assert daemon.listener.wait_message_with("/bridge/ack/preset", ["soft"], t)
    daemon.wait_frames(3)
    assert daemon.engine.chain.slot("alpha").stage is stage, "same load-time parameters: no reload"
    assert not daemon.listener.wait_message_with("/bridge/status/state", ["loading"], t, 0.1)
    after = [kw for tc, kw in daemon.calls if tc > t]
    new = {"threshold": 0.3, "softness": 0.3, "feather": 2.0, "alpha_mode": "premultiplied"}
    for kw in daemon.calls:
        values = {k: kw[1][k] for k in CHANGED}
        assert values == new or values == {k: DEFAULTS[k] for k in CHANGED}, \
            f"a frame saw half a preset: {values}"
    assert after[-1]["refine_radius"] == DEFAULTS["refine_radius"], "a field the preset does not set goes back to its default"
    assert {k: after[-1][k] for k in CHANGED} == new


@pytest.mark.parametrize("name, reason", [("typo", "softnes"), ("too-soft", "softness"), ("missing", "known presets: base")])
def test_invalid_preset_changes_nothing(daemon, name, reason):
    chain = daemon.engine.chain
    t = daemon.send("/bridge/preset", name)
    message = _error(daemon, reason, t)
    assert message.startswith("/bridge/preset: ")
    daemon.wait_frames(3)
    assert daemon.engine.chain is chain
    assert all(kw["threshold"] == DEFAULTS["threshold"] and kw["softness"] == DEFAULTS["softness"] for tc, kw in daemon.calls)


def test_preset_that_needs_a_load_swaps_without_a_gap_or_not_at_all(daemon, monkeypatch):
    working = alpha_module.load_selfie_segmenter
    finish_broken, finish_slow = threading.Event(), threading.Event()

    def broken(model, *args, **kwargs):
        assert finish_broken.wait(60.0)  # a load takes a while: the stream must go on meanwhile
        raise ModelMissingError(f"person-alpha: no {model} model here (test)")

    def slow(*args, **kwargs):
        assert finish_slow.wait(60.0)
        return working(*args, **kwargs)

    chain = daemon.engine.chain
    monkeypatch.setattr(alpha_module, "load_selfie_segmenter", broken)
    t = daemon.send("/bridge/preset", "general")
    assert daemon.state("loading", t)
    daemon.wait_frames(5, timeout=60.0)  # while the load is held: the stream did not wait for it
    finish_broken.set()
    message = _error(daemon, "failed to load", t)
    assert "preset 'general' failed to load, kept the running one" in message and "no general model here" in message
    assert daemon.state("error", t)
    daemon.wait_frames(5)
    assert daemon.engine.chain is chain, "the running chain stays"
    assert all(kw["threshold"] == 0.5 for tc, kw in daemon.calls), "not even the runtime half of the preset was applied"

    monkeypatch.setattr(alpha_module, "load_selfie_segmenter", slow)
    t = daemon.send("/bridge/preset", "general")
    assert daemon.state("loading", t)
    daemon.wait_frames(5, timeout=60.0)  # while the load is held: the stream did not wait for it
    assert daemon.engine.chain is chain
    finish_slow.set()
    assert daemon.listener.wait_message_with("/bridge/ack/preset", ["general"], t, 60.0)
    assert daemon.state("live", t, timeout=60.0)
    daemon.wait_frames(5)
    slot = daemon.engine.chain.slot("alpha")
    assert daemon.engine.chain is not chain and slot.config.model == "general" and slot.config.threshold == 0.8


def test_switches_sent_during_a_load_coalesce_and_the_last_one_wins(daemon, monkeypatch):
    working = alpha_module.load_selfie_segmenter
    release, started = threading.Event(), threading.Event()

    def slow(*args, **kwargs):
        started.set()
        assert release.wait(60.0)
        return working(*args, **kwargs)

    monkeypatch.setattr(alpha_module, "load_selfie_segmenter", slow)
    t = daemon.send("/bridge/preset", "general")  # a load, held
    assert daemon.state("loading", t) and started.wait(30.0)
    for name in ("soft", "plain", "base"):  # overtaken, overtaken, the last one
        daemon.send("/bridge/preset", name)
    daemon.wait_frames(5, timeout=60.0)  # the stream goes on while the load is held
    release.set()
    assert daemon.listener.wait_message_with("/bridge/ack/preset", ["base"], t, 60.0)
    assert "'general' dropped after it loaded: overtaken by 'base'" in _error(daemon, "'general' dropped", t)
    for name, by in (("soft", "plain"), ("plain", "base")):
        assert f"overtaken by {by!r}" in _error(daemon, f"{name!r} dropped before it loaded", t)
    assert not [m for m in daemon.listener.of("/bridge/ack/preset") if m[0] >= t and m[2] != ["base"]], "only the last switch applies"
    assert daemon.state("live", t, timeout=60.0)
    assert daemon.service.controls.coalesced == 3
    daemon.wait_frames(3)
    assert [type(s.stage) for s in daemon.engine.chain.slots] == [PersonAlphaStage]
    assert daemon.engine.chain.slot("alpha").config.model == "landscape", "the overtaken 'general' build was not applied"


def test_preset_with_other_stages_rebuilds_the_chain(daemon):
    t = daemon.send("/bridge/preset", "plain")
    assert daemon.listener.wait_message_with("/bridge/ack/preset", ["plain"], t, 10.0)
    daemon.wait_frames(3)
    assert [type(s.stage) for s in daemon.engine.chain.slots] == [PassthroughStage]
    assert daemon.sink.coverage[-1] == 1.0, "no matte stage: opaque"
    t = daemon.send("/bridge/preset", "base")
    assert daemon.listener.wait_message_with("/bridge/ack/preset", ["base"], t, 10.0)
    daemon.wait_frames(3)
    assert [type(s.stage) for s in daemon.engine.chain.slots] == [PersonAlphaStage]
    assert daemon.sink.coverage[-1] < 0.9
    assert daemon.engine.stats.state == "live"


def test_preset_names_cannot_leave_the_presets_folder(daemon):
    (daemon.folder.parent / "evil.yaml").write_text(PRESETS["plain"])  # a valid preset, one level up
    chain = daemon.engine.chain
    for name in ("../evil", str(daemon.folder.parent / "evil"), "evil.yaml", "..", "", "sub/../base", "base.yaml"):
        t = daemon.send("/bridge/preset", name)
        assert "bad preset name" in _error(daemon, "bad preset name", t), name
    daemon.wait_frames(2)
    assert daemon.engine.chain is chain


def test_preset_yaml_cannot_run_code(daemon):
    marker = daemon.folder.parent / "pwned"
    (daemon.folder / "pwn.yaml").write_text(f"stages: !!python/object/apply:os.system ['touch {marker}']\n")
    t = daemon.send("/bridge/preset", "pwn")
    assert "YAML error" in _error(daemon, "YAML error", t)
    assert not marker.exists()
