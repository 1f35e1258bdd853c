"""Avatar models: families, the registry of known models, where they live, and loading them.

Model families (ControlNets, LoRAs, IP-Adapters and tiny VAEs are trained per family and
only work with a base model of the same family):

========  ==========================  ============================  =====================
family    base models                 cross-attention width (UNet)  IP-Adapter
========  ==========================  ============================  =====================
``sd15``  SD 1.5 checkpoints          768 (CLIP ViT-L/14)           yes (h94/IP-Adapter)
``sd21``  SD 2.1, SD-Turbo            1024 (OpenCLIP ViT-H/14)      none exists
``sdxl``  SDXL, SDXL-Turbo            2048 (two text encoders)      yes (h94/IP-Adapter)
========  ==========================  ============================  =====================

The family of a model on disk is read from its ``config.json`` (``cross_attention_dim``,
``addition_embed_type == "text_time"`` for SDXL), of an IP-Adapter from its projection
weight's shape and of a LoRA from its cross-attention key projection, so a local folder
is checked as strictly as a registry name.

Where models live: ``$AVATAR_BRIDGE_MODELS`` (or ``--models-dir`` / the stage's
``models_dir``), default ``~/.cache/avatar-bridge/models``, one folder per Hugging Face
repo: ``<models dir>/stabilityai/sd-turbo/``. A model is looked up as (1) a local path,
(2) that folder, (3) the Hugging Face cache (``~/.cache/huggingface/hub``), offline.
Nothing is downloaded at load time: ``avatar-bridge models fetch`` does that.
Weights load as safetensors only (``use_safetensors=True``); a folder holding only
pickled ``.bin``/``.ckpt`` weights is refused.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.avatar.layout import missing, weight_order
from bridge.errors import ConfigError, ModelMissingError

log = logging.getLogger("bridge.avatar.models")

FAMILY_NAMES = {"sd15": "SD 1.5", "sd21": "SD 2.1 (SD-Turbo)", "sdxl": "SDXL"}
#: UNet/ControlNet ``cross_attention_dim`` -> family (values from the models' config.json).
CROSS_ATTENTION_FAMILY = {768: "sd15", 1024: "sd21", 2048: "sdxl"}
KINDS = ("base", "controlnet", "vae", "lora", "ip-adapter")
ENV_MODELS_DIR = "AVATAR_BRIDGE_MODELS"


@dataclass(frozen=True)
class ModelSpec:
    """A known model: a short name for a Hugging Face repo (or a file in it).

    Attributes:
        name: short name used in presets and on OSC (``sd-turbo``).
        repo_id: Hugging Face ``owner/name``.
        kind: ``base`` | ``controlnet`` | ``vae`` | ``lora`` | ``ip-adapter``.
        families: families it works with.
        description: one line for ``models list``.
        weight: for ``lora``/``ip-adapter``: the weight file inside the repo.
        image_encoder: for ``ip-adapter``: the CLIP image encoder folder inside the repo.
        fp16: the repo publishes each weight also as ``<stem>.fp16.safetensors`` (diffusers'
            ``variant="fp16"``) next to the plain ``<stem>.safetensors``. Scope then
            downloads the fp16 file on CUDA (:func:`bridge.avatar.layout.artifacts`); False
            (the plain file, which every repo here has) where that is not confirmed.
    """

    name: str
    repo_id: str
    kind: str
    families: tuple[str, ...]
    description: str
    weight: str = ""
    image_encoder: str = ""
    fp16: bool = False


#: Known models. Repo ids checked on huggingface.co (model cards and config.json files).
#: ``fp16`` read from the repos' file listings on huggingface.co ("Files and versions",
#: huggingface.co/<repo>/tree/<rev>/<folder> pages, as stored by a search index in 2025-26;
#: the hub itself was not reachable): ``True`` where the listings seen show both variants
#: (folders not seen were added by the same commit, named below), else ``False``: the
#: plain file, which loads everywhere. LoRAs and IP-Adapters name their one weight file,
#: so ``fp16`` means nothing there.
REGISTRY: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        # tree/main/text_encoder: model{,.fp16}.safetensors; tree/<rev>/unet: diffusion_pytorch_model{,.fp16}.safetensors;
        # all folders from "Add Diffusers weights (#2)" (vae/ not seen; read only for vae: full)
        ModelSpec("sd-turbo", "stabilityai/sd-turbo", "base", ("sd21",), "SD-Turbo: 1-2 steps, 512x512, the fastest base", fp16=True),
        # tree/<rev>/unet and text_encoder_2: both variants; all folders from "Add diffusers weights (#4)"
        ModelSpec("sdxl-turbo", "stabilityai/sdxl-turbo", "base", ("sdxl",), "SDXL-Turbo: 1-2 steps, 512x512", fp16=True),
        # tree/main/text_encoder and vae/ (main, a7e52b9): both variants; all folders from one commit,
        # "Duplicate from lykon-models/dreamshaper-8" (unet/ not seen)
        ModelSpec("dreamshaper-8", "Lykon/dreamshaper-8", "base", ("sd15",), "DreamShaper 8, an SD 1.5 checkpoint (use with LCM-LoRA)",
                  fp16=True),
        # not confirmed from this repo's own listing (copies of it, e.g. vladmandic/sd15-diffusers, show
        # unet fp16): the plain files
        ModelSpec("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "base", ("sd15",), "Stable Diffusion 1.5 (use with LCM-LoRA)"),
        ModelSpec("lcm-lora-sdv1-5", "latent-consistency/lcm-lora-sdv1-5", "lora", ("sd15",), "LCM-LoRA: 2-4 step sampling for SD 1.5 bases",
                  weight="pytorch_lora_weights.safetensors"),
        ModelSpec("lcm-lora-sdxl", "latent-consistency/lcm-lora-sdxl", "lora", ("sdxl",), "LCM-LoRA: 2-4 step sampling for SDXL bases",
                  weight="pytorch_lora_weights.safetensors"),
        # tree/main: diffusion_pytorch_model{,.fp16}.bin, ...; tree/refs/pr/4 (main + a README edit):
        # diffusion_pytorch_model.fp16.safetensors too, all from "Duplicate from ControlNet-1-1-preview"
        ModelSpec("controlnet-openpose-sd15", "lllyasviel/control_v11p_sd15_openpose", "controlnet", ("sd15",), "OpenPose ControlNet v1.1 for SD 1.5",
                  fp16=True),
        # no fp16 file in its history ("Upload 2 files (#1)"; safetensors proposed in refs/pr/2): the plain file
        ModelSpec("controlnet-openpose-sd21", "thibaud/controlnet-sd21-openpose-diffusers", "controlnet", ("sd21",), "OpenPose ControlNet for SD 2.1 / SD-Turbo"),
        # listing not seen: the plain file
        ModelSpec("controlnet-openpose-sdxl", "thibaud/controlnet-openpose-sdxl-1.0", "controlnet", ("sdxl",), "OpenPose ControlNet for SDXL"),
        # "add: diffusers compatible variant" (f4a5c74) / "TAESDXL 1.1" (a496ca9): config.json and
        # diffusion_pytorch_model.{bin,safetensors}, no fp16 file
        ModelSpec("taesd", "madebyollin/taesd", "vae", ("sd15", "sd21"), "TAESD tiny VAE for SD 1.x/2.x (AutoencoderTiny)"),
        ModelSpec("taesdxl", "madebyollin/taesdxl", "vae", ("sdxl",), "TAESDXL tiny VAE for SDXL (AutoencoderTiny)"),
        ModelSpec("ip-adapter-sd15", "h94/IP-Adapter", "ip-adapter", ("sd15",), "IP-Adapter for SD 1.5 (identity from reference images)",
                  weight="models/ip-adapter_sd15.safetensors", image_encoder="models/image_encoder"),
        ModelSpec("ip-adapter-sdxl", "h94/IP-Adapter", "ip-adapter", ("sdxl",), "IP-Adapter for SDXL, ViT-H image encoder",
                  weight="sdxl_models/ip-adapter_sdxl_vit-h.safetensors", image_encoder="models/image_encoder"),
    )
}

#: ``controlnet: openpose`` picks the OpenPose ControlNet of the base model's family.
OPENPOSE_CONTROLNET = {"sd15": "controlnet-openpose-sd15", "sd21": "controlnet-openpose-sd21", "sdxl": "controlnet-openpose-sdxl"}
#: ``vae: tiny`` picks the tiny VAE of the base model's family.
TINY_VAE = {"sd15": "taesd", "sd21": "taesd", "sdxl": "taesdxl"}
#: ``ip_adapter: auto`` picks the IP-Adapter of the base model's family (none for SD 2.1).
IP_ADAPTER = {"sd15": "ip-adapter-sd15", "sdxl": "ip-adapter-sdxl"}

NO_IP_ADAPTER_SD21 = ("there is no IP-Adapter for SD 2.1 / SD-Turbo; use an SD 1.5 base (preset metadj: dreamshaper-8 + "
                      "lcm-lora-sdv1-5) or an SDXL base, or set ip_adapter to ''")


# ----------------------------------------------------------------------------- where
def models_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The models folder: ``override``, else ``$AVATAR_BRIDGE_MODELS``, else ``~/.cache/avatar-bridge/models``."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(ENV_MODELS_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "avatar-bridge" / "models"


def lookup(ref: str, kind: str | None = None) -> ModelSpec | None:
    """The registry entry named ``ref`` (or whose repo id is ``ref``), optionally of ``kind``."""
    spec = REGISTRY.get(ref)
    if spec is not None and (kind is None or spec.kind == kind):
        return spec
    for spec in REGISTRY.values():
        if spec.repo_id == ref and (kind is None or spec.kind == kind):
            return spec
    return None


_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _weights(folder: Path, stem: str, prefer_fp16: bool = False) -> Path | None:
    """``folder/stem.safetensors`` or its fp16 variant, whichever exists (``prefer_fp16``: fp16 first)."""
    for name in weight_order(stem, prefer_fp16):
        if (folder / name).is_file():
            return folder / name
    return None


def missing_files(path: Path, kind: str, spec: ModelSpec | None = None) -> list[str]:
    """What a model folder (or file) of ``kind`` lacks to load; empty when complete.

    Reads the one table of model files (:data:`bridge.avatar.layout.LAYOUT`): an SDXL base
    also needs ``text_encoder_2`` and ``tokenizer_2``.
    """
    return missing(path, kind, spec)


@dataclass
class Resolved:
    """A model found on disk: ``path`` (folder, or file for a LoRA/IP-Adapter weight) and its registry entry."""

    ref: str
    kind: str
    path: Path
    spec: ModelSpec | None = None


def fetch_hint(ref: str, preset: str | None = None) -> str:
    """The ``avatar-bridge models fetch`` command that gets ``ref`` (or the preset's models)."""
    return f"avatar-bridge models fetch --preset {preset}" if preset else f"avatar-bridge models fetch {ref}"


def resolve(ref: str, kind: str, root: Path | None = None, preset: str | None = None) -> Resolved:
    """Find model ``ref`` of ``kind`` on disk, never over the network.

    ``ref`` is a local path, a registry name (``sd-turbo``) or a repo id
    (``stabilityai/sd-turbo``). Looks in ``root/<owner>/<name>`` and then the Hugging Face
    cache.

    Raises:
        ModelMissingError: not found or incomplete; one line naming what to fetch and
            where to put it.
        ConfigError: ``ref`` is neither a path, nor a known name, nor a repo id.
    """
    root = root or models_dir()
    local = Path(ref).expanduser()
    spec = lookup(ref, kind)
    if spec is None and (local.is_absolute() or ref.startswith((".", "~")) or local.exists()):
        if not local.exists():
            raise ModelMissingError(f"{kind} model folder {ref!r} does not exist; fix the path or use a name from 'avatar-bridge models list'")
        missing = missing_files(local, kind)
        if missing:
            raise ModelMissingError(f"{kind} model at {local} is incomplete (missing {', '.join(missing[:3])}); "
                                    f"it must be a diffusers folder with .safetensors weights")
        return Resolved(ref, kind, local)
    repo = spec.repo_id if spec else ref
    if spec is None and not _REPO_RE.match(ref):
        known = ", ".join(n for n, s in REGISTRY.items() if s.kind == kind)
        raise ConfigError(f"unknown {kind} model {ref!r}: not a folder, not a Hugging Face owner/name id, not a known name ({known})")
    target = root / repo
    if not missing_files(target, kind, spec):
        return Resolved(ref, kind, target, spec)
    cached = _hf_cache_snapshot(repo)
    if cached is not None and not missing_files(cached, kind, spec):
        return Resolved(ref, kind, cached, spec)
    raise ModelMissingError(
        f"{kind} model {ref!r} ({repo}) is not downloaded: run '{fetch_hint(spec.name if spec else repo, preset)} --models-dir {root}' "
        f"on a machine with internet, or put the files of https://huggingface.co/{repo} in {target}"
    )


def _hf_cache_snapshot(repo: str) -> Path | None:
    """The newest snapshot of ``repo`` in the Hugging Face cache, offline; None if absent."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:
        return None


# ----------------------------------------------------------------------------- families
def family_of_config(config: dict[str, Any], what: str) -> str:
    """The family of a UNet/ControlNet ``config.json`` dict.

    Raises:
        ConfigError: the cross-attention width is none of 768/1024/2048.
    """
    dim = config.get("cross_attention_dim")
    if isinstance(dim, (list, tuple)):
        dim = dim[0]
    if config.get("addition_embed_type") == "text_time":
        return "sdxl"
    family = CROSS_ATTENTION_FAMILY.get(int(dim)) if dim is not None else None
    if family is None:
        raise ConfigError(f"{what}: cross_attention_dim {dim} is not SD 1.5 (768), SD 2.1 (1024) or SDXL (2048); unsupported model family")
    return family


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelMissingError(f"cannot read {path}: {exc}") from None


def family_of(resolved: Resolved) -> str | None:
    """The family of a model on disk (None when it cannot be told, e.g. a tiny VAE folder)."""
    kind, path = resolved.kind, resolved.path
    if kind == "base":
        return family_of_config(_read_json(path / "unet" / "config.json"), f"base model {resolved.ref}")
    if kind == "controlnet":
        return family_of_config(_read_json(path / "config.json"), f"ControlNet {resolved.ref}")
    if kind == "ip-adapter":
        return _ip_family(resolved, None)
    if kind == "lora":
        weight = lora_file(resolved)
        shape = _tensor_shape(weight, _is_lora_cross_key_down)
        return CROSS_ATTENTION_FAMILY.get(shape[1]) if shape and len(shape) == 2 else None
    if kind == "vae" and resolved.spec is not None and len(resolved.spec.families) == 1:
        return resolved.spec.families[0]
    return None


def _is_lora_cross_key_down(key: str) -> bool:
    k = key.replace("_", ".")
    return "attn2" in k and "to.k" in k and ("lora.down" in k or "lora.A" in k) and k.endswith("weight")


def _tensor_shape(path: Path, match: Any) -> list[int] | None:
    """Shape of the first tensor in a safetensors file whose key satisfies ``match``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            if match(key):
                return list(f.get_slice(key).get_shape())
    return None


def check_families(base_family: str, base_ref: str, parts: dict[str, tuple[str, str | None]]) -> None:
    """Refuse parts of another family than the base model.

    Args:
        base_family: ``sd15`` | ``sd21`` | ``sdxl``.
        parts: kind -> (reference as the user wrote it, its family or None if unknown).

    Raises:
        ConfigError: a mismatch, naming the part, both families and what to use instead.
    """
    if base_family == "sd21" and parts.get("ip-adapter", ("", None))[0]:
        raise ConfigError(f"avatar: ip_adapter {parts['ip-adapter'][0]!r} with base {base_ref!r}: {NO_IP_ADAPTER_SD21}")
    suggestions = {"controlnet": ("openpose", OPENPOSE_CONTROLNET), "vae": ("tiny", TINY_VAE), "ip-adapter": ("auto", IP_ADAPTER)}
    for kind, (ref, family) in parts.items():
        if not ref or family is None or family == base_family:
            continue
        hint = ""
        if kind in suggestions:
            word, table = suggestions[kind]
            hint = f"; use '{word}' (picks {table.get(base_family, 'none')})"
        elif kind == "lora":
            hint = "; use a LoRA trained for the base model's family (lcm-lora-sdv1-5 for SD 1.5, lcm-lora-sdxl for SDXL)"
        raise ConfigError(f"avatar: {kind} {ref!r} is for {FAMILY_NAMES[family]} but base model {base_ref!r} is "
                          f"{FAMILY_NAMES[base_family]}; ControlNets, LoRAs, IP-Adapters and tiny VAEs only work within one family{hint}")


def known_family(ref: str, kind: str) -> str | None:
    """The family of a registry name/repo id (no disk access); None for paths and unknown ids."""
    spec = lookup(ref, kind)
    if spec is None or len(spec.families) != 1:
        return None
    return spec.families[0]


def auto_ref(ref: str, kind: str, family: str) -> str:
    """Replace the family-dependent words: ``openpose`` (ControlNet), ``tiny`` (VAE), ``auto`` (IP-Adapter)."""
    if kind == "controlnet" and ref == "openpose":
        return OPENPOSE_CONTROLNET[family]
    if kind == "vae" and ref == "tiny":
        return TINY_VAE[family]
    if kind == "ip-adapter" and ref == "auto":
        if family not in IP_ADAPTER:
            raise ConfigError(f"avatar: ip_adapter 'auto' with an {FAMILY_NAMES[family]} base: {NO_IP_ADAPTER_SD21}")
        return IP_ADAPTER[family]
    return ref


def check_known(base: str, controlnet: str, vae: str, lora: str, ip_adapter: str) -> None:
    """Family check using registry names only (no disk access): for presets and OSC.

    Paths and unknown repo ids pass here and are checked at load by :func:`load_components`.

    Raises:
        ConfigError: a known mismatch (see :func:`check_families`).
    """
    family = known_family(base, "base")
    if family is None:
        return
    parts: dict[str, tuple[str, str | None]] = {}
    for kind, ref in (("controlnet", controlnet), ("vae", vae), ("lora", lora), ("ip-adapter", ip_adapter)):
        if not ref or ref == "full":
            continue
        if kind == "ip-adapter" and family == "sd21":
            parts[kind] = (ref, None)
            continue
        ref = auto_ref(ref, kind, family)
        spec = lookup(ref, kind)
        fam = None if spec is None else (family if family in spec.families else spec.families[0])
        parts[kind] = (ref, fam)
    check_families(family, base, parts)


# ----------------------------------------------------------------------------- files inside a model
def lora_file(resolved: Resolved) -> Path:
    """The LoRA weight file of a resolved LoRA (a file, the registry's file, or the folder's only .safetensors)."""
    path = resolved.path
    if path.is_file():
        return path
    if resolved.spec is not None and resolved.spec.weight:
        return path / resolved.spec.weight
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelMissingError(f"LoRA folder {path} has no .safetensors file")
    return files[0]


def ip_adapter_layout(resolved: Resolved, family: str | None) -> tuple[Path, str, str, str]:
    """Where the parts of a resolved IP-Adapter are, as diffusers' ``load_ip_adapter`` wants them.

    Returns ``(folder, subfolder, weight_name, image_encoder_folder)``; the weight is
    ``folder/subfolder/weight_name`` and the CLIP image encoder ``folder/image_encoder_folder``
    (a name without ``/`` is taken inside ``subfolder``, as diffusers does). A file path
    uses the ``image_encoder/`` folder beside it; a folder laid out like ``h94/IP-Adapter``
    uses the registry layout for ``family`` (SD 1.5 by default).
    """
    path = resolved.path
    if path.is_file():
        return path.parent, "", path.name, "image_encoder"
    spec = resolved.spec or REGISTRY[IP_ADAPTER.get(family or "sd15", "ip-adapter-sd15")]
    sub, _, name = spec.weight.rpartition("/")
    return path, sub, name, spec.image_encoder


def ip_adapter_files(resolved: Resolved, family: str | None) -> tuple[Path, Path]:
    """(weight file, image encoder folder) of a resolved IP-Adapter (see :func:`ip_adapter_layout`)."""
    folder, sub, name, encoder = ip_adapter_layout(resolved, family)
    weight = folder / sub / name if sub else folder / name
    enc = folder / encoder if "/" in encoder else (folder / sub / encoder if sub else folder / encoder)
    return weight, enc


# ----------------------------------------------------------------------------- loading
@dataclass
class AvatarComponents:
    """Everything the stream engine needs, loaded and on the device.

    Attributes:
        family: ``sd15`` | ``sd21`` | ``sdxl``.
        pipe: a diffusers ``StableDiffusionPipeline`` / ``StableDiffusionXLPipeline`` holding
            the UNet, VAE, text encoder(s), tokenizer(s), scheduler and (with an
            IP-Adapter) the image encoder; used for its prompt encoding and loaders.
        controlnet: a ``ControlNetModel`` or None.
        ip_adapter: True when an IP-Adapter is loaded into the UNet.
        sources: kind -> folder or file each part was loaded from.
    """

    family: str
    pipe: Any
    controlnet: Any | None
    ip_adapter: bool
    sources: dict[str, str] = field(default_factory=dict)


def resolve_dtype(dtype: str, device: Any) -> Any:
    """``auto`` -> float16 on CUDA, float32 elsewhere; else the named torch dtype."""
    import torch

    if dtype == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]


