"""The stages as a Daydream Scope plugin, loaded the way Scope loads it.

Scope is not on PyPI, so these tests put a stand-in of the Scope modules the plugin
imports on ``sys.path`` (``tests/scope_standin``, written from the seeds and the facts
checked against Scope v0.2.4), load the plugin through its ``scope`` entry point with
pluggy, and drive the registered pipelines as Scope does: ``Pipeline(**load_params)``,
``prepare(video=True, **params)``, ``__call__(video=[(1,H,W,C) uint8], **params)`` with
one flat ``params`` dict shared by the whole chain.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bridge.errors import ConfigError
from bridge.stages import get_stage
from bridge.stages.registry import all_stages

STANDIN = Path(__file__).parent / "scope_standin"
#: The pipelines the plugin promises Scope (issue 7): stage (id or OSC name) -> Scope usage.
EXPECTED = {"pose": ["preprocessor"], "avatar": [], "person-alpha": ["postprocessor"]}


def _forget_scope_modules() -> None:
    for name in list(sys.modules):
        if name == "scope" or name.startswith(("scope.", "bridge.scope_plugin")):
            del sys.modules[name]


@pytest.fixture(scope="module")
def scope():
    """Scope's plugin machinery (stand-in) with this plugin loaded through its entry point."""
    sys.path.insert(0, str(STANDIN))
    _forget_scope_modules()
    try:
        from scope.core.pipelines import base_schema, interface
        from scope.core.pipelines.registry import PipelineRegistry
        from scope.core.plugins import manager

        PipelineRegistry.clear()
        manager.load_plugins()
        manager.register_plugin_pipelines(PipelineRegistry)
        yield SimpleNamespace(registry=PipelineRegistry, interface=interface, base_schema=base_schema, manager=manager)
    finally:
        sys.path.remove(str(STANDIN))
        _forget_scope_modules()


@pytest.fixture(scope="module")
def alpha_cls(scope):
    return scope.registry.get("person-alpha")


def as_scope_video(rgb: np.ndarray) -> list[torch.Tensor]:
    """One (H, W, 3) uint8 frame as Scope passes video: a list of (1, H, W, 3) uint8 tensors."""
    return [torch.from_numpy(rgb)[None]]


def expected_pipelines() -> dict[str, list[str]]:
    """Scope pipeline id -> usage, for the promised stages that exist in this checkout."""
    known = {c.get_config_class().pipeline_id for c in all_stages()} | {c.get_config_class().osc_name for c in all_stages()}
    return {get_stage(ref).get_config_class().pipeline_id: usage for ref, usage in EXPECTED.items() if ref in known}


# ----------------------------------------------------------------------------- loading
def test_entry_point_loads_a_pluggy_hook_for_scope(scope):
    (ep,) = [ep for ep in entry_points(group="scope") if ep.name == "avatar_bridge"]
    assert ep.value == "bridge.scope_plugin"
    module = ep.load()
    # pluggy marks hook implementations with "<project>_impl"; Scope's project is "scope"
    assert hasattr(module.register_pipelines, "scope_impl")
    assert module in scope.manager.pm.get_plugins()


def test_registers_the_three_pipelines_as_scope_classes(scope):
    registered = set(scope.registry.list_pipelines())
    usage = expected_pipelines()
    assert len(usage) == len(EXPECTED)  # pose, avatar and person-alpha all exist
    assert registered == set(usage)
    for pipeline_id in registered:
        cls = scope.registry.get(pipeline_id)
        config = cls.get_config_class()
        assert issubclass(cls, scope.interface.Pipeline)
        assert issubclass(config, scope.base_schema.BasePipelineConfig)
        meta = config.get_schema_with_metadata()
        assert meta["id"] == pipeline_id
        assert meta["usage"] == usage[pipeline_id]
        assert meta["supported_modes"] == ["video"] and meta["default_mode"] == "video"
        assert meta["supports_prompts"] is (usage[pipeline_id] == [])  # the avatar (main) takes Scope's prompts
        assert config.pipeline_name and config.pipeline_description
        with pytest.raises(Exception, match="extra"):
            config(no_such_parameter=1)


