"""movie: sink: ProRes 4444 .mov and VP9 .webm with alpha that reads back, exact frame
count and rate, and the source's audio carried over (trimmed to the video)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from bridge.cli import main
from bridge.errors import TransportError
from bridge.frames import Frame
from bridge.transports import open_sink
from bridge.transports.base import StreamInfo
from bridge.transports.movie import MovieSink, frame_rate
from bridge.transports.video import VideoFileSource

NTSC = Fraction(30000, 1001)
N_FRAMES = 30
AUDIO_RATE = 44100


def soft_matte(i: int, h: int, w: int) -> np.ndarray:
    """A moving ellipse with a soft edge: every alpha level from 0 to 255 occurs."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = ((xx - w / 2 - 12 * np.sin(i / 4)) / (w * 0.3)) ** 2 + ((yy - h * 0.55) / (h * 0.4)) ** 2
    return np.clip((1.4 - d) * 400, 0, 255).astype(np.uint8)


def rgba_frames(carphone_frames: list[np.ndarray], n: int = N_FRAMES) -> list[np.ndarray]:
    h, w = carphone_frames[0].shape[:2]
    return [np.dstack([carphone_frames[i], soft_matte(i, h, w)]) for i in range(n)]


def decode_rgba(path: Path) -> tuple[list[np.ndarray], av.container.InputContainer]:
    """Every video frame as (H, W, 4) uint8 RGBA; VP9 through libvpx (the decoder that reads alpha)."""
    container = av.open(str(path))
    stream = container.streams.video[0]
    ctx = av.CodecContext.create("libvpx-vp9", "r") if stream.codec_context.name == "vp9" else stream.codec_context
    frames = []
    for packet in container.demux(stream):
        frames += [f.to_ndarray(format="rgba") for f in ctx.decode(packet)]
    return frames, container


