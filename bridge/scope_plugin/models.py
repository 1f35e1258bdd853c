"""The avatar's models inside Scope: declared as Scope artifacts, found where Scope put them.

Scope downloads a pipeline's ``HuggingfaceRepoArtifact(repo_id, files)`` into
``<Scope models dir>/<repo name>/`` (the part of ``repo_id`` after ``/``; checked in
Scope's ``server/download_models.py``), keeping the repo's layout, before it loads the
pipeline. Its downloader selects files with ``fnmatch`` on each entry, and takes an
entry not ending in ``/``, ``.pt``, ``.pth``, ``.safetensors`` or ``.json`` as a folder.

The repos come from the avatar's model registry (:mod:`bridge.avatar.models`); the
files are what its loader reads, from the one table of model files
(:mod:`bridge.avatar.layout`): configs and safetensors weights, each weight once, in the
variant the avatar loads: ``<stem>.fp16.safetensors`` when it will run in float16 (its
default ``dtype: auto`` on CUDA, :func:`bridge.avatar.models.runs_fp16`) and the registry
says the repo publishes that file (``ModelSpec.fp16``), else ``<stem>.safetensors``.
Naming one file per weight matters twice to Scope: it downloads every file an entry
matches (both variants would double the download), and its ``/api/v1/models/status``
(``models_are_downloaded`` in ``server/models_config.py``) is true only when every entry
exists on disk, so a name the repo lacks would keep its Download dialog coming back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.avatar import layout
from bridge.avatar.models import ModelSpec, auto_ref, known_family, lookup, missing_files, runs_fp16

#: Avatar load-time parameter -> model kind in the registry.
MODEL_FIELDS = (("base_model", "base"), ("controlnet", "controlnet"), ("vae", "vae"), ("lora", "lora"), ("ip_adapter", "ip-adapter"))


def artifact_files(kind: str, spec: ModelSpec, full_vae: bool = False, fp16: bool = False) -> list[str]:
    """Files (and folders) of ``spec``'s repo the avatar loader needs, as Scope artifact entries.

    Read from the one table of model files (:data:`bridge.avatar.layout.LAYOUT`); each
    weight once.

    Args:
        kind: ``base`` | ``controlnet`` | ``vae`` | ``lora`` | ``ip-adapter``.
        full_vae: for a base model: also its own VAE (``vae: full``).
        fp16: the avatar runs in float16: name the fp16 variant of each weight where
            the repo publishes it (``spec.fp16``), else the plain file.

    Raises:
        ConfigError: an unknown kind.
    """
    return layout.artifacts(kind, spec, full_vae, fp16)


def model_specs(load: dict[str, Any]) -> list[tuple[str, str, ModelSpec]]:
    """(parameter, kind, registry entry) of every registry model the avatar loads with ``load``.

    Family words (``openpose``, ``tiny``, ``auto``) are resolved for a known base model;
    paths and ids outside the registry are left out (Scope cannot declare them).
    """
    from bridge.stages.avatar import AvatarConfig

    cfg = AvatarConfig(**load)
    family = known_family(cfg.base_model, "base")
    found = []
    for field, kind in MODEL_FIELDS:
        ref = getattr(cfg, field)
        if not ref or (kind == "vae" and ref == "full"):
            continue
        if family is not None and kind != "base":
            ref = auto_ref(ref, kind, family)
        spec = lookup(ref, kind)
        if spec is not None:
            found.append((field, kind, spec))
    return found


def avatar_artifacts(cuda: bool | None = None) -> list[tuple[str, list[str]]]:
    """``[(repo_id, files)]`` of the models the avatar loads with its default parameters.

    These are what Scope downloads before the first start; other models chosen in
    Scope's settings come from ``avatar-bridge models fetch`` (see the README).

    Args:
        cuda: the avatar will run on CUDA (default: ``torch.cuda.is_available()``, as
            the plugin's pipeline picks its device when Scope gives none).
    """
    import torch

    from bridge.stages.avatar import AvatarConfig

    defaults = AvatarConfig()
    if cuda is None:
        cuda = torch.cuda.is_available()
    fp16 = runs_fp16(defaults.dtype, "cuda" if cuda else "cpu")
    return [(spec.repo_id, artifact_files(kind, spec, defaults.vae == "full", fp16)) for _, kind, spec in model_specs({})]


def in_scope_models(load: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """``load`` with each registry model replaced by its folder in Scope's models dir, when complete there.

    Args:
        load: the avatar's load-time parameters (stage names).
        root: Scope's models folder (default: Scope's ``get_models_dir()``; call inside Scope).

    A model missing there keeps its name, so the avatar still finds it in its own models
    folder or the Hugging Face cache, or fails with the one-line "fetch" message.
    """
    if root is None:
        from scope.core.config import get_models_dir

        root = get_models_dir()
    out = dict(load)
    for field, kind, spec in model_specs(load):
        folder = Path(root) / spec.repo_id.split("/")[-1]
        if folder.is_dir() and not missing_files(folder, kind, spec):
            out[field] = str(folder)
    return out