def test_a_broken_pipeline_does_not_hide_the_others(scope, monkeypatch, caplog):
    import bridge.scope_plugin as plugin
    from bridge.scope_plugin.adapter import ScopeSpec

    monkeypatch.setattr(plugin, "PIPELINES", (ScopeSpec("no-such-stage"), ScopeSpec("person-alpha", matte_output=True)))
    got = []
    plugin.register_pipelines(register=got.append)
    assert [cls.get_config_class().pipeline_id for cls in got] == ["person-alpha"]
    assert "no-such-stage pipeline not registered" in caplog.text


def test_every_stage_parameter_is_a_scope_field_with_the_same_schema(scope):
    for pipeline_id in scope.registry.list_pipelines():
        ours = get_stage(pipeline_id).get_config_class()
        theirs = scope.registry.get(pipeline_id).get_config_class()
        our_schema = ours.model_json_schema()["properties"]
        scope_schema = theirs.model_json_schema()["properties"]
        hidden = {"alpha_source"} if pipeline_id == "person-alpha" else set()
        if ours.supports_prompts:
            hidden.add("prompt")  # Scope's prompt box feeds it
        for name, prop in our_schema.items():
            scope_name = f"{ours.osc_name}_{name}"
            if name in hidden:
                assert scope_name not in scope_schema
                continue
            got = scope_schema[scope_name]
            for key in ("type", "default", "minimum", "maximum", "enum", "description"):
                assert got.get(key) == prop.get(key), (scope_name, key)
            ui = got["ui"]
            # Scope's own ui_field_config made it: category is always there
            assert ui["category"] == "configuration"
            assert ui["is_load_param"] is ours.is_load_param(name)
            assert ui.get("label") == prop["ui"].get("label") and ui.get("order") == prop["ui"].get("order")


# ----------------------------------------------------------------------- person-alpha
def test_person_alpha_outputs_rgba_thwc_on_real_frames(alpha_cls, carphone_frames):
    """Asked for RGBA (Scope's Spout output takes 4 channels), the matte is channel 3."""
    pipe = alpha_cls()  # Scope passes no device
    assert pipe.prepare(video=True).input_size == 1
    for rgb in carphone_frames[:6]:
        out = pipe(video=as_scope_video(rgb), init_cache=False, alpha_output_mode="rgba")
    video = out["video"]
    assert set(out) == {"video"}
    assert video.shape == (1, 144, 176, 4) and video.dtype == torch.float32
    assert 0.0 <= float(video.min()) and float(video.max()) <= 1.0
    # straight alpha by default: the RGB is the input frame, the matte is in channel 3
    torch.testing.assert_close(video[0, ..., :3], torch.from_numpy(rgb).float() / 255.0)
    alpha = video[0, ..., 3]
    assert float(alpha[40:100, 80:110].mean()) > 0.9  # the man's face and chest
    assert float(alpha[:20, :30].max()) < 0.05  # car roof behind him


def test_person_alpha_runtime_parameters_change_between_calls(alpha_cls, carphone_frames):
    pipe = alpha_cls()
    rgb = carphone_frames[10]
    frame = torch.from_numpy(rgb).float() / 255.0
    params = {"alpha_temporal": 0.0}
    rgba = pipe(video=as_scope_video(rgb), **params, alpha_output_mode="rgba")["video"][0]
    alpha = rgba[..., 3:]

    keyed = pipe(video=as_scope_video(rgb), **params, alpha_output_mode="key", alpha_key_color="#00FF00")["video"][0]
    assert keyed.shape == (144, 176, 3)
    torch.testing.assert_close(keyed, frame * alpha + torch.tensor([0.0, 1.0, 0.0]) * (1 - alpha), atol=1e-5, rtol=0)
    background = alpha[..., 0] < 0.01
    assert background.sum() > 1000 and torch.allclose(keyed[background], torch.tensor([0.0, 1.0, 0.0]), atol=0.01)

    blue = pipe(video=as_scope_video(rgb), **params, alpha_output_mode="key", alpha_key_color="0000ff")["video"][0]
    assert torch.allclose(blue[background], torch.tensor([0.0, 0.0, 1.0]), atol=0.01)

    premultiplied = pipe(video=as_scope_video(rgb), **params, alpha_alpha_mode="premultiplied", alpha_output_mode="rgba")["video"][0]
    torch.testing.assert_close(premultiplied[..., :3], frame * alpha, atol=1e-5, rtol=0)
    keyed_pm = pipe(video=as_scope_video(rgb), **params, alpha_alpha_mode="premultiplied", alpha_output_mode="key")["video"][0]
    torch.testing.assert_close(keyed_pm, keyed, atol=1e-5, rtol=0)  # same picture from either alpha form

    strict = pipe(video=as_scope_video(rgb), **params, alpha_threshold=0.9, alpha_output_mode="rgba")["video"][0, ..., 3]
    assert float(strict.mean()) < float(alpha.mean()) - 0.02
    again = pipe(video=as_scope_video(rgb), **params, alpha_output_mode="rgba")["video"][0, ..., 3:]
    torch.testing.assert_close(again, alpha)  # back to the defaults when Scope stops sending them
    default = pipe(video=as_scope_video(rgb), **params)["video"][0]
    torch.testing.assert_close(default, keyed)  # Scope's default: the picture over green (3 channels)


