"""MediaPipe's selfie segmenter on LiteRT: a person probability mask for one RGB frame.

Two bundled models (Apache-2.0, from the ``mediapipe==0.10.21`` wheel; see
``bridge/vision/models/NOTICE``):

* ``landscape``: ``selfie_segmentation_landscape.tflite``, input 144x256 (H x W);
* ``general``: ``selfie_segmentation.tflite``, input 256x256.

Pre- and post-processing follow MediaPipe's ``selfie_segmentation_cpu.pbtxt`` graph
(``ImageToTensorCalculator``: the whole image as the ROI, ``keep_aspect_ratio: false``,
``output_tensor_float_range {min: 0 max: 1}``, ``border_mode: BORDER_ZERO``;
``TensorsToSegmentationCalculator`` with ``activation: NONE``, resizing the one-channel
output back to the image size). The CPU image-to-tensor step is an OpenCV warp whose
transform maps the ROI's *corners* onto the tensor's corners (scale ``W_in / W``, no
half-pixel shift), bilinear, on the uint8 image, then scaled to [0, 1]; a
``cv2.resize`` (which maps pixel centres) shifts the input by a fraction of a pixel
and moves the mask by up to IoU 0.04 on a 512x512 frame. With the corner mapping the
masks match ``mediapipe.solutions.selfie_segmentation`` 0.10.21 to a mean |diff| of
1e-4 (IoU 1.0) on carphone and camera.png (``tests/test_alpha_selfie.py`` against
``tests/data/selfie_reference.npz``, made by ``tools/make_selfie_reference.py``).
"""

from __future__ import annotations

import cv2
import numpy as np

from bridge.vision.runtime import LiteModel

#: Model name -> bundled file.
SELFIE_MODELS = {
    "landscape": "selfie_segmentation_landscape.tflite",
    "general": "selfie_segmentation.tflite",
}


class SelfieSegmenter:
    """Person probability from MediaPipe's selfie segmentation model, on LiteRT.

    Args:
        model: ``"landscape"`` (144x256 input, faster) or ``"general"`` (256x256).
        num_threads: LiteRT CPU threads, >= 1.

    Raises:
        ValueError: unknown ``model``.
        ModelMissingError: LiteRT or the model file is missing (from :class:`LiteModel`).

    Not thread-safe (one interpreter); scratch buffers are reused between calls.
    """

    def __init__(self, model: str = "landscape", num_threads: int = 1) -> None:
        if model not in SELFIE_MODELS:
            raise ValueError(f"selfie model {model!r}: expected one of {', '.join(SELFIE_MODELS)}")
        self.model_name = model
        self._model = LiteModel(SELFIE_MODELS[model], num_threads)
        _, self.input_height, self.input_width, _ = self._model.input_shape
        self._resized = np.empty((self.input_height, self.input_width, 3), np.uint8)
        self._input = np.empty((1, self.input_height, self.input_width, 3), np.float32)
        self._matrix = np.zeros((2, 3), np.float64)

    def close(self) -> None:
        """Release the interpreter (the instance is unusable afterwards)."""
        self._model = None  # type: ignore[assignment]

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's input (width, height) in pixels."""
        return self.input_width, self.input_height

    def raw(self, rgb: np.ndarray, matrix: np.ndarray | None = None, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
        """The model's own output for an (H, W, 3) uint8 RGB image of any size.

        Args:
            rgb: (H, W, 3) uint8 RGB.
            matrix: optional (2, 3) affine from image pixels to model-input pixels (a
                crop); default: the whole image stretched onto the input, corner to
                corner (MediaPipe's mapping, see the module docstring).
            border: OpenCV border mode for input pixels outside the image (zero, as
                MediaPipe, by default).

        Returns:
            (input_height, input_width) float32 person probability in [0, 1], on the
            model's grid; a new array.
        """
        if matrix is None and rgb.shape[:2] == (self.input_height, self.input_width):
            resized = rgb
        else:
            if matrix is None:
                matrix = self._matrix
                matrix[0, 0] = self.input_width / rgb.shape[1]
                matrix[1, 1] = self.input_height / rgb.shape[0]
            resized = cv2.warpAffine(rgb, matrix, (self.input_width, self.input_height), dst=self._resized,
                                     flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
        np.multiply(resized, np.float32(1.0 / 255.0), out=self._input[0], dtype=np.float32)
        out = self._model(self._input)[0]
        return out.reshape(self.input_height, self.input_width)

    def __call__(self, rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Person probability for an (H, W, 3) uint8 RGB frame.

        Returns:
            (H, W) float32 in [0, 1] (``out`` when given, an (H, W) float32 buffer).
        """
        h, w = rgb.shape[:2]
        mask = self.raw(rgb)
        if mask.shape == (h, w):
            if out is None:
                return mask
            np.copyto(out, mask)
            return out
        return cv2.resize(mask, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)