def runs_fp16(dtype: str = "auto", device: Any = None) -> bool:
    """Whether the avatar runs in float16 with ``dtype`` on ``device`` (default: CUDA when
    available, else the CPU, as the avatar stage and Scope's plugin load pick it).

    Then the fp16 weight variant is the one to download and load: Scope's artifacts
    (:func:`bridge.scope_plugin.models.avatar_artifacts`), ``avatar-bridge models fetch``
    and :func:`load_components` all ask this.
    """
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return resolve_dtype(dtype, device) == torch.float16


def _variant(folder: Path, stem: str, prefer_fp16: bool = False) -> str | None:
    """diffusers' ``variant`` for weight ``stem`` in ``folder``: ``"fp16"`` or None (plain).

    With both files there, ``prefer_fp16`` picks (float16 loads the fp16 file, anything
    else the plain one); with one, that one (diffusers casts it to the dtype asked for).

    Raises:
        ModelMissingError: neither file is there.
    """
    found = _weights(folder, stem, prefer_fp16)
    if found is None:
        raise ModelMissingError(f"no {stem}.safetensors in {folder}: avatar-bridge loads safetensors weights only; fetch the model again")
    return "fp16" if found.name.endswith(".fp16.safetensors") else None


def _tf_dtype(dtype: Any) -> dict[str, Any]:
    import transformers
    from packaging.version import Version

    return {"dtype": dtype} if Version(transformers.__version__) >= Version("4.56") else {"torch_dtype": dtype}