def test_person_alpha_load_parameters_at_construction(alpha_cls, carphone_frames):
    # one load_params dict for the whole chain: other pipelines' keys and Scope's own are ignored
    general = alpha_cls(alpha_model="general", height=512, width=512, avatar_anything=1, alpha_threshold=0.1)
    landscape = alpha_cls(device="cpu")
    assert general.load_params == {"model": "general", "threads": 1} and landscape.load_params == {"model": "landscape", "threads": 1}
    assert general.device.type in ("cpu", "cuda") and landscape.device == torch.device("cpu")
    rgb = carphone_frames[3]
    a = general(video=as_scope_video(rgb), alpha_temporal=0.0, alpha_output_mode="rgba")["video"][0, ..., 3]
    b = landscape(video=as_scope_video(rgb), alpha_temporal=0.0, alpha_output_mode="rgba")["video"][0, ..., 3]
    assert float((a - b).abs().mean()) > 0.002  # a different segmentation model ran
    with pytest.raises(ConfigError, match="alpha_model"):
        alpha_cls(alpha_model="portrait")


def test_init_cache_resets_temporal_smoothing(alpha_cls, carphone_frames):
    pipe, fresh = alpha_cls(), alpha_cls()
    smooth = {"alpha_temporal": 0.9, "alpha_output_mode": "rgba"}
    for rgb in carphone_frames[:5]:
        pipe(video=as_scope_video(rgb), **smooth)
    late = carphone_frames[100]
    expected = fresh(video=as_scope_video(late), init_cache=True, **smooth)["video"]
    lagging = pipe(video=as_scope_video(late), **smooth)["video"]
    assert float((lagging - expected).abs().max()) > 0.05  # the old mask still weighs 0.9
    reset = pipe(video=as_scope_video(late), init_cache=True, **smooth)["video"]
    torch.testing.assert_close(reset, expected)


def test_bad_calls_are_clear_errors(alpha_cls, carphone_frames):
    pipe = alpha_cls()
    with pytest.raises(ValueError, match="Video input mode"):
        pipe(prompts=[{"text": "x", "weight": 1.0}])
    with pytest.raises(ValueError, match="#RRGGBB"):
        pipe(video=as_scope_video(carphone_frames[0]), alpha_output_mode="key", alpha_key_color="green")
    with pytest.raises(Exception, match="alpha_key_color"):  # Scope validates against the schema first
        pipe.get_config_class()(alpha_key_color="green")


# ------------------------------------------------------------------- generic adapter
def test_any_stage_becomes_a_scope_pipeline_passthrough(scope, carphone_frames):
    from bridge.scope_plugin.adapter import ScopeSpec, scope_pipeline_class

    cls = scope_pipeline_class(get_stage("passthrough"), ScopeSpec("passthrough"))
    assert issubclass(cls, scope.interface.Pipeline)
    assert cls.get_config_class().usage == []  # our MAIN usage is Scope's plain pipeline
    out = cls()(video=as_scope_video(carphone_frames[0]))["video"]
    assert out.shape == (1, 144, 176, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out[0], torch.from_numpy(carphone_frames[0]).float() / 255.0)


