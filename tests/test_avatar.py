"""The avatar stage on tiny random-weight models loaded through the users' from_pretrained path.

The models (tests/avatar_models.py) are saved where ``avatar-bridge models fetch`` puts the
real ones, so presets name them by their registry names (``sd-turbo``, ``dreamshaper-8``...).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from avatar_models import build_all
from bridge import cli
from bridge.chain import Chain, UnloadedStage, validate_params
from bridge.errors import ConfigError
from bridge.frames import Frame
from bridge.stages.avatar import AvatarConfig, AvatarStage

SIZE = 64
TINY = {"width": SIZE, "height": SIZE}


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_all(tmp_path_factory.mktemp("models"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVATAR_BRIDGE_MODELS", str(root))
        yield root


@pytest.fixture(scope="module")
def turbo(models_root: Path) -> AvatarStage:
    """SD-Turbo family (tiny), OpenPose ControlNet, 2 steps, stream batch, residual CFG."""
    return AvatarStage(device="cpu", base_model="sd-turbo", steps=2, cfg_type="self", **TINY)


@pytest.fixture(scope="module")
def turbo_first(turbo: AvatarStage, frames: list[torch.Tensor]) -> torch.Tensor:
    """The SD-Turbo stage's output for the first frame with the default parameters."""
    return run(turbo, frames[:1])


@pytest.fixture(scope="module")
def frames(carphone_frames: list[np.ndarray]) -> list[torch.Tensor]:
    """Carphone frames 0, 40, 80 and frame 0 in negative (clearly different inputs)."""
    picked = [carphone_frames[0], carphone_frames[40], carphone_frames[80], 255 - carphone_frames[0]]
    return [torch.from_numpy(np.ascontiguousarray(f))[None] for f in picked]


def run(stage: AvatarStage, frames: list[torch.Tensor], **params) -> torch.Tensor:
    """Reset, then feed ``frames`` (control = a fixed pose-like image); the last output."""
    stage.reset()
    runtime = {**AvatarConfig(**TINY).runtime_params(), "guidance_scale": 1.5, **params}
    control = torch.zeros(1, 144, 176, 3)
    control[:, 30:110, 80:96] = 1.0  # a bright "limb" for the ControlNet
    out = None
    for frame in frames:
        out = stage(video=[frame.float()], source_video=[frame], control_video=control, **runtime)["video"]
    assert out is not None
    return out


def count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_pre_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    return calls


# ----------------------------------------------------------------------------- live parameters
def test_output_is_rgb_at_the_stage_size_and_deterministic(turbo, frames, models_root):
    out = run(turbo, frames[:2])
    assert out.shape == (1, SIZE, SIZE, 3) and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert torch.equal(run(turbo, frames[:2]), out)
    fresh = AvatarStage(device="cpu", base_model="sd-turbo", steps=2, cfg_type="self", **TINY)
    assert torch.equal(run(fresh, frames[:2]), out)


@pytest.mark.parametrize("change", [
    {"prompt": "a red robot"},
    {"prompt_b": "a blue dragon", "prompt_blend": 0.5},
    {"seed": 7},
    {"seed_blend": 0.5},
    {"strength": 0.9},
    {"controlnet_conditioning_scale": 0.0},
    {"controlnet_conditioning_scale": 1.6},
    {"guidance_scale": 3.0},
    {"delta": 0.3},
])
def test_changing_a_runtime_parameter_changes_the_output(turbo, frames, turbo_first, change):
    after = run(turbo, frames[:1], **change)
    assert (after - turbo_first).abs().max() > 1e-3, change


def test_strength_maps_to_t_index_list(turbo, frames):
    run(turbo, frames[:1], strength=0.3)
    assert turbo.engine.t_indices == [34, 42]
    run(turbo, frames[:1], strength=1.0)
    assert turbo.engine.t_indices == [0, 25]


def test_pose_image_steers_the_controlnet(turbo, frames):
    runtime = {**AvatarConfig(**TINY).runtime_params()}
    outs = []
    for x in (20, 120):
        turbo.reset()
        control = torch.zeros(1, 144, 176, 3)
        control[:, 20:120, x:x + 20] = 1.0
        outs.append(turbo(video=[frames[0].float()], source_video=[frames[0]], control_video=control, **runtime)["video"])
    assert (outs[0] - outs[1]).abs().max() > 1e-3


