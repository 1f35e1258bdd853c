"""The One Euro filter (Casiez, Roussel, Vogel, CHI 2012), on arrays, as MediaPipe applies it.

A first-order low-pass filter whose cutoff frequency grows with the signal's speed: slow
motion is smoothed hard (little jitter), fast motion passes with little lag.

For a sample ``x`` at frequency ``f`` (Hz)::

    alpha(cutoff) = 1 / (1 + tau / te),  tau = 1 / (2 pi cutoff),  te = 1 / f
    dx      = (x - x_prev_raw) * value_scale * f           (0 on the first sample)
    dx_hat  = lowpass(dx, alpha(derivate_cutoff))
    cutoff  = min_cutoff + beta * |dx_hat|
    x_hat   = lowpass(x, alpha(cutoff))

``lowpass(v, a) = a * v + (1 - a) * previous output`` (the first sample passes unchanged).
``value_scale`` makes the speed relative to the object's size (MediaPipe passes
1 / object scale in pixels; ``mediapipe/util/filtering/one_euro_filter.cc`` and
``mediapipe/calculators/util/landmarks_smoothing_calculator.cc``). The frequency comes from
the timestamps; a timestamp not after the previous one returns the input unchanged.

MediaPipe Pose's constants are in :mod:`bridge.vision.blazepose`
(``mediapipe/modules/pose_landmark/pose_landmark_filtering.pbtxt``).
"""

from __future__ import annotations

import math

import numpy as np


def smoothing_factor(cutoff: np.ndarray | float, frequency: float) -> np.ndarray | float:
    """``alpha = 1 / (1 + tau / te)`` with ``tau = 1 / (2 pi cutoff)`` s and ``te = 1 / frequency`` s."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64))
    te = 1.0 / frequency
    return 1.0 / (1.0 + tau / te)


class OneEuroFilter:
    """One Euro filter over an array of independent values (e.g. (33, 3) landmark coordinates).

    Args:
        min_cutoff: minimum cutoff frequency in Hz (smoothing at rest).
        beta: speed coefficient (higher: less lag on fast motion).
        derivate_cutoff: cutoff frequency in Hz of the speed's own low-pass.
        frequency: sampling frequency in Hz used until two timestamps give the real one.
    """

    def __init__(self, min_cutoff: float, beta: float, derivate_cutoff: float = 1.0, frequency: float = 30.0) -> None:
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.derivate_cutoff = float(derivate_cutoff)
        self.frequency = float(frequency)
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next sample passes unchanged."""
        self._last_time: float | None = None
        self._raw: np.ndarray | None = None
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def __call__(self, value: np.ndarray, timestamp: float, value_scale: float = 1.0) -> np.ndarray:
        """Filter ``value`` (float array, the same shape every call) sampled at ``timestamp`` seconds.

        ``value_scale`` multiplies the speed (MediaPipe: 1 / object size in pixels).
        Returns a new float64 array of ``value``'s shape.
        """
        x = np.asarray(value, np.float64)
        if self._last_time is not None:
            if timestamp <= self._last_time:
                return x.copy()
            self.frequency = 1.0 / (timestamp - self._last_time)
        self._last_time = float(timestamp)
        if self._raw is None or self._raw.shape != x.shape:
            speed = np.zeros_like(x)
        else:
            speed = (x - self._raw) * value_scale * self.frequency
        if self._speed is None or self._speed.shape != x.shape:
            self._speed = speed
        else:
            a = smoothing_factor(self.derivate_cutoff, self.frequency)
            self._speed = a * speed + (1.0 - a) * self._speed
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        if self._value is None or self._value.shape != x.shape:
            self._value = x.copy()
        else:
            a = smoothing_factor(cutoff, self.frequency)
            self._value = a * x + (1.0 - a) * self._value
        self._raw = x.copy()
        return self._value.copy()


class LowPass:
    """Exponential smoothing ``y = alpha * x + (1 - alpha) * y_prev`` (the first sample passes).

    MediaPipe smooths landmark visibility with ``alpha = 0.1``
    (``VisibilitySmoothingCalculator``, ``pose_landmark_filtering.pbtxt``).
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = float(alpha)
        self._value: np.ndarray | None = None

    def reset(self) -> None:
        self._value = None

    def __call__(self, value: np.ndarray) -> np.ndarray:
        x = np.asarray(value, np.float64)
        if self._value is None or self._value.shape != x.shape:
            self._value = x.copy()
        else:
            self._value = self.alpha * x + (1.0 - self.alpha) * self._value
        return self._value.copy()