def test_prompt_text_takes_the_strongest_scope_prompt():
    from bridge.scope_plugin.adapter import prompt_text

    assert prompt_text([{"text": "a knight", "weight": 0.3}, {"text": "a robot", "weight": 0.7}]) == "a robot"
    assert prompt_text(["plain"]) == "plain" and prompt_text("solo") == "solo"
    assert prompt_text([]) is None and prompt_text(None) is None


# ------------------------------------------------------------------------------ pose
@pytest.fixture(scope="module")
def pose_cls(scope):
    return scope.registry.get("pose")


def lit_pixels(image: torch.Tensor) -> int:
    """Pixels of a (H, W, 3) [0,1] image that are not black (skeleton strokes)."""
    return int((image.amax(dim=-1) > 0.05).sum())


def test_pose_passes_the_camera_on_and_the_skeleton_as_control(pose_cls, carphone_frames):
    pipe = pose_cls()
    assert pipe.prepare(video=True).input_size == 1
    rgb = carphone_frames[20]
    out = pipe(video=as_scope_video(rgb))
    # default: the camera goes on to the avatar (img2img), the skeleton as its ControlNet image
    video, control = out["video"], out["control_video"]
    assert video.shape == control.shape == (1, 144, 176, 3)
    assert video.dtype == control.dtype == torch.float32
    torch.testing.assert_close(video[0], torch.from_numpy(rgb).float() / 255.0)
    assert 0.0 <= float(control.min()) and float(control.max()) <= 1.0
    assert 50 < lit_pixels(control[0]) < 0.5 * 144 * 176  # coloured limbs on black
    assert out["keypoints"].shape == (1, 18, 3)


def test_pose_runtime_parameters_change_between_calls(pose_cls, carphone_frames):
    pipe = pose_cls()
    video = as_scope_video(carphone_frames[20])
    thin = pipe(video=video)["control_video"][0]
    shown = pipe(video=video, pose_output="control")["video"][0]  # look at the skeleton itself
    # the skeleton, not the camera (MediaPipe's tracking moves points by a pixel between calls)
    assert abs(lit_pixels(shown) - lit_pixels(thin)) < 0.2 * lit_pixels(thin)
    thick = pipe(video=video, pose_line_scale=3.0)["control_video"][0]
    assert lit_pixels(thick) > 1.5 * lit_pixels(thin)
    again = pipe(video=video)["control_video"][0]
    assert lit_pixels(again) < 1.2 * lit_pixels(thin)


def test_pose_load_parameters_at_construction(pose_cls):
    from bridge.errors import ModelMissingError

    with pytest.raises(ConfigError, match="pose_backend"):
        pose_cls(pose_backend="kinect")
    try:
        import controlnet_aux  # noqa: F401
    except Exception:
        with pytest.raises(ModelMissingError, match="controlnet-aux"):
            pose_cls(pose_backend="openpose")  # reached the stage's load-time backend choice
    assert pose_cls(pose_backend="mediapipe", alpha_model="general").load_params == {"backend": "mediapipe", "model": "", "threads": 1}


# ---------------------------------------------------------------------------- avatar
def scope_download(artifact, repos: Path, models_dir: Path) -> None:
    """Fetch ``artifact`` from a local copy of its repo the way Scope's downloader selects files.

    Scope (``server/download_models.py``) downloads into ``<models>/<repo name>/`` every repo
    file matching an entry (``fnmatch``), an entry not ending in ``/``, ``.pt``, ``.pth``,
    ``.safetensors`` or ``.json`` also as a folder (``entry/*``, ``entry/**/*``).
    """
    from fnmatch import fnmatch

    patterns = []
    for entry in artifact.files:
        patterns.append(entry)
        if not entry.endswith(("/", ".pt", ".pth", ".safetensors", ".json")):
            patterns += [f"{entry}/*", f"{entry}/**/*"]
    src, dest = repos / artifact.repo_id, models_dir / artifact.repo_id.split("/")[-1]
    for path in src.rglob("*"):
        rel = path.relative_to(src).as_posix()
        if path.is_file() and any(fnmatch(rel, p) for p in patterns):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(path.read_bytes())