# ----------------------------------------------------------------------------- speed tricks
def test_stream_batch_one_unet_call_per_frame_and_steps_minus_one_latency(turbo, frames):
    calls = count_calls(turbo.engine.unet)
    a, b, c = frames[0], frames[1], frames[3]
    run(turbo, [a, b])
    assert calls[0] == 2 + 1  # warm-up frame runs its 2 steps, then one batched call per frame
    assert turbo.engine.latency_frames == 1
    lagged_b = run(turbo, [a, b])
    lagged_c = run(turbo, [a, c])
    # the second output is frame a, finished: the new frame only entered the batch
    assert torch.equal(lagged_b, lagged_c)
    first_a = run(turbo, [a])
    assert torch.allclose(lagged_b, first_a, atol=1e-4)


def test_daemon_path_gets_the_frame_as_uint8_rounded_like_the_chain(turbo, frames, turbo_first):
    # keep_uint8 (the daemon's chain): the engine hands over uint8, made on the device; the
    # bytes equal what the chain makes of the float frame (round(255 * x))
    from bridge.frames import to_uint8_rgb

    out = run(turbo, frames[:1], keep_uint8=True)
    assert out.dtype == torch.uint8 and out.shape == turbo_first.shape
    assert np.array_equal(out[0].numpy(), to_uint8_rgb(turbo_first[0] * 255.0))


def test_sequential_mode_has_no_latency(models_root, frames):
    stage = AvatarStage(device="cpu", base_model="sd-turbo", steps=2, stream_batch=False, **TINY)
    calls = count_calls(stage.engine.unet)
    out_b = run(stage, [frames[0], frames[1]])
    assert calls[0] == 4 and stage.engine.latency_frames == 0
    assert (run(stage, [frames[0], frames[3]]) - out_b).abs().max() > 1e-3
    assert torch.equal(run(stage, [frames[1]]), out_b)


def test_similarity_filter_reuses_the_last_output_for_still_input(turbo, frames):
    calls = count_calls(turbo.engine.unet)
    still = [frames[0]] * 8
    out = run(turbo, still, similarity_filter=True, similarity_threshold=0.5, similarity_max_skip=3)
    # identical frames: skip probability 1, at most 3 in a row -> frames 1 and 5 are processed
    assert calls[0] == 2 + 1
    assert turbo.engine.skipped  # frame 8 was a skip and returned the previous output
    assert torch.equal(out, turbo.engine._last_output)
    calls[0] = 0
    run(turbo, frames[:4], similarity_filter=True, similarity_threshold=0.999, similarity_max_skip=3)
    assert calls[0] == 2 + 3  # moving video: nothing skipped


def test_cfg_none_ignores_guidance_and_full_uses_the_negative_prompt(models_root, frames):
    none = AvatarStage(device="cpu", base_model="sd-turbo", cfg_type="none", steps=1, **TINY)
    assert torch.equal(run(none, frames[:1], guidance_scale=1.0), run(none, frames[:1], guidance_scale=4.0))
    full = AvatarStage(device="cpu", base_model="sd-turbo", cfg_type="full", steps=1, vae="full", **TINY)
    calls = count_calls(full.engine.unet)
    base = run(full, frames[:1])
    assert calls[0] == 1  # one UNet call on a batch of 2 (unconditional + conditional)
    assert (run(full, frames[:1], negative_prompt="a cat") - base).abs().max() > 1e-3


def test_overlap_switch_is_kept_for_old_presets_and_changes_nothing(models_root, frames):
    # the engine's assembly line overlaps the stages now; the switch only has to load and be harmless
    stage = AvatarStage(device="cpu", base_model="sd-turbo", steps=1, **TINY)
    plain = [run(stage, frames[:k]) for k in (1, 2)]
    stage.reset()
    overlapped = [run(stage, frames[:k], overlap=True) for k in (1, 2)]
    for a, b in zip(plain, overlapped):
        assert torch.allclose(a, b, atol=1e-5)


# ----------------------------------------------------------------------------- identity (SD 1.5)
def test_ip_adapter_identity_from_reference_images(models_root, frames, tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 32, 3), dtype=np.uint8)).save(refs / f"ref{i}.png")
    stage = AvatarStage(device="cpu", base_model="dreamshaper-8", lora="lcm-lora-sdv1-5", ip_adapter="auto",
                        cfg_type="self", steps=1, **TINY)
    assert stage.family == "sd15" and stage.engine.has_ip_adapter and "lora" in stage.sources
    without = run(stage, frames[:2])
    calls = count_calls(stage.pipe.image_encoder)
    with_refs = run(stage, frames[:2], reference_images=str(refs))
    assert calls[0] == 1  # embeddings once per change of reference_images, not per frame
    assert (with_refs - without).abs().max() > 1e-3
    stronger = run(stage, frames[:2], reference_images=str(refs), ip_adapter_scale=1.8)
    assert (stronger - with_refs).abs().max() > 1e-3
    assert calls[0] == 1