def load_components(
    base_model: str,
    controlnet: str = "",
    vae: str = "tiny",
    lora: str = "",
    ip_adapter: str = "",
    *,
    models_root: Path | None = None,
    dtype: Any = None,
    device: Any = "cpu",
    preset: str | None = None,
) -> AvatarComponents:
    """Load the base model and its parts with diffusers ``from_pretrained`` (safetensors only).

    Args:
        base_model: registry name, repo id or folder of a diffusers SD 1.5/2.1/SDXL pipeline.
        controlnet: ``""`` (none), ``openpose`` (the family's OpenPose ControlNet), a name,
            repo id or folder.
        vae: ``tiny`` (TAESD/TAESDXL via ``AutoencoderTiny``), ``full`` (the base's own VAE),
            or a name/folder of an ``AutoencoderTiny``.
        lora: ``""`` or a LoRA name/folder/file (fused into the UNet, e.g. LCM-LoRA).
        ip_adapter: ``""``, ``auto``, or an IP-Adapter name/folder/file.
        models_root: models folder (default :func:`models_dir`).
        dtype: torch dtype (default float32). A folder holding a weight in both variants
            loads ``.fp16.safetensors`` for float16 and the plain file otherwise (the
            variant :func:`runs_fp16` has Scope and ``models fetch`` download).
        device: torch device.
        preset: preset name, only for the "fetch" hint in errors.

    Raises:
        ModelMissingError: a model is not on disk (one line: what to fetch, where it goes).
        ConfigError: a family mismatch, or an unknown model name.
    """
    import torch

    root = models_root or models_dir()
    dtype = dtype or torch.float32
    base = resolve(base_model, "base", root, preset)
    family = family_of(base)
    assert family is not None
    parts: dict[str, tuple[str, str | None]] = {}
    resolved: dict[str, Resolved] = {}
    for kind, ref in (("controlnet", controlnet), ("vae", vae), ("lora", lora), ("ip-adapter", ip_adapter)):
        if not ref or (kind == "vae" and ref == "full"):
            continue
        if kind == "ip-adapter" and family == "sd21":
            check_families(family, base_model, {"ip-adapter": (ref, None)})
        ref = auto_ref(ref, kind, family)
        res = resolve(ref, kind, root, preset)
        resolved[kind] = res
        parts[kind] = (ref, family_of(res) if kind != "ip-adapter" else _ip_family(res, family))
    check_families(family, base_model, parts)

    from diffusers import AutoencoderKL, AutoencoderTiny, ControlNetModel, UNet2DConditionModel
    from diffusers.schedulers import LCMScheduler
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    sources = {"base": str(base.path)}
    path = base.path
    half = dtype == torch.float16  # where a folder has both variants, load the one we run in
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype, use_safetensors=True,
                                                variant=_variant(path / "unet", "diffusion_pytorch_model", half))
    text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder", use_safetensors=True,
                                                 variant=_variant(path / "text_encoder", "model", half), **_tf_dtype(dtype))
    tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
    scheduler = LCMScheduler.from_pretrained(path, subfolder="scheduler")
    if "vae" in resolved:
        vae_model = AutoencoderTiny.from_pretrained(resolved["vae"].path, torch_dtype=dtype, use_safetensors=True,
                                                    variant=_variant(resolved["vae"].path, "diffusion_pytorch_model", half))
        sources["vae"] = str(resolved["vae"].path)
    else:
        if _weights(path / "vae", "diffusion_pytorch_model", half) is None:
            raise ModelMissingError(f"vae 'full' needs {path / 'vae'} with .safetensors weights; fetch the base model again or use vae: tiny")
        vae_model = AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype, use_safetensors=True,
                                                  variant=_variant(path / "vae", "diffusion_pytorch_model", half))
    if family == "sdxl":
        from diffusers import StableDiffusionXLPipeline

        text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(path, subfolder="text_encoder_2", use_safetensors=True,
                                                                     variant=_variant(path / "text_encoder_2", "model", half), **_tf_dtype(dtype))
        tokenizer_2 = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer_2")
        pipe = StableDiffusionXLPipeline(vae=vae_model, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
                                         tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, image_encoder=None, feature_extractor=None,
                                         force_zeros_for_empty_prompt=False)
    else:
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline(vae=vae_model, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    cn_model = None
    if "controlnet" in resolved:
        cn_path = resolved["controlnet"].path
        cn_model = ControlNetModel.from_pretrained(cn_path, torch_dtype=dtype, use_safetensors=True,
                                                   variant=_variant(cn_path, "diffusion_pytorch_model", half))
        sources["controlnet"] = str(cn_path)
    if "lora" in resolved:
        weight = lora_file(resolved["lora"])
        if weight.suffix != ".safetensors":
            raise ModelMissingError(f"LoRA {weight} is not .safetensors; avatar-bridge loads safetensors weights only")
        pipe.load_lora_weights(str(weight.parent), weight_name=weight.name)
        pipe.fuse_lora()
        pipe.unload_lora_weights()  # the fused weights stay; the LoRA layers go
        sources["lora"] = str(weight)
    if "ip-adapter" in resolved:
        weight, encoder = ip_adapter_files(resolved["ip-adapter"], family)
        if weight.suffix != ".safetensors" or not weight.is_file():
            raise ModelMissingError(f"IP-Adapter weight {weight} missing or not .safetensors; fetch ip-adapter-{family}")
        if not (encoder / "model.safetensors").is_file():
            raise ModelMissingError(f"IP-Adapter image encoder {encoder}/model.safetensors is missing; fetch the IP-Adapter again")
        folder, sub, name, enc_folder = ip_adapter_layout(resolved["ip-adapter"], family)
        pipe.load_ip_adapter(str(folder), subfolder=sub, weight_name=name, image_encoder_folder=enc_folder)
        sources["ip-adapter"] = str(weight)
    if torch.device(device).type != "cpu":  # loaded on the CPU; move (skipped on the CPU: no copy, no warning)
        pipe.to(device)
        if cn_model is not None:
            cn_model.to(device)
    return AvatarComponents(family, pipe, cn_model, "ip-adapter" in resolved, sources)


def ip_adapter_variant(weight: Path) -> str:
    """Which IP-Adapter a safetensors weight file is, told by its image-projection keys
    (as diffusers' ``_convert_ip_adapter_image_proj_to_diffusers`` tells them apart).

    Returns ``plain`` (``image_proj.proj.weight``: one linear layer over CLIP's pooled image
    embedding; the one avatar-bridge runs), ``plus`` (``image_proj.latents``: a Resampler over
    CLIP's hidden states), ``faceid`` / ``faceid-plus`` (InsightFace embeddings), ``full-face``
    (``image_proj.proj.3.weight``) or ``unknown``.
    """
    from safetensors import safe_open

    with safe_open(str(weight), framework="pt") as f:
        keys = {k.removeprefix("image_proj.") for k in f.keys() if k.startswith("image_proj.")}
    if "proj.weight" in keys:
        return "plain"
    if any(k.startswith("perceiver_resampler.") for k in keys):
        return "faceid-plus"
    if "latents" in keys:
        return "plus"
    if "proj.3.weight" in keys:
        return "full-face"
    if "proj.0.weight" in keys and "norm.weight" in keys or "faceid" in weight.name.lower():
        return "faceid"
    return "unknown"


#: why each IP-Adapter variant other than ``plain`` is refused (one line each)
IP_ADAPTER_REFUSED = {
    "plus": "an IP-Adapter Plus (its Resampler reads CLIP's hidden states, not the pooled image embedding avatar-bridge computes)",
    "faceid": "an IP-Adapter FaceID (it needs InsightFace face embeddings, which avatar-bridge does not compute)",
    "faceid-plus": "an IP-Adapter FaceID Plus (it needs InsightFace face embeddings, which avatar-bridge does not compute)",
    "full-face": "an IP-Adapter full-face (its projection reads CLIP's hidden states, not the pooled image embedding)",
    "unknown": "not an IP-Adapter weight avatar-bridge knows (no image_proj.proj.weight)",
}


def _ip_family(resolved: Resolved, base_family: str) -> str | None:
    weight, _ = ip_adapter_files(resolved, base_family)
    if not weight.is_file():
        raise ModelMissingError(f"IP-Adapter weight {weight} is missing; fetch ip-adapter-{base_family}")
    variant = ip_adapter_variant(weight)
    if variant != "plain":
        raise ConfigError(f"avatar: IP-Adapter {weight.name} is {IP_ADAPTER_REFUSED[variant]}; only the plain IP-Adapter is "
                          f"supported (ip-adapter_sd15, ip-adapter_sdxl_vit-h): use ip_adapter: auto")
    shape = _tensor_shape(weight, lambda k: k == "image_proj.proj.weight")
    return CROSS_ATTENTION_FAMILY.get(shape[0] // 4) if shape else None