@pytest.fixture(scope="module")
def avatar(scope, tmp_path_factory):
    """The avatar pipeline class, with its declared artifacts "downloaded" by Scope from tiny
    random-weight copies of the real repos (tests/avatar_models.py), and nothing elsewhere."""
    import avatar_models

    cls = scope.registry.get(get_stage("avatar").get_config_class().pipeline_id)
    tmp = tmp_path_factory.mktemp("scope-avatar")
    repos, models = tmp / "hub", tmp / "scope-models"
    avatar_models.build_base(repos, "sd21")
    avatar_models.build_controlnet(repos, "sd21")
    avatar_models.build_taesd(repos)
    for artifact in cls.get_config_class().artifacts:
        scope_download(artifact, repos, models)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(models))
        mp.setenv("AVATAR_BRIDGE_MODELS", str(tmp / "avatar-bridge-models-empty"))
        yield SimpleNamespace(cls=cls, models=models)


def test_avatar_declares_its_default_models_as_scope_artifacts(avatar):
    from bridge.avatar.models import lookup
    from bridge.stages.avatar import AvatarConfig

    artifacts = {a.repo_id: a.files for a in avatar.cls.get_config_class().artifacts}
    defaults = AvatarConfig()
    assert lookup(defaults.base_model, "base").repo_id in artifacts
    assert "model_index.json" in artifacts[lookup(defaults.base_model, "base").repo_id]
    assert len(artifacts) == 3  # base, its OpenPose ControlNet, its tiny VAE
    assert avatar.cls.get_config_class().get_schema_with_metadata()["requires_models"] is True


def scope_models_are_downloaded(artifacts, models_dir: Path) -> bool:
    """Scope's own check (``models_are_downloaded`` in ``server/models_config.py``, behind
    ``/api/v1/models/status``): every declared entry exists in ``<models>/<repo name>/``,
    a folder non-empty. While it is false Scope's UI shows its Download Models dialog, and
    after a download it polls this until true."""
    for artifact in artifacts:
        for entry in artifact.files:
            path = models_dir / artifact.repo_id.split("/")[-1] / entry
            if not path.exists() or (path.is_dir() and not any(path.iterdir())):
                return False
    return True


def test_scope_counts_the_avatar_models_it_downloaded_as_downloaded(avatar):
    """Every declared file is one the repo has, so after Scope's download its status says
    downloaded (a declared name the repo lacks keeps Scope's Download dialog polling for ever)."""
    artifacts = avatar.cls.get_config_class().artifacts
    assert scope_models_are_downloaded(artifacts, avatar.models)
    first = artifacts[0]
    weight = next(f for f in first.files if f.endswith(".safetensors"))
    (avatar.models / first.repo_id.split("/")[-1] / weight).rename(avatar.models / "moved-away")
    try:
        assert not scope_models_are_downloaded(artifacts, avatar.models)  # a missing weight: Scope offers its download
    finally:
        (avatar.models / "moved-away").rename(avatar.models / first.repo_id.split("/")[-1] / weight)


@pytest.mark.parametrize("cuda", [True, False])
def test_avatar_declares_each_weight_once_in_the_variant_it_loads(scope, cuda, monkeypatch):
    """One file per weight: on CUDA (float16) the ``.fp16.safetensors`` file of a repo that
    publishes it (SD-Turbo), the plain file of one that does not (TAESD, the SD 2.1 OpenPose
    ControlNet); without CUDA the plain file everywhere."""
    from bridge.avatar.models import lookup
    from bridge.scope_plugin.models import avatar_artifacts

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)  # Scope's machine, as the plugin sees it
    declared = dict(avatar_artifacts())
    for repo, files in declared.items():
        weights = [f for f in files if f.endswith(".safetensors")]
        stems = [f.removesuffix(".safetensors").removesuffix(".fp16") for f in weights]
        assert weights and len(stems) == len(set(stems)), (repo, files)  # each weight once
        half = cuda and lookup(repo).fp16
        assert all(w.endswith(".fp16.safetensors") == half for w in weights), (repo, weights)
    assert lookup("sd-turbo").fp16 and not lookup("taesd").fp16 and not lookup("controlnet-openpose-sd21").fp16
    assert ("unet/diffusion_pytorch_model.fp16.safetensors" in declared["stabilityai/sd-turbo"]) == cuda
    assert "diffusion_pytorch_model.safetensors" in declared["madebyollin/taesd"]


