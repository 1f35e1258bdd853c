"""``avatar-bridge models`` and the model lookup: offline behaviour, families, what gets fetched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avatar_models import build_base, build_controlnet, build_ip_adapter, build_lcm_lora, build_taesd
from bridge import cli
from bridge.avatar.models import REGISTRY, check_known, family_of, resolve
from bridge.errors import ConfigError, ModelMissingError
from bridge.doctor import check_avatar_models
from bridge.vision.onnx_matting import ONNX_MODELS
from bridge.models_cli import plan_files, preset_requirements


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SD-Turbo family set (base, ControlNet, TAESD) plus the SD 1.5 LoRA and IP-Adapter files."""
    folder = tmp_path_factory.mktemp("models")
    build_base(folder, "sd21", full_vae=False)
    build_controlnet(folder, "sd21")
    build_taesd(folder)
    build_lcm_lora(folder)
    build_ip_adapter(folder)
    return folder


@pytest.fixture
def presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "presets"
    folder.mkdir()
    avatar = {"stage": "avatar", "params": {"base_model": "sd-turbo", "width": 64, "height": 64}}
    (folder / "turbo-only.yaml").write_text(yaml.safe_dump({"description": "t", "stages": [avatar, {"stage": "alpha"}]}))
    identity = {"stage": "avatar", "params": {"base_model": "dreamshaper-8", "lora": "lcm-lora-sdv1-5", "ip_adapter": "auto"}}
    (folder / "identity.yaml").write_text(yaml.safe_dump({"description": "i", "stages": [identity]}))
    (folder / "matte.yaml").write_text(yaml.safe_dump({"description": "m", "stages": [{"stage": "alpha"}]}))
    monkeypatch.setenv("AVATAR_BRIDGE_PRESETS", str(folder))
    return folder


