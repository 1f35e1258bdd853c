"""``avatar-bridge doctor``: what works on this machine, and what to do about what does not.

Each check returns a :class:`Check`; other modules add theirs to :data:`CHECKS`.
"""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass
from typing import Callable


@dataclass
class Check:
    """One line of the doctor's report. ``optional``: a failure is a warning, not an error."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    optional: bool = False


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return str(getattr(mod, "__version__", "installed"))


def check_python() -> Check:
    ok = (3, 10) <= sys.version_info[:2] <= (3, 13)  # pyproject.toml: requires-python = ">=3.10,<3.14"
    return Check("python", ok, f"{platform.python_version()} on {platform.system()} {platform.machine()}", "use Python 3.10-3.13")


def check_torch() -> Check:
    try:
        import torch
    except Exception:
        return Check("torch", False, "not installed", "pip install torch==2.13.0 (CPU) or the CUDA build for your GPU")
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append("mps")
    return Check("torch", True, f"{torch.__version__}; devices: {', '.join(devices)}")


def check_vision_runtime() -> Check:
    """LiteRT's version and the bundled vision models (each one loaded), ``bridge.vision.runtime``."""
    from bridge.errors import ModelMissingError
    from bridge.vision.runtime import MODELS, MODELS_DIR, RUNTIME_FIX, LiteModel, runtime_version

    version = runtime_version()
    if version is None:
        return Check("vision runtime", False, "LiteRT (ai-edge-litert) missing", RUNTIME_FIX)
    loaded, problems = [], []
    for name in MODELS:
        try:
            LiteModel(name)
            loaded.append(f"{name} ({(MODELS_DIR / name).stat().st_size / 1e6:.1f} MB)")
        except ModelMissingError as exc:
            problems.append(str(exc).split(";")[0])
    if problems:
        return Check("vision runtime", False, f"LiteRT {version}; {'; '.join(problems)}", "reinstall avatar-bridge (the models ship inside the package)")
    return Check("vision runtime", True, f"LiteRT {version}; bundled models: {', '.join(loaded)}")


def check_alpha_model() -> Check:
    from bridge.errors import ModelMissingError
    from bridge.stages.alpha import load_selfie_segmenter

    from bridge.vision.runtime import RUNTIME_FIX

    try:
        load_selfie_segmenter("landscape")
    except ModelMissingError as exc:
        return Check("stage person-alpha", False, str(exc).split(";")[0], RUNTIME_FIX)
    return Check("stage person-alpha", True, "selfie segmentation on LiteRT (bundled model), person check and pose masks on BlazePose")


def check_video_io() -> Check:
    try:
        import av
    except Exception:
        return Check("transports video:/movie:", False, "PyAV missing", "pip install av")
    codecs = [c for c in ("prores_ks", "libvpx-vp9") if c in av.codecs_available]
    ok = bool(codecs)
    return Check("transports video:/movie:", ok, f"PyAV {av.__version__}; alpha encoders: {', '.join(codecs) or 'none'}",
                 "install a PyAV wheel built with prores_ks or libvpx-vp9")


def check_camera() -> Check:
    v = _version("cv2")
    return Check("transport camera:", v is not None, f"OpenCV {v}" if v else "OpenCV missing", "pip install 'opencv-python-headless>=4.9,<5'", optional=True)


def check_spout() -> Check:
    if sys.platform != "win32":
        return Check("transport spout:", False, "Spout is Windows-only", "use ndi: to reach TouchDesigner from this machine", optional=True)
    v = _version("SpoutGL")
    return Check("transport spout:", v is not None, f"SpoutGL {v}" if v else "SpoutGL missing", "pip install SpoutGL", optional=True)


def check_ndi() -> Check:
    v = _version("cyndilib")
    return Check("transport ndi:", v is not None, f"cyndilib {v} (NDI runtime bundled)" if v else "cyndilib missing", "pip install cyndilib", optional=True)


def check_osc() -> Check:
    v = _version("pythonosc")
    return Check("osc", v is not None, "python-osc installed" if v else "python-osc missing", "pip install python-osc")


def check_avatar_models() -> Check:
    """Which presets with an avatar stage have all their models present (offline; see ``avatar-bridge models list``)."""
    from bridge.avatar.models import models_dir, resolve
    from bridge.errors import BridgeError
    from bridge.models_cli import preset_requirements
    from bridge.presets import list_presets

    root = models_dir()
    ready, missing = [], []
    for name in list_presets():
        try:
            needs = preset_requirements(name)
        except BridgeError:
            continue
        lacks = []
        for kind, ref in needs:
            try:
                resolve(ref, kind, root)
            except BridgeError:
                lacks.append(ref)
        (missing if lacks else ready).append(f"{name}" + (f" (missing {', '.join(lacks)})" if lacks else ""))
    if not ready and not missing:
        return Check("avatar models", True, "no preset uses the avatar stage", optional=True)
    detail = f"in {root}: ready: {', '.join(ready) or 'none'}" + (f"; {'; '.join(missing)}" if missing else "")
    first = missing[0].split(" ")[0] if missing else ""
    return Check("avatar models", not missing, detail, f"avatar-bridge models fetch --preset {first}", optional=True)


#: The checks, in report order. Other modules append theirs.
CHECKS: list[Callable[[], Check]] = [check_python, check_torch, check_vision_runtime, check_alpha_model, check_video_io, check_camera, check_spout, check_ndi, check_osc, check_avatar_models]


def run_checks() -> list[Check]:
    """Run every check; a check that raises becomes a failed line, never a crash."""
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as exc:
            results.append(Check(check.__name__.removeprefix("check_"), False, f"check failed: {exc}"))
    return results