def test_the_loader_takes_the_declared_variant_where_a_folder_has_both(scope, tmp_path, monkeypatch):
    """Scope's models folder may hold both variants (a second download, a copied ``models
    fetch`` folder): the avatar loads the file that was declared, on CUDA and off it."""
    from bridge.avatar.layout import weight_names
    from bridge.avatar.models import _variant, lookup, runs_fp16
    from bridge.scope_plugin.models import artifact_files

    spec = lookup("sd-turbo")
    for cuda in (True, False):
        half = runs_fp16("auto", "cuda" if cuda else "cpu")
        for entry in artifact_files("base", spec, fp16=half):
            if not entry.endswith(".safetensors"):
                continue
            stem = entry.removesuffix(".safetensors").removesuffix(".fp16")
            for name in weight_names(stem):
                (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / name).touch()
            folder, _, leaf = stem.rpartition("/")
            loaded = f"{stem}.{_variant(tmp_path / folder, leaf, half)}.safetensors".replace(".None.", ".")
            assert loaded == entry, (cuda, loaded, entry)


def test_avatar_runs_from_the_files_scope_downloaded(avatar, carphone_frames):
    pipe = avatar.cls(avatar_width=64, avatar_height=64)  # Scope: Pipeline(**load_params), no device
    for field in ("base_model", "controlnet", "vae"):
        assert pipe.load_params[field].startswith(str(avatar.models)), field
    assert pipe.prepare(video=True).input_size == 1
    prompts = [{"text": "a red robot", "weight": 1.0}]
    for rgb in carphone_frames[:3]:
        out = pipe(video=as_scope_video(rgb), prompts=prompts)
    video = out["video"]
    assert set(out) == {"video"}
    assert video.shape == (1, 64, 64, 3) and video.dtype == torch.float32
    assert 0.0 <= float(video.min()) and float(video.max()) <= 1.0


def test_avatar_runtime_parameters_and_prompt_change_between_calls(avatar, carphone_frames):
    pipe = avatar.cls(avatar_width=64, avatar_height=64)
    video = as_scope_video(carphone_frames[0])

    def run(**params):
        return pipe(video=video, init_cache=True, **params)["video"]

    robot = run(prompts=[{"text": "a red robot", "weight": 1.0}])
    torch.testing.assert_close(run(prompts=[{"text": "a red robot", "weight": 1.0}]), robot, rtol=0, atol=0)
    knight = run(prompts=[{"text": "a blue knight", "weight": 0.2}, {"text": "a red robot", "weight": 0.1}])
    assert not torch.equal(knight, robot)  # Scope's strongest prompt is the stage's prompt
    stronger = run(prompts=[{"text": "a red robot", "weight": 1.0}], avatar_strength=1.0)
    assert float((stronger - robot).abs().mean()) > 1e-3
    reseeded = run(prompts=[{"text": "a red robot", "weight": 1.0}], avatar_seed=7)
    assert not torch.equal(reseeded, robot)


def test_avatar_load_parameters_at_construction(avatar, carphone_frames):
    wide = avatar.cls(avatar_width=128, avatar_height=64, alpha_model="general", height=512)
    assert wide.load_params["width"] == 128 and wide.load_params["height"] == 64
    assert wide(video=as_scope_video(carphone_frames[0]))["video"].shape == (1, 64, 128, 3)
    with pytest.raises(ConfigError, match="avatar_width"):
        avatar.cls(avatar_width=100)  # not a multiple of 8


def test_avatar_without_its_models_says_what_to_fetch(avatar, tmp_path, monkeypatch):
    from bridge.errors import ModelMissingError

    monkeypatch.setenv("DAYDREAM_SCOPE_MODELS_DIR", str(tmp_path / "empty-scope-models"))
    with pytest.raises(ModelMissingError, match="models fetch") as caught:
        avatar.cls(avatar_width=64, avatar_height=64)
    # Scope logs str(e) and sends it in its pipeline_load_failed event: name Scope's download
    assert "in Scope: download the pipeline's models" in str(caught.value)