def test_models_list_shows_what_is_present_offline(root, capsys):
    assert cli.main(["models", "list", "--models-dir", str(root), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(REGISTRY) | set(ONNX_MODELS)  # the avatar models and the person alpha stage's ONNX networks
    assert rows["modnet"]["kind"] == "matting" and not rows["modnet"]["present"]
    assert rows["sd-turbo"]["present"] and rows["sd-turbo"]["path"] == str(root / "stabilityai" / "sd-turbo")
    assert rows["controlnet-openpose-sd21"]["present"] and rows["taesd"]["present"] and rows["ip-adapter-sd15"]["present"]
    assert not rows["dreamshaper-8"]["present"] and not rows["controlnet-openpose-sdxl"]["present"]
    assert cli.main(["models", "list", "--models-dir", str(root)]) == 0
    assert "sd-turbo" in capsys.readouterr().out


def offline_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real console entry point with the hub unreachable (HF_HUB_OFFLINE=1)."""
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


def test_fetch_without_network_is_one_line_saying_what_to_fetch_and_where(tmp_path):
    empty = tmp_path / "models"
    done = offline_cli("models", "fetch", "sd-turbo", "--models-dir", str(empty))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("avatar-bridge:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "cannot download stabilityai/sd-turbo" in lines[0]
    assert str(empty / "stabilityai" / "sd-turbo") in lines[0] and "models fetch sd-turbo --models-dir" in lines[0]


def test_fetch_of_a_complete_model_does_not_touch_the_network(root, presets):
    done = offline_cli("models", "fetch", "--preset", "turbo-only", "--models-dir", str(root), env={"AVATAR_BRIDGE_PRESETS": str(presets)})
    assert done.returncode == 0, done.stderr
    assert "stabilityai/sd-turbo: already in" in done.stdout and "madebyollin/taesd: already in" in done.stdout
    assert "thibaud/controlnet-sd21-openpose-diffusers: already in" in done.stdout


def test_fetch_needs_a_preset_or_names():
    assert cli.main(["models", "fetch"]) == 2


def test_preset_requirements_fill_in_the_family_words(presets):
    assert preset_requirements("turbo-only") == [("base", "sd-turbo"), ("controlnet", "controlnet-openpose-sd21"), ("vae", "taesd")]
    assert preset_requirements("identity") == [("base", "dreamshaper-8"), ("controlnet", "controlnet-openpose-sd15"),
                                               ("vae", "taesd"), ("lora", "lcm-lora-sdv1-5"), ("ip-adapter", "ip-adapter-sd15")]
    with pytest.raises(ConfigError, match="no avatar stage"):
        preset_requirements("matte")


def test_missing_model_error_is_one_line_with_the_fix(tmp_path):
    with pytest.raises(ModelMissingError) as err:
        resolve("sd-turbo", "base", tmp_path, preset="avatar-turbo")
    message = str(err.value)
    assert "\n" not in message
    assert "avatar-bridge models fetch --preset avatar-turbo" in message
    assert str(tmp_path / "stabilityai" / "sd-turbo") in message


def test_a_local_folder_works_anywhere_a_name_does(root, tmp_path):
    copy = tmp_path / "my-controlnet"
    copy.mkdir()
    src = root / "thibaud" / "controlnet-sd21-openpose-diffusers"
    for f in src.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    found = resolve(str(copy), "controlnet", tmp_path / "elsewhere")
    assert found.path == copy and family_of(found) == "sd21"
    with pytest.raises(ModelMissingError, match="does not exist"):
        resolve(str(tmp_path / "nope"), "controlnet")


def test_pickle_only_weights_are_refused(tmp_path):
    folder = tmp_path / "cn"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelMissingError, match="safetensors"):
        resolve(str(folder), "controlnet")


def test_families_are_read_from_the_files(root):
    assert family_of(resolve("sd-turbo", "base", root)) == "sd21"
    assert family_of(resolve("controlnet-openpose-sd21", "controlnet", root)) == "sd21"
    assert family_of(resolve("lcm-lora-sdv1-5", "lora", root)) == "sd15"
    assert family_of(resolve("ip-adapter-sd15", "ip-adapter", root)) == "sd15"


def test_known_mismatches_are_refused_with_what_to_use():
    with pytest.raises(ConfigError, match="no IP-Adapter for SD 2.1"):
        check_known("sd-turbo", "openpose", "tiny", "", "auto")
    with pytest.raises(ConfigError, match="lcm-lora-sdv1-5' is for SD 1.5 but base model 'sdxl-turbo' is SDXL"):
        check_known("sdxl-turbo", "openpose", "tiny", "lcm-lora-sdv1-5", "")
    with pytest.raises(ConfigError, match="picks taesdxl"):
        check_known("sdxl-turbo", "openpose", "taesd", "", "")
    check_known("dreamshaper-8", "openpose", "tiny", "lcm-lora-sdv1-5", "auto")  # the metadj set is fine


def test_plan_files_takes_configs_and_safetensors_only():
    sd15_repo = ["model_index.json", "v1-5-pruned.safetensors", "v1-5-pruned.ckpt", "scheduler/scheduler_config.json",
                 "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json", "feature_extractor/preprocessor_config.json",
                 "safety_checker/config.json", "safety_checker/model.safetensors",
                 "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
                 "unet/diffusion_pytorch_model.bin", "text_encoder/config.json", "text_encoder/model.safetensors",
                 "text_encoder/model.fp16.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors"]
    files = plan_files("base", sd15_repo)
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in files and "unet/diffusion_pytorch_model.safetensors" not in files
    assert "vae/diffusion_pytorch_model.safetensors" in files  # no fp16 variant there: the plain one
    assert not any(f.endswith((".bin", ".ckpt")) or f.startswith(("safety_checker", "v1-5")) for f in files)
    assert "unet/diffusion_pytorch_model.safetensors" in plan_files("base", sd15_repo, prefer_fp16=False)
    assert plan_files("controlnet", ["config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"]) == \
        ["config.json", "diffusion_pytorch_model.safetensors"]
    with pytest.raises(ModelMissingError, match="safetensors"):
        plan_files("controlnet", ["config.json", "diffusion_pytorch_model.bin"])
    assert plan_files("ip-adapter", [], REGISTRY["ip-adapter-sd15"]) == [
        "models/ip-adapter_sd15.safetensors", "models/image_encoder/config.json", "models/image_encoder/model.safetensors"]
    # an IP-Adapter repo with no registry entry: refused with the fix, not an empty download
    with pytest.raises(ModelMissingError, match="not a known IP-Adapter layout.*ip-adapter-sd15"):
        plan_files("ip-adapter", ["models/some_adapter.safetensors", "models/image_encoder/config.json"])


def test_doctor_reports_which_avatar_presets_are_ready(root, presets, monkeypatch, tmp_path):
    monkeypatch.setenv("AVATAR_BRIDGE_MODELS", str(root))
    check = check_avatar_models()
    assert not check.ok and check.optional
    assert "ready: turbo-only" in check.detail and "identity (missing dreamshaper-8, controlnet-openpose-sd15)" in check.detail
    assert check.fix == "avatar-bridge models fetch --preset identity"
    (presets / "identity.yaml").unlink()
    assert check_avatar_models().ok


def _copy_selected(src: Path, dest: Path, keep) -> None:
    for path in src.rglob("*"):
        rel = path.relative_to(src).as_posix()
        if path.is_file() and keep(rel):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(path.read_bytes())


@pytest.mark.parametrize("family", ["sd21", "sdxl"])
def test_one_table_fetch_plan_scope_artifacts_and_the_check_agree(family, tmp_path, monkeypatch):
    """What ``models fetch`` downloads and what Scope downloads are each a complete model for
    ``missing_files``, and dropping any needed part (SDXL's text_encoder_2/tokenizer_2 too) makes it incomplete."""
    from fnmatch import fnmatch

    from bridge.avatar import layout
    from bridge.avatar.models import lookup, missing_files

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "scope_standin"))  # bridge.scope_plugin imports scope
    from bridge.scope_plugin.models import artifact_files

    repos = tmp_path / "repos"
    repo = build_base(repos, family, full_vae=True)
    spec = lookup({"sd21": "sd-turbo", "sdxl": "sdxl-turbo"}[family], "base")
    listing = [p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()]
    assert not missing_files(repo, "base", spec)

    planned = set(plan_files("base", listing, spec))
    fetched = tmp_path / "fetched"
    _copy_selected(repo, fetched, lambda rel: rel in planned)
    assert not missing_files(fetched, "base", spec) and not missing_files(fetched, "base")  # with and without the registry entry

    patterns = []
    for entry in artifact_files("base", spec, full_vae=False):
        patterns += [entry] if entry.endswith((".json", ".safetensors")) else [entry, f"{entry}/*"]
    scoped = tmp_path / "scope"
    _copy_selected(repo, scoped, lambda rel: any(fnmatch(rel, p) for p in patterns))
    assert not missing_files(scoped, "base", spec)
    assert not (scoped / "vae").exists()  # vae: tiny by default: the base's own VAE is not needed

    needed = [p.path for p in layout.parts("base", spec, sdxl=family == "sdxl")]
    assert ("text_encoder_2/model" in needed and "tokenizer_2" in needed) == (family == "sdxl")
    for part in needed:
        broken = tmp_path / f"broken-{part.replace('/', '_')}"
        _copy_selected(fetched, broken, lambda rel, part=part: not (rel == part or rel.startswith(part + "/") or rel.startswith(part + ".")))
        assert missing_files(broken, "base", spec), f"{part} removed, yet the model counts as complete"
        assert missing_files(broken, "base"), f"{part} removed, yet the folder counts as complete without its registry entry"


def test_the_models_cli_and_the_doctor_do_not_import_each_other_in_a_circle():
    import ast

    source = (Path(__file__).resolve().parent.parent / "bridge" / "models_cli.py").read_text()
    imported = {n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    assert "bridge.doctor" not in imported  # the doctor imports the models CLI, not the other way round


@pytest.mark.parametrize("dtype_name", ["float16", "float32"])
def test_with_both_weight_variants_on_disk_the_loader_takes_the_one_it_runs_in(dtype_name, tmp_path):
    """A folder holding ``unet/diffusion_pytorch_model.safetensors`` and its ``.fp16`` file (a
    second fetch, or Scope's download next to ``models fetch``): float16 loads the fp16 file,
    the variant Scope and ``models fetch`` download on CUDA; float32 loads the plain one."""
    import torch
    from safetensors.torch import load_file, save_file

    from bridge.avatar.models import load_components

    base = build_base(tmp_path, "sd21", full_vae=True)
    plain = base / "unet" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(str(plain))
    half = {k: (v * 2).to(torch.float16) for k, v in tensors.items()}  # tells the two files apart
    save_file(half, str(plain.with_name("diffusion_pytorch_model.fp16.safetensors")))
    dtype = getattr(torch, dtype_name)
    comps = load_components(str(base), vae="full", dtype=dtype)
    key = next(k for k in tensors if k.endswith("conv_in.weight"))
    loaded = comps.pipe.unet.state_dict()[key]
    assert loaded.dtype == dtype
    want = half[key] if dtype == torch.float16 else tensors[key].to(dtype)
    torch.testing.assert_close(loaded, want, rtol=0, atol=0)


@pytest.mark.parametrize("cuda", [True, False])
def test_models_fetch_takes_the_variant_the_avatar_loads_here(cuda, tmp_path, monkeypatch):
    """``models fetch`` downloads each weight in one variant: fp16 where this machine has CUDA
    (float16, as Scope's artifacts), the plain file without; ``--fp16`` / ``--full-precision`` override."""
    import torch

    from bridge import models_cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    asked = []
    monkeypatch.setattr(models_cli, "fetch", lambda kind, ref, root, prefer_fp16=True, preset=None: asked.append(prefer_fp16) or tmp_path)
    monkeypatch.setattr(models_cli, "family_of", lambda resolved: "sd21")
    monkeypatch.setattr(models_cli, "resolve", lambda *a, **k: None)
    for extra, want in (([], cuda), (["--fp16"], True), (["--full-precision"], False)):
        asked.clear()
        assert cli.main(["models", "fetch", "taesd", "--models-dir", str(tmp_path), *extra]) == 0
        assert asked == [want], extra