def test_missing_reference_folder_is_reported_once_and_the_stream_goes_on(models_root, frames, tmp_path):
    stage = AvatarStage(device="cpu", base_model="dreamshaper-8", ip_adapter="auto", steps=1, **TINY)
    missing = str(tmp_path / "nobody")
    with pytest.raises(ConfigError, match="put PNG/JPEG photos"):
        run(stage, frames[:1], reference_images=missing)
    out = run(stage, frames[:1], reference_images=missing)  # same value: no second error
    assert out.shape == (1, SIZE, SIZE, 3)


def test_lora_is_fused_into_the_unet(models_root, frames):
    with_lora = AvatarStage(device="cpu", base_model="dreamshaper-8", lora="lcm-lora-sdv1-5", steps=1, **TINY)
    without = AvatarStage(device="cpu", base_model="dreamshaper-8", steps=1, **TINY)
    assert (run(with_lora, frames[:1]) - run(without, frames[:1])).abs().max() > 1e-3


def test_sdxl_family_with_its_controlnet_and_tiny_vae(tmp_path, frames, monkeypatch):
    from avatar_models import build_base, build_controlnet, build_taesd

    root = tmp_path / "models"
    build_base(root, "sdxl", full_vae=False)
    build_controlnet(root, "sdxl")
    build_taesd(root, "taesdxl")
    stage = AvatarStage(device="cpu", base_model="sdxl-turbo", models_dir=str(root), steps=2, cfg_type="full", **TINY)
    assert stage.family == "sdxl" and stage.sources["controlnet"].endswith("controlnet-openpose-sdxl-1.0")
    assert stage.sources["vae"].endswith("taesdxl")
    base = run(stage, frames[:2])
    assert base.shape == (1, SIZE, SIZE, 3)
    assert (run(stage, frames[:2], prompt="a red robot") - base).abs().max() > 1e-3
    assert (run(stage, frames[:2], controlnet_conditioning_scale=0.0) - base).abs().max() > 1e-3


# ----------------------------------------------------------------------------- families
def test_known_family_mismatch_is_refused_when_set():
    with pytest.raises(ConfigError, match="no IP-Adapter for SD 2.1"):
        validate_params(AvatarConfig, {"base_model": "sd-turbo", "ip_adapter": "ip-adapter-sd15"})
    with pytest.raises(ConfigError, match="is for SD 2.1 .* but base model 'dreamshaper-8' is SD 1.5"):
        validate_params(AvatarConfig, {"base_model": "dreamshaper-8", "controlnet": "controlnet-openpose-sd21"})


def test_family_mismatch_of_local_folders_is_refused_at_load(models_root):
    sd15 = models_root / "Lykon" / "dreamshaper-8"
    sd21_cn = models_root / "thibaud" / "controlnet-sd21-openpose-diffusers"
    with pytest.raises(ConfigError, match="is for SD 2.1 .* SD 1.5"):
        AvatarStage(device="cpu", base_model=str(sd15), controlnet=str(sd21_cn), **TINY)
    with pytest.raises(ConfigError, match="no IP-Adapter for SD 2.1"):
        AvatarStage(device="cpu", base_model=str(models_root / "stabilityai" / "sd-turbo"), ip_adapter="auto", **TINY)


# ----------------------------------------------------------------------------- in the daemon
def write_preset(folder: Path, name: str, stages: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump({"description": name, "stages": stages}), encoding="utf-8")