def test_scope_chain_pose_avatar_alpha(scope, pose_cls, avatar, alpha_cls, carphone_frames):
    """pre -> main -> post as Scope runs them: each gets the previous ``video``, and a
    pipeline's other outputs reach the next one as parameters (Scope's forwarding)."""
    pose, main, post = pose_cls(), avatar.cls(avatar_width=64, avatar_height=64), alpha_cls()
    params = {"prompts": [{"text": "a red robot", "weight": 1.0}], "avatar_strength": 0.7, "alpha_threshold": 0.5,
              "alpha_output_mode": "rgba"}
    for rgb in carphone_frames[:2]:
        pre = pose(video=as_scope_video(rgb), **params)
        forwarded = {k: v for k, v in pre.items() if k != "video"}
        frame = [f[None].mul(255.0).round().to(torch.uint8) for f in pre["video"]]  # Scope queues uint8 frames
        generated = main(video=frame, **params, **forwarded)["video"]
        matte = post(video=[f[None].mul(255.0).round().to(torch.uint8) for f in generated], **params)["video"]
    assert set(forwarded) == {"control_video", "keypoints"}
    assert generated.shape == (1, 64, 64, 3)
    assert matte.shape == (1, 64, 64, 4) and matte.dtype == torch.float32
    assert 0.0 <= float(matte.min()) and float(matte.max()) <= 1.0


# ---------------------------------------------------------------------- without Scope
NO_SCOPE = r"""
import importlib.abc, sys
attempts = []

class NoScope(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "scope" or name.startswith("scope."):
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoScope())
import bridge, bridge.stages, bridge.chain, bridge.engine, bridge.presets, bridge.osc.schema
from bridge.cli import main

import socket

def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

osc = ["--osc-port", str(free_udp_port()), "--osc-reply", f"127.0.0.1:{free_udp_port()}"]
rc = main(["run", "--source", "video:" + sys.argv[1], "--sink", "null:", "--max-frames", "5", "--stats-every", "0", *osc])
assert rc == 0, rc
assert not attempts, attempts
assert not [m for m in sys.modules if m == "scope" or m.startswith("scope.")]
try:
    import bridge.scope_plugin
except ModuleNotFoundError as exc:
    assert exc.name == "scope" or exc.name.startswith("scope."), exc
else:
    raise AssertionError("bridge.scope_plugin imported without Scope")
print("daemon ran without scope")
"""


def test_package_and_daemon_work_without_scope(carphone):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", NO_SCOPE, str(carphone)], capture_output=True, text=True, timeout=240, env=env, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "daemon ran without scope" in proc.stdout


# ------------------------------------------------------- Scope's own calls and output (#19)
def scope_output_frames(video: torch.Tensor) -> list[np.ndarray]:
    """Scope's output path, as in its source (commit 68b0f95): ``server/pipeline_processor.py``
    turns a float ``video`` into ``(value * 255.0).clamp(0, 255).to(torch.uint8)`` and splits it
    into (1,H,W,C) frames; its WebRTC track, headless sink and recorder then call
    ``av.VideoFrame.from_ndarray(frame.numpy(), format="rgb24")``. Returns what the viewer
    gets back (``to_ndarray(format="rgb24")``), one (H,W,3) uint8 per frame."""
    import av

    if video.dtype != torch.uint8:
        video = (video * 255.0).clamp(0, 255).to(dtype=torch.uint8).contiguous().detach()
    shown = []
    for i in range(video.shape[0]):
        frame = av.VideoFrame.from_ndarray(video[i].numpy(), format="rgb24")
        shown.append(frame.to_ndarray(format="rgb24"))
    return shown


def scope_session(cls, **load_params):
    """Build a pipeline as Scope does: ``cls(**{schema defaults, **load_params})``; returns
    (pipeline, the flat params dict Scope then passes to ``prepare`` and every call)."""
    params = {**cls.get_config_class()().model_dump(), **load_params}
    return cls(**params), params


@pytest.mark.parametrize("pipeline_id", ["person-alpha", "pose"])
def test_default_output_passes_scopes_output_conversion(scope, pipeline_id, carphone_frames):
    pipe, params = scope_session(scope.registry.get(pipeline_id))
    assert pipe.prepare(**params).input_size == 1
    for i, rgb in enumerate(carphone_frames[:4]):
        out = pipe(video=as_scope_video(rgb), init_cache=i == 0, **params)
        (shown,) = scope_output_frames(out["video"])  # raises on 4 channels, as Scope does
        assert shown.shape == rgb.shape


