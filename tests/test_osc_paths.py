"""Path-valued parameters set over OSC stay inside the models folder, the presets folder and
the folders named with ``--allow-path``; the stream goes on either way."""

from __future__ import annotations

import pytest

from bridge.errors import BridgeError, ConfigError
from bridge.osc.daemon import start_with_engine
from bridge.osc.paths import PathPolicy, path_params
from bridge.stages.avatar import AvatarConfig
from bridge.stages.pose import PoseConfig
from tests.osc_support import Daemon, osc_args


@pytest.fixture
def folders(tmp_path, monkeypatch):
    models, presets, extra, outside = (tmp_path / n for n in ("models", "presets", "extra", "outside"))
    for folder in (models, presets, extra, outside):
        folder.mkdir()
    monkeypatch.setenv("AVATAR_BRIDGE_MODELS", str(models))
    monkeypatch.setenv("AVATAR_BRIDGE_PRESETS", str(presets))
    monkeypatch.chdir(tmp_path)
    return models, presets, extra, outside


def _error(daemon, after: float) -> str | None:
    found = daemon.listener.wait_message("/bridge/error", timeout=10.0, after=after)
    return None if found is None else found[2][0]


def test_every_path_field_is_marked():
    assert set(path_params(AvatarConfig)) == {"base_model", "controlnet", "vae", "lora", "ip_adapter", "models_dir", "reference_images"}
    assert path_params(PoseConfig) == ["model"]


def test_policy_allows_the_project_folders_and_named_ones_and_nothing_else(folders):
    models, presets, extra, outside = folders
    (presets / "faces").mkdir()
    (outside / "secret").mkdir()
    (extra / "link").symlink_to(outside / "secret")
    policy = PathPolicy([extra])
    ok = [("reference_images", "faces"), ("reference_images", str(presets / "faces")), ("models_dir", str(models / "sub")),
          ("base_model", "stabilityai/sd-turbo"), ("base_model", "sd-turbo"), ("reference_images", f"faces;{extra}"),
          ("base_model", str(extra))]
    for name, value in ok:
        policy.check(AvatarConfig, name, value)
    bad = [("reference_images", str(outside)), ("reference_images", "faces;" + str(outside / "secret")),
           ("models_dir", str(outside)), ("models_dir", "elsewhere"), ("base_model", "../outside/secret"),
           ("reference_images", "~"), ("lora", str(extra / "link")),  # a link out of an allowed folder is outside
           ("reference_images", "outside")]  # relative to the working directory
    for name, value in bad:
        with pytest.raises(BridgeError, match="--allow-path"):
            policy.check(AvatarConfig, name, value)
    PathPolicy().check(AvatarConfig, "prompt", str(outside))  # not a path field: not checked


def test_a_path_outside_is_refused_over_osc_and_the_stream_goes_on(folders, carphone_frames, monkeypatch):
    models, presets, extra, outside = folders
    daemon = Daemon(carphone_frames, monkeypatch, spec=(("pose", {}), ("alpha", {})), allow_path=[str(extra)])
    try:
        chain = daemon.engine.chain
        t = daemon.send("/bridge/pose/model", str(outside))
        message = _error(daemon, t)
        assert message is not None and message.startswith("/bridge/pose/model: path ") and "--allow-path" in message
        daemon.wait_frames(5)
        assert daemon.engine.chain is chain and daemon.engine.chain.slot("pose").config.model == ""
        t = daemon.send("/bridge/pose/model", str(extra))  # named with --allow-path: applies
        assert daemon.listener.wait_message_with("/bridge/ack/pose/model", [str(extra)], t, 10.0)
        assert daemon.state("live", t, timeout=60.0)
        daemon.wait_frames(5, timeout=60.0)
        assert daemon.engine.chain.slot("pose").config.model == str(extra)
    finally:
        daemon.close()


def test_allow_path_must_name_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="--allow-path"):
        start_with_engine(object(), osc_args(9, allow_path=[str(tmp_path / "missing")]))
