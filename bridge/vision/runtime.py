"""LiteRT runtime: load a bundled ``.tflite`` model and run it, quietly.

The models live in :data:`MODELS_DIR` (package data; licence and origin in its NOTICE).
They run on LiteRT (the ``ai-edge-litert`` package, ``ai_edge_litert.interpreter``), the
successor of the TensorFlow Lite interpreter; the XNNPACK CPU delegate is applied by
default and uses ``num_threads`` threads. The interpreter releases the GIL while a model
runs, so several stages (or several workers) can run models at the same time.

LiteRT's native code prints lines such as ``INFO: Created TensorFlow Lite XNNPACK delegate
for CPU`` straight to file descriptor 2. :func:`quiet_native_stderr` hides them while a
model loads, unless :func:`set_verbose` (the CLI's ``--verbose``) asked to see them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from bridge.errors import ModelMissingError

#: Folder of the bundled model files (``bridge/vision/models``).
MODELS_DIR = Path(__file__).with_name("models")

#: The bundled models: file name -> what it is (input size, outputs), for doctor and docs.
MODELS: dict[str, str] = {
    "selfie_segmentation_landscape.tflite": "selfie segmenter, 144x256 RGB in [0,1] -> 144x256 person probability",
    "selfie_segmentation.tflite": "selfie segmenter (general), 256x256 RGB in [0,1] -> 256x256 person probability",
    "pose_detection.tflite": "BlazePose detector, 224x224 RGB in [-1,1] -> 2254 anchors x 12 (box + 4 keypoints) + scores",
    "pose_landmark_full.tflite": "BlazePose GHUM landmarks (full), 256x256 RGB in [0,1] -> 39x5 landmarks, 256x256 mask",
}

RUNTIME_FIX = "pip install 'ai-edge-litert>=2.3' (LiteRT, the runtime of the bundled vision models)"

_verbose = False
_stderr_lock = threading.Lock()


def set_verbose(on: bool) -> None:
    """Show (True) or hide (False, the default) the runtime's own log lines."""
    global _verbose
    _verbose = bool(on)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration, unless verbose.

    Native libraries (LiteRT, absl) write to fd 2 directly, around Python's
    ``sys.stderr``; only a descriptor-level redirect hides them. Python's own stderr is
    flushed first so nothing of ours is lost.
    """
    if _verbose:
        yield
        return
    with _stderr_lock:
        try:
            sys.stderr.flush()
        except Exception:  # a closed or replaced stderr
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def runtime_version() -> str | None:
    """The installed ``ai-edge-litert`` version, or None when LiteRT is missing."""
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:
        return None


class LiteModel:
    """One bundled ``.tflite`` model on a LiteRT interpreter.

    Args:
        name: file name in :data:`MODELS_DIR` (e.g. ``"pose_detection.tflite"``), or a path.
        num_threads: CPU threads of the interpreter (XNNPACK), >= 1.

    Attributes:
        input_shape: the model's input shape, e.g. (1, 224, 224, 3); input dtype float32.
        output_shapes: the shapes of its outputs, in the model's output order.

    Raises:
        ModelMissingError: LiteRT is not installed, or the model file is missing or
            cannot be loaded; the message names the fix.

    Not thread-safe: one interpreter runs one call at a time (give each worker its own).
    """

    def __init__(self, name: str | Path, num_threads: int = 1) -> None:
        path = Path(name) if Path(name).is_absolute() else MODELS_DIR / name
        try:
            from ai_edge_litert.interpreter import Interpreter
        except Exception as exc:
            raise ModelMissingError(f"vision: the LiteRT runtime is missing ({exc.__class__.__name__}); {RUNTIME_FIX}") from None
        if not path.is_file():
            raise ModelMissingError(f"vision: model file {path} is missing; reinstall avatar-bridge (the models ship inside the package)")
        try:
            with quiet_native_stderr():
                self._interpreter = Interpreter(model_path=str(path), num_threads=max(1, int(num_threads)))
                self._interpreter.allocate_tensors()
        except Exception as exc:
            raise ModelMissingError(f"vision: could not load {path.name} ({exc.__class__.__name__}: {exc}); {RUNTIME_FIX}") from None
        self.name = path.name
        self.num_threads = max(1, int(num_threads))
        inp = self._interpreter.get_input_details()[0]
        self._input_index = int(inp["index"])
        self.input_shape = tuple(int(v) for v in inp["shape"])
        outputs = self._interpreter.get_output_details()
        self._output_indices = [int(d["index"]) for d in outputs]
        self.output_shapes = [tuple(int(v) for v in d["shape"]) for d in outputs]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """Run the model on ``x`` (float32, :attr:`input_shape`); returns its outputs.

        The returned arrays are copies owned by the caller (the interpreter's own buffers
        are overwritten by the next call).
        """
        self._interpreter.set_tensor(self._input_index, x)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(i) for i in self._output_indices]