def read_rgba(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        assert img.mode == "RGBA"
        return np.asarray(img)


def test_daemon_streams_carphone_through_the_avatar_to_rgba(models_root, carphone, carphone_frames, tmp_path, monkeypatch, capsys):
    presets = tmp_path / "presets"
    write_preset(presets, "tiny-avatar", [
        {"stage": "avatar", "params": {"base_model": "sd-turbo", "steps": 2, "cfg_type": "self", **TINY}},
        {"stage": "alpha", "params": {"alpha_source": "output"}},
    ])
    monkeypatch.setenv("AVATAR_BRIDGE_PRESETS", str(presets))
    out = tmp_path / "out"
    rc = cli.main(["run", "--source", f"video:{carphone}", "--sink", f"images:{out}", "--preset", "tiny-avatar",
                   "--max-frames", "6", "--stats-every", "0", "--json", "--no-osc"])
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and stats["frames_out"] == 6 and stats["last_error"] is None
    files = sorted(out.glob("frame_*.png"))
    assert len(files) == 6
    for path in files:
        rgba = read_rgba(path)
        assert rgba.shape == (SIZE, SIZE, 4)
    # the avatar, not the camera: a plain resize of the camera frame looks different
    import cv2

    camera = cv2.resize(carphone_frames[0], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    assert np.abs(read_rgba(files[0])[..., :3].astype(int) - camera).mean() > 10


def test_missing_model_leaves_the_daemon_streaming_the_alpha_path_with_an_error(carphone, carphone_frames, tmp_path, monkeypatch):
    from bridge.engine import Engine
    from bridge.transports import open_sink, open_source

    empty = tmp_path / "no-models"
    empty.mkdir()
    monkeypatch.setenv("AVATAR_BRIDGE_MODELS", str(empty))
    chain = Chain.from_spec([("avatar", {"base_model": "sd-turbo", **TINY}), ("alpha", {"alpha_mode": "straight"})])
    assert isinstance(chain.slots[0].stage, UnloadedStage)
    assert "avatar-bridge models fetch sd-turbo" in chain.last_error and "\n" not in chain.last_error
    states = []
    out = tmp_path / "out"
    engine = Engine(open_source(f"video:{carphone}"), chain, open_sink(f"images:{out}"), max_frames=5,
                    on_status=lambda s: states.append(s.state))
    stats = engine.run()
    assert stats.frames_out == 5
    assert "error" in states and "live" not in states
    assert "not downloaded" in stats.last_error
    rgba = read_rgba(sorted(out.glob("frame_*.png"))[0])
    assert rgba.shape == (144, 176, 4)
    assert np.array_equal(rgba[..., :3], carphone_frames[0])  # the camera frame, with the person matte
    assert 0 < rgba[..., 3].mean() < 255


def test_a_reload_brings_a_bypassed_avatar_back(models_root, carphone_frames, tmp_path, monkeypatch):
    empty = tmp_path / "no-models"
    empty.mkdir()
    chain = Chain.from_spec([("avatar", {"base_model": "sd-turbo", "models_dir": str(empty), **TINY})])
    frame = Frame(carphone_frames[0], 0, 0.0, 0.0)
    assert chain.process(frame).image.shape == (144, 176, 4)
    events = []
    chain.on_event = lambda event, detail: events.append(event)
    assert chain.set_param("avatar", "models_dir", str(models_root)) == str(models_root)
    deadline = time.monotonic() + 120  # ends as soon as the reload is done; long only for a loaded machine
    while chain.loading and time.monotonic() < deadline:
        chain.process(frame)
        time.sleep(0.05)
    out = chain.process(frame)
    assert events[:1] == ["loading"] and "loaded" in events
    assert isinstance(chain.slots[0].stage, AvatarStage)
    assert out.image.shape == (SIZE, SIZE, 4)


def test_stages_without_bypass_still_refuse_to_start_when_they_cannot_load(monkeypatch):
    from bridge.errors import ModelMissingError
    from bridge.stages import alpha

    def missing(model):
        raise ModelMissingError("person-alpha: the selfie segmentation model is missing")

    monkeypatch.setattr(alpha, "load_selfie_segmenter", missing)
    with pytest.raises(ModelMissingError, match="selfie"):
        Chain.from_spec([("alpha", {})])


@pytest.mark.parametrize("variant, keys, message", [
    ("plus", {"image_proj.latents": (1, 16, 768), "image_proj.proj_in.weight": (768, 32)}, "IP-Adapter Plus"),
    ("faceid", {"image_proj.proj.0.weight": (1024, 512), "image_proj.proj.2.weight": (3072, 1024), "image_proj.norm.weight": (768,)},
     "FaceID .*InsightFace"),
    ("faceid-plus", {"image_proj.perceiver_resampler.proj_in.weight": (768, 32)}, "FaceID Plus"),
])
def test_ip_adapter_plus_and_faceid_are_refused_with_one_line(models_root, tmp_path, variant, keys, message):
    from safetensors.torch import save_file

    from bridge.avatar.models import ip_adapter_variant

    folder = tmp_path / "ip"
    shutil.copytree(models_root / "h94" / "IP-Adapter" / "models" / "image_encoder", folder / "image_encoder")
    weight = folder / f"ip-adapter-{variant}_sd15.safetensors"
    save_file({k: torch.zeros(shape) for k, shape in keys.items()} | {"ip_adapter.1.to_k_ip.weight": torch.zeros(32, 768)}, str(weight))
    assert ip_adapter_variant(weight) == variant
    assert ip_adapter_variant(models_root / "h94" / "IP-Adapter" / "models" / "ip-adapter_sd15.safetensors") == "plain"
    with pytest.raises(ConfigError, match=message) as info:
        AvatarStage(device="cpu", base_model="dreamshaper-8", ip_adapter=str(weight), steps=1, **TINY)
    assert "\n" not in str(info.value) and "use ip_adapter: auto" in str(info.value)


# ----------------------------------------------------------------------------- bench and GPU check
def test_bench_avatar_rows_report_end_to_end_pipelined_and_diffusion_fps(capsys):
    rc = cli.main(["bench", "avatar", "--random-weights", "--model-size", "tiny", "--device", "cpu", "--width", "64", "--height", "64",
                   "--frames", "1", "--warmup", "0", "--steps", "1,2", "--controlnet", "on,off", "--acceleration", "none", "--json"])
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert rc == 0 and [(r["steps"], r["controlnet"]) for r in rows] == [(1, True), (1, False), (2, True), (2, False)]
    # each row also goes to stderr as it finishes: a GPU check cut off by its timeout keeps the rows it measured
    streamed = [json.loads(line.split("bench avatar row: ", 1)[1]) for line in captured.err.splitlines() if line.startswith("bench avatar row: ")]
    assert streamed == rows
    for row in rows:
        assert row["fps"] == row["fps_end_to_end"] and row["fps_pipelined"] > 0 and row["fps_diffusion"] > 0
        assert row["latency_frames"] == row["steps"] - 1 and row["acceleration"] == "none" and row["output_finite"]
        parts = row["parts_ms"]
        assert parts["frame"] > 0 and parts["unet"] > 0 and (parts["controlnet"] > 0) == row["controlnet"]


def test_gpu_check_keeps_the_rows_of_a_run_that_broke_off_and_runs_the_next(tmp_path):
    """A bench run that dies after one row (a timeout, a compile error) keeps that row in its .json, the
    later runs still start, and the script ends with exit 2 and one line naming what did not finish."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    row = {"steps": 1, "controlnet": True, "lever": "all-on", "requested_acceleration": "auto", "fps": 1.0}
    fake = tmp_path / "python"  # this python, except that every bench prints one row and dies
    fake.write_text("#!/usr/bin/env bash\n"
                    'case "$*" in *"bench avatar"*) echo "bench avatar: built" >&2; '
                    f"echo 'bench avatar row: {json.dumps(row)}' >&2; exit 1;; esac\n"
                    f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": str(fake), "OUT": str(out), "WHEELS": str(tmp_path / "none")}
    run = subprocess.run(["bash", str(root / "scripts" / "gpu-check.sh"), "--cpu"], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=600)
    assert run.returncode == 2, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("gpu-check: not every run finished") and last.count("1 rows kept") == 3, last
    for name in ("bench", "levers", "compile"):
        assert json.loads((out / f"{name}.json").read_text()) == [row], name


def test_gpu_check_runs_the_issue_matrix_at_512(tmp_path):
    """scripts/gpu-check.sh --dry-run: the bench commands it would run (512x512, 1 and 2 steps, ControlNet
    on/off, acceleration none/auto; then the fast-path levers; then compile-graphs) under one time budget."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    script = root / "scripts" / "gpu-check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert subprocess.run(["bash", "-n", str(root / "scripts" / "gpu-wheels.sh")]).returncode == 0
    out = subprocess.run(["bash", str(script), "--dry-run"], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "WHEELS": str(tmp_path / "none")})
    assert out.returncode == 0, out.stderr
    bench = [line for line in out.stderr.splitlines() if "bench avatar" in line]
    assert len(bench) == 3, "the grid, the levers, then the compiled rows"
    grid, levers, compiled = (line.split() for line in bench)
    # one budget of 400 s: the grid 35 %, the levers 25 %, the compiled rows what is left (the real run
    # gives each what the runs before it left, up to its share)
    assert grid[1:3] == ["timeout", "140"] and levers[1:3] == ["timeout", "100"] and "400)" in compiled
    for words in (grid, levers, compiled):
        assert words[words.index("--width") + 1] == "512" and words[words.index("--height") + 1] == "512"
        assert "--random-weights" in words and "--json" in words
    for words, acceleration in ((grid, "none,auto"), (compiled, "compile-graphs")):
        for flag, value in (("--steps", "1,2"), ("--controlnet", "on,off"), ("--acceleration", acceleration)):
            assert words[words.index(flag) + 1] == value
    assert "--profile" in grid
    assert levers[levers.index("--levers") + 1] == "all-on,cudnn-benchmark-off,spin-wait,nchw,no-pose,no-pose-cn-graph"
    # --help prints the whole header, down to how to run it on a lent machine
    usage = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and 'carry=["wheels"]' in usage.stdout and "compile.json" in usage.stdout
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option" in bad.stderr