def decode_audio(path: Path) -> tuple[np.ndarray, int, str]:
    """(first channel as float samples in [-1, 1], sample rate, codec name) of the first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        parts = []
        for f in container.decode(stream):
            arr = f.to_ndarray()
            first = arr[0] if f.format.is_planar else arr[0, :: len(f.layout.channels)]
            parts.append(first / 32768.0 if arr.dtype == np.int16 else first.astype(np.float64))
        return np.concatenate(parts), stream.rate, stream.codec_context.name


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory, carphone_frames) -> Path:
    """carphone's first 30 frames at 30000/1001 fps (MPEG-4 in .mp4) with a stereo AAC track
    that is 440 Hz for the first 0.5 s, 880 Hz after, and lasts 1 s longer than the video."""
    path = tmp_path_factory.mktemp("clip") / "talk.mp4"
    h, w = carphone_frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=NTSC)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"qscale": "2"}
        audio = out.add_stream("aac", rate=AUDIO_RATE)
        audio.codec_context.layout = "stereo"
        for i in range(N_FRAMES):
            vf = av.VideoFrame.from_ndarray(carphone_frames[i], format="rgb24")
            vf.pts = i
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
        n = int((N_FRAMES / NTSC + 1) * AUDIO_RATE)
        t = np.arange(n) / AUDIO_RATE
        tone = (0.4 * np.sin(2 * np.pi * np.where(t < 0.5, 440.0, 880.0) * t)).astype(np.float32)
        for pos in range(0, n, 1024):
            chunk = tone[pos:pos + 1024]
            af = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = AUDIO_RATE, pos
            out.mux(audio.encode(af))
        out.mux(audio.encode(None))
    return path


def write_movie(path: Path, frames: list[np.ndarray], info: StreamInfo) -> MovieSink:
    sink = open_sink(f"movie:{path}")
    sink.open(info)
    for i, image in enumerate(frames):
        sink.write(Frame(image, i, 0.0, i / info.fps))
    sink.close()
    return sink


def test_frame_rate_is_exact_rational():
    assert frame_rate(float(NTSC)) == NTSC
    assert frame_rate(25.0) == 25
    assert frame_rate(23.976023976) == Fraction(24000, 1001)


def test_mov_is_prores_4444_with_alpha_that_reads_back(tmp_path, carphone_frames):
    frames = rgba_frames(carphone_frames)
    path = tmp_path / "out.mov"
    write_movie(path, frames, StreamInfo(176, 144, float(NTSC)))
    decoded, container = decode_rgba(path)
    with container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "prores"
        assert stream.codec_context.profile == "4444"
        assert "yuva" in stream.codec_context.pix_fmt  # an alpha plane is stored
        assert stream.average_rate == NTSC
        assert not container.streams.audio
    assert len(decoded) == N_FRAMES
    for written, read in zip(frames, decoded):
        alpha_err = np.abs(read[..., 3].astype(int) - written[..., 3])
        assert alpha_err.max() <= 1  # 10-bit alpha: only rounding
        assert np.abs(read[..., :3].astype(int) - written[..., :3]).mean() < 1.0


def test_webm_is_vp9_with_alpha_that_reads_back(tmp_path, carphone_frames):
    frames = rgba_frames(carphone_frames)
    path = tmp_path / "out.webm"
    write_movie(path, frames, StreamInfo(176, 144, float(NTSC)))
    decoded, container = decode_rgba(path)
    with container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "vp9"
        assert stream.metadata.get("alpha_mode") == "1"
        assert stream.average_rate == NTSC
    assert len(decoded) == N_FRAMES
    for written, read in zip(frames, decoded):
        alpha_err = np.abs(read[..., 3].astype(int) - written[..., 3])
        assert alpha_err.mean() < 1.0 and np.percentile(alpha_err, 99.9) <= 6  # lossy, but the matte survives
        assert ((read[..., 3] > 127) == (written[..., 3] > 127)).mean() > 0.995
        assert np.abs(read[..., :3].astype(int) - written[..., :3]).mean() < 5.0


def test_unknown_extension_is_a_one_line_error_naming_both_choices(tmp_path, capsys):
    with pytest.raises(TransportError) as err:
        open_sink(f"movie:{tmp_path / 'out.avi'}")
    message = str(err.value)
    assert ".mov" in message and ".webm" in message and "\n" not in message
    code = main(["run", "--source", "video:whatever.mp4", "--sink", f"movie:{tmp_path / 'out.mp4'}"])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and ".mov" in lines[0] and "Traceback" not in lines[0]


@pytest.mark.parametrize("suffix, codec", [(".mov", "pcm_s16le"), (".webm", "opus")])
def test_source_audio_is_carried_and_cut_at_the_video_end(tmp_path, clip_with_audio, suffix, codec):
    source = VideoFileSource(clip_with_audio)
    source.open()
    assert source.audio_path == str(clip_with_audio)
    first = source.read()
    path = tmp_path / f"out{suffix}"
    sink = MovieSink(path)
    sink.open(StreamInfo(first.width, first.height, source.fps, source.audio_path, first.pts or 0.0))
    frame, n = first, 0
    while frame is not None:
        sink.write(Frame(np.dstack([frame.image, soft_matte(n, frame.height, frame.width)]), frame.index, 0.0))
        n += 1
        frame = source.read()
    source.close()
    sink.close()
    assert n == N_FRAMES
    decoded, container = decode_rgba(path)
    container.close()
    assert len(decoded) == N_FRAMES
    samples, rate, name = decode_audio(path)
    assert name == codec
    video_s = N_FRAMES / NTSC
    assert abs(len(samples) / rate - video_s) < 0.03  # the source's extra second is cut
    assert dominant_hz(samples[: int(0.4 * rate)], rate) == pytest.approx(440, abs=10)  # the source's tone
    assert np.sqrt(np.mean(samples[: int(0.4 * rate)] ** 2)) > 0.2  # not silence


def test_audio_starts_at_audio_start(tmp_path, clip_with_audio, carphone_frames):
    """A stream whose frame 0 is 0.6 s into the source gets the audio from 0.6 s on (880 Hz)."""
    frames = rgba_frames(carphone_frames, 12)
    path = tmp_path / "late.mov"
    write_movie(path, frames, StreamInfo(176, 144, float(NTSC), str(clip_with_audio), 0.6))
    samples, rate, _ = decode_audio(path)
    assert abs(len(samples) / rate - 12 / NTSC) < 0.03
    assert dominant_hz(samples[: int(0.3 * rate)], rate) == pytest.approx(880, abs=10)


def test_audio_that_starts_late_is_padded_to_stay_in_sync(tmp_path, clip_with_audio, carphone_frames):
    """Audio that begins 0.3 s after frame 0 starts 0.3 s into the movie (silence before)."""
    frames = rgba_frames(carphone_frames, 24)
    path = tmp_path / "padded.webm"
    write_movie(path, frames, StreamInfo(176, 144, float(NTSC), str(clip_with_audio), -0.3))
    samples, rate, _ = decode_audio(path)
    assert abs(len(samples) / rate - 24 / NTSC) < 0.03

    def rms(t0: float, t1: float) -> float:
        return float(np.sqrt(np.mean(samples[int(t0 * rate):int(t1 * rate)] ** 2)))

    assert rms(0.0, 0.25) < 0.01 and rms(0.35, 0.7) > 0.2
    assert dominant_hz(samples[int(0.35 * rate):int(0.75 * rate)], rate) == pytest.approx(440, abs=10)


def test_cli_run_video_to_mov_keeps_audio_and_person_alpha(tmp_path, clip_with_audio, capsys):
    out = tmp_path / "render" / "out.mov"
    code = main(["run", "--source", f"video:{clip_with_audio}", "--sink", f"movie:{out}", "--stats-every", "0", "--no-osc"])
    assert code == 0, capsys.readouterr().err
    decoded, container = decode_rgba(out)
    with container:
        assert container.streams.video[0].average_rate == NTSC
    assert len(decoded) == N_FRAMES  # a file in gives exactly its frames out
    alpha = np.stack([f[..., 3] for f in decoded])
    assert (alpha > 200).mean() > 0.1 and (alpha < 50).mean() > 0.1  # a person matte, not a constant
    samples, rate, name = decode_audio(out)
    assert name == "pcm_s16le"
    assert abs(len(samples) / rate - N_FRAMES / NTSC) < 0.03
    assert dominant_hz(samples[: int(0.4 * rate)], rate) == pytest.approx(440, abs=10)