def test_scope_preview_shows_the_person_over_the_key_colour(alpha_cls, carphone_frames):
    """What Scope shows by default: the man as filmed, the car around him pure green."""
    rgb = carphone_frames[30]

    def shown_as(**mode):  # a fresh session: frame 29 then frame 30, as Scope shows it
        pipe, params = scope_session(alpha_cls)
        params.update(mode)
        pipe(video=as_scope_video(carphone_frames[29]), init_cache=True, **params)
        return pipe(video=as_scope_video(rgb), **params)["video"]

    (shown,) = scope_output_frames(shown_as())
    # the matte of the same frame, asked for as RGBA (what Scope's Spout output gets)
    alpha = shown_as(alpha_output_mode="rgba")[0, ..., 3].numpy()
    person, background = alpha > 0.95, alpha < 0.05
    assert person.mean() > 0.15 and background.mean() > 0.15  # both are on screen
    green = np.array([0.0, 255.0, 0.0])
    # every pixel is the frame over green through the matte ("over", straight alpha), to rounding
    expected = green + alpha[..., None] * (rgb.astype(float) - green)
    assert np.abs(shown.astype(float) - expected).max() <= 1.01
    assert (shown[alpha == 0] == green).all()  # the car around him: pure key colour
    assert float(shown[40:100, 80:110, 1].mean()) < 200  # the face is not keyed out
    # the matte mode shows the matte itself, grey
    (matte,) = scope_output_frames(shown_as(alpha_output_mode="matte"))
    assert np.abs(matte.astype(float) - alpha[..., None] * 255).max() <= 1.01


@pytest.mark.parametrize("pipeline_id", ["person-alpha", "pose"])
def test_one_instance_called_from_several_threads_gives_the_single_threaded_result(scope, pipeline_id, carphone_frames):
    """Scope (after a failed session stop) and the daemon (a preset switch) may call one
    instance from two threads; every output must be what one thread alone gets (issue #19)."""
    from concurrent.futures import ThreadPoolExecutor

    cls = scope.registry.get(pipeline_id)
    # no temporal smoothing, so each frame's result does not depend on the call order;
    # init_cache on every call: each call starts from the same state
    extra = {"alpha_temporal": 0.0} if pipeline_id == "person-alpha" else {}
    frames = carphone_frames[::12][:8]
    pipe, params = scope_session(cls)
    params.update(extra)

    def run(rgb):
        out = pipe(video=as_scope_video(rgb), init_cache=True, **params)
        return {k: v.clone() for k, v in out.items()}

    expected = [run(rgb) for rgb in frames]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            for want, have in zip(expected, pool.map(run, frames)):
                assert set(want) == set(have)
                for key in want:
                    torch.testing.assert_close(have[key], want[key], atol=1e-6, rtol=0)

    # the stage itself, as the daemon's engine calls it (no Scope adapter, no reset per
    # call), on one frame over and over: person-alpha (pose every frame, no smoothing)
    # gives the same matte each time; the pose tracker keeps moving by about a pixel, so
    # its keypoints are compared within two. Two threads inside one LiteRT interpreter
    # raise or give garbage.
    stage = get_stage(pipeline_id)()
    stage_params = {**pipe.stage_params(params), "keep_uint8": False}
    if pipeline_id == "person-alpha":
        stage_params["pose_interval"] = 1
    rgb = frames[2]

    def run_stage(_):
        out = stage(video=as_scope_video(rgb), **stage_params)
        return {k: v.clone() for k, v in out.items() if isinstance(v, torch.Tensor)}

    for _ in range(5):
        want = run_stage(None)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            for have in pool.map(run_stage, range(16)):
                assert set(want) == set(have)
                if pipeline_id == "pose":
                    torch.testing.assert_close(have["keypoints"], want["keypoints"], atol=2.0, rtol=0)  # pixels
                else:
                    assert float((have["alpha"] - want["alpha"]).abs().mean()) < 0.01
