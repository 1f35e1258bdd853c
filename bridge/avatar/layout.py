"""Which files make a model of each kind: one table, read by everything that needs to know.

:data:`LAYOUT` lists, per model kind, the parts of a model's folder (a Hugging Face repo's
layout, as diffusers writes it) that the avatar loader reads
(:func:`bridge.avatar.models.load_components`). Three places read it and nothing else
writes a file list:

* :func:`missing` — is a folder on disk complete? (:func:`bridge.avatar.models.missing_files`,
  offline lookup and ``models fetch``'s "already there");
* :func:`plan` — which files of a repo to download (``avatar-bridge models fetch``,
  :mod:`bridge.models_cli`): configs and safetensors weights only;
* :func:`artifacts` — the entries of a Scope ``HuggingfaceRepoArtifact``
  (:mod:`bridge.scope_plugin.models`).

Weights are safetensors only, under either name diffusers uses: ``<stem>.safetensors`` or
the fp16 variant ``<stem>.fp16.safetensors`` (``variant="fp16"``). A folder is complete
with either; where both are there the loader takes the one it runs in (fp16 for float16,
see :func:`weight_order`), and a download names one per weight (:func:`weight_name`). SDXL bases have a
second text encoder and tokenizer (``text_encoder_2``, ``tokenizer_2``; see SDXL's
``model_index.json``); a base's own VAE (``vae/``) is read only for ``vae: full``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError, ModelMissingError

#: Files of a config folder (scheduler, tokenizer): JSON configs, vocab/merges text, sentencepiece.
FOLDER_FILES = (".json", ".txt", ".model")


@dataclass(frozen=True)
class Part:
    """One part of a model folder.

    Attributes:
        path: path inside the folder; ``{weight}`` and ``{image_encoder}`` are filled in
            from the model's registry entry (:class:`bridge.avatar.models.ModelSpec`).
        form: ``file`` (exactly that file), ``weights`` (``path`` is a stem:
            ``stem.safetensors`` or ``stem.fp16.safetensors``) or ``folder`` (a folder of
            :data:`FOLDER_FILES`).
        need: ``always``; ``sdxl`` (SDXL bases only); ``full-vae`` (only for ``vae: full``,
            fetched when the repo has it).
    """

    path: str
    form: str = "file"
    need: str = "always"


#: kind -> the parts of its folder. The one table of model files (configs as data).
LAYOUT: dict[str, tuple[Part, ...]] = {
    "base": (
        Part("model_index.json"),
        Part("scheduler", "folder"),
        Part("tokenizer", "folder"),
        Part("tokenizer_2", "folder", "sdxl"),
        Part("unet/config.json"),
        Part("unet/diffusion_pytorch_model", "weights"),
        Part("text_encoder/config.json"),
        Part("text_encoder/model", "weights"),
        Part("text_encoder_2/config.json", need="sdxl"),
        Part("text_encoder_2/model", "weights", "sdxl"),
        Part("vae/config.json", need="full-vae"),
        Part("vae/diffusion_pytorch_model", "weights", "full-vae"),
    ),
    "controlnet": (Part("config.json"), Part("diffusion_pytorch_model", "weights")),
    "vae": (Part("config.json"), Part("diffusion_pytorch_model", "weights")),
    # without a registry entry: every top-level .safetensors file (see plan/missing)
    "lora": (Part("{weight}"),),
    "ip-adapter": (Part("{weight}"), Part("{image_encoder}/config.json"), Part("{image_encoder}/model.safetensors")),
}


def weight_names(stem: str) -> list[str]:
    """The two names a safetensors weight may have: plain and the fp16 variant."""
    return [f"{stem}.safetensors", f"{stem}.fp16.safetensors"]


def weight_name(stem: str, fp16: bool) -> str:
    """The one name of weight ``stem`` in a variant: ``stem.fp16.safetensors`` or ``stem.safetensors``."""
    return f"{stem}.fp16.safetensors" if fp16 else f"{stem}.safetensors"


def weight_order(stem: str, prefer_fp16: bool) -> list[str]:
    """Both names of weight ``stem``, the preferred variant first (the loader takes the first present)."""
    names = weight_names(stem)
    return names[::-1] if prefer_fp16 else names


def parts(kind: str, spec: Any = None, *, sdxl: bool = False, full_vae: bool = False, optional: bool = False) -> list[Part]:
    """The parts of a ``kind`` model, placeholders filled from ``spec``.

    Args:
        spec: the registry entry (needs ``weight``/``image_encoder`` for LoRA and IP-Adapter).
        sdxl: include the SDXL-only parts.
        full_vae: include the base's own VAE.
        optional: include every conditional part (for "fetch it when the repo has it").

    Raises:
        ConfigError: an unknown kind.
    """
    if kind not in LAYOUT:
        raise ConfigError(f"unknown model kind {kind!r}; one of {', '.join(LAYOUT)}")
    wanted = {"always"} | ({"sdxl"} if sdxl or optional else set()) | ({"full-vae"} if full_vae or optional else set())
    fill = {"weight": getattr(spec, "weight", "") or "", "image_encoder": getattr(spec, "image_encoder", "") or ""}
    out = []
    for part in LAYOUT[kind]:
        if part.need not in wanted:
            continue
        if "{" in part.path:
            if spec is None or not all(fill[k] for k in fill if "{" + k + "}" in part.path):
                continue  # filled in by the caller's fallback (no registry entry)
            part = Part(part.path.format(**fill), part.form, part.need)
        out.append(part)
    return out


def _is_sdxl(folder: Path, spec: Any) -> bool:
    """An SDXL base: its registry entry says so, or its ``model_index.json`` names ``text_encoder_2``."""
    if spec is not None and "sdxl" in getattr(spec, "families", ()):
        return True
    try:
        import json

        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    entry = index.get("text_encoder_2")
    return isinstance(entry, list) and any(entry)


def missing(path: Path, kind: str, spec: Any = None) -> list[str]:
    """What the model folder (or weight file) ``path`` of ``kind`` lacks to load; empty when complete.

    A LoRA or IP-Adapter may be given as its ``.safetensors`` file. The base's own VAE
    is not required here (only ``vae: full`` reads it, and the loader checks it then).
    """
    if kind in ("lora", "ip-adapter") and path.is_file():
        return [] if path.suffix == ".safetensors" else [f"{path.name} is not .safetensors"]
    if not path.is_dir():
        return [str(path)]
    lacks = []
    for part in parts(kind, spec, sdxl=kind == "base" and _is_sdxl(path, spec)):
        if part.form == "weights":
            if not any((path / name).is_file() for name in weight_names(part.path)):
                lacks.append(f"{part.path}.safetensors")
        elif part.form == "folder":
            if not (path / part.path).is_dir():
                lacks.append(part.path)
        elif not (path / part.path).is_file():
            lacks.append(part.path)
    if spec is None or not getattr(spec, "weight", ""):
        if kind == "lora" and not any(path.glob("*.safetensors")):
            lacks.append("*.safetensors")
        elif kind == "ip-adapter" and not any(path.rglob("*.safetensors")):
            lacks.append("*.safetensors")
    return lacks


def plan(kind: str, repo_files: list[str], spec: Any = None, prefer_fp16: bool = True) -> list[str]:
    """The files of a repo to download for a ``kind`` model: configs and safetensors weights only.

    Conditional parts (SDXL's second text encoder, the base's own VAE) are taken when the
    repo has them; they are required when the registry entry says the base is SDXL.

    Args:
        repo_files: every file path in the repo (from the hub's listing).
        prefer_fp16: take ``*.fp16.safetensors`` weight variants when the repo has them.

    Raises:
        ModelMissingError: the repo lacks a needed part (or has only pickled weights for it).
    """
    have = set(repo_files)
    repo = getattr(spec, "repo_id", "") or "the repo"
    sdxl = spec is not None and "sdxl" in getattr(spec, "families", ())
    files: list[str] = []
    for part in parts(kind, spec, optional=True):
        required = part.need == "always" or (part.need == "sdxl" and sdxl)
        if part.form == "weights":
            names = weight_names(part.path)
            found = [n for n in weight_order(part.path, prefer_fp16) if n in have]
            if found:
                files.append(found[0])
            elif required:
                raise ModelMissingError(f"{repo} has no {names[0]} (avatar-bridge loads safetensors only)")
        elif part.form == "folder":
            inside = [f for f in repo_files if f.startswith(part.path + "/") and f.endswith(FOLDER_FILES)]
            if not inside and required:
                raise ModelMissingError(f"{repo} has no {part.path}/ folder")
            files += inside
        elif part.path in have or required:
            files.append(part.path)  # a required file absent from the listing shows as missing after the download
    if kind == "lora" and (spec is None or not getattr(spec, "weight", "")):
        files = [f for f in repo_files if f.endswith(".safetensors") and "/" not in f]
        if not files:
            raise ModelMissingError(f"{repo if spec else 'the LoRA repo'} has no .safetensors file")
    if kind == "ip-adapter" and not files:
        # no registry entry: which weight file and image encoder it holds is not known
        raise ModelMissingError(f"{repo if spec else 'this repo'}: not a known IP-Adapter layout; fetch ip-adapter-sd15 or "
                                "ip-adapter-sdxl (avatar-bridge models list), or copy the weights into the models folder")
    return files


def artifacts(kind: str, spec: Any, full_vae: bool = False, fp16: bool = False) -> list[str]:
    """The entries of a Scope ``HuggingfaceRepoArtifact`` for ``spec``: what the loader reads.

    Scope's downloader matches each entry with ``fnmatch`` and takes an entry not ending in
    ``/``, ``.pt``, ``.pth``, ``.safetensors`` or ``.json`` as a folder, so a config folder
    is its name. Each weight is named once, in one variant: Scope downloads every file an
    entry matches and counts the models as downloaded only when every entry exists on disk
    (``models_are_downloaded`` in its ``server/models_config.py``), so an entry the repo
    does not have would keep its Download dialog open for ever.

    Args:
        full_vae: for a base model: also its own VAE (``vae: full``).
        fp16: name the ``.fp16.safetensors`` variant of each weight, where the registry
            entry says the repo publishes it (``spec.fp16``); else the plain file.
    """
    half = fp16 and bool(getattr(spec, "fp16", False))
    out: list[str] = []
    for part in parts(kind, spec, sdxl="sdxl" in getattr(spec, "families", ()), full_vae=full_vae):
        out.append(weight_name(part.path, half) if part.form == "weights" else part.path)
    return out
