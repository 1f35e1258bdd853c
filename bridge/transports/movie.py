"""``movie:PATH`` sink: a video file with alpha, plus the source's audio, written with PyAV.

The container follows the file extension:

* ``.mov``: Apple ProRes 4444 (FFmpeg's ``prores_ks``, profile ``4444``, pixel format
  ``yuva444p10le``: full-resolution colour and a 10-bit alpha plane). Audio: 16-bit PCM,
  the usual companion of ProRes in editing software.
* ``.webm``: VP9 with alpha (``libvpx-vp9``, ``yuva420p``; the alpha plane is full
  resolution and travels in Matroska BlockAdditional data, flagged ``alpha_mode=1``).
  Audio: Opus at 48 kHz (WebM allows Opus or Vorbis only). Decoders must use
  ``libvpx-vp9`` to see the alpha: FFmpeg's native ``vp9`` decoder ignores it.

Colour is converted with the BT.709 matrix (limited range) and tagged so, which is what
players and TouchDesigner's Movie File In TOP assume for ProRes and VP9. Alpha is stored
as it comes (straight or premultiplied, as the alpha stage was told).

When ``StreamInfo.audio_path`` is set (the ``video:`` source sets it when its file has an
audio track), the audio from ``StreamInfo.audio_start`` seconds on is decoded, resampled
to the output codec and interleaved with the video as frames arrive, and cut at the
video's duration (frames written / fps), so the movie's audio lines up with its frames.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

from bridge.errors import TransportError
from bridge.frames import Frame
from bridge.transports.base import Sink, StreamInfo

log = logging.getLogger("bridge.transports.movie")

#: extension -> (video codec, pixel format, codec options, audio codec, audio sample format, audio rate or None = source rate)
FORMATS: dict[str, tuple[str, str, dict[str, str], str, str, int | None]] = {
    ".mov": ("prores_ks", "yuva444p10le", {"profile": "4444"}, "pcm_s16le", "s16", None),
    # crf 20 with b=0 is libvpx's constant-quality mode; cpu-used 4 + row-mt keep an offline
    # render at ~65 ms per 640x480 frame on 2 CPU cores with alpha within a few levels.
    ".webm": ("libvpx-vp9", "yuva420p", {"crf": "20", "b": "0", "cpu-used": "4", "row-mt": "1"}, "libopus", "flt", 48000),
}

#: AVCOL_SPC/PRI/TRC_BT709 = 1 and AVCOL_RANGE_MPEG = 1 (FFmpeg libavutil/pixfmt.h).
_BT709 = 1
_RANGE_LIMITED = 1


def frame_rate(fps: float) -> Fraction:
    """``fps`` as an exact rational: 29.97002997 -> 30000/1001, 25.0 -> 25/1.

    The denominator is limited to 1001 (the NTSC family: 24000/1001, 30000/1001,
    60000/1001), so a rate that came through a float is restored exactly.
    """
    if not fps or fps <= 0:
        raise TransportError(f"movie sink: bad frame rate {fps!r}; the source must report a positive fps")
    return Fraction(fps).limit_denominator(1001)


class _AudioCarry:
    """Copies one audio track into an output container, trimmed to the video written so far.

    Decodes ``path`` from ``start`` seconds, resamples to ``sample_format`` / mono-or-stereo /
    ``rate`` (Hz; None = the source's rate) and encodes it with ``codec`` in chunks of the
    encoder's frame size, up to the time :meth:`encode_until` is given.
    """

    def __init__(self, output: Any, path: str, start: float, codec: str, sample_format: str, rate: int | None) -> None:
        import av

        self._input = av.open(path)
        try:  # everything that can fail on the input comes before the output stream is added
            source = self._input.streams.audio[0]
            if start > 0:
                self._input.seek(int(start / source.time_base), stream=source, backward=True)
            self._decoder = self._input.decode(source)
        except BaseException:
            self._input.close()
            raise
        self.rate = int(rate or source.rate)
        layout = "mono" if source.channels == 1 else "stereo"
        self.stream = output.add_stream(codec, rate=self.rate)
        self.stream.codec_context.layout = layout
        self.stream.codec_context.format = sample_format
        self._resampler = av.AudioResampler(format=sample_format, layout=layout, rate=self.rate)
        self._fifo = av.AudioFifo()
        self._output = output
        self._start = start
        self._skip: int | None = None  # samples before ``start`` still to drop (None: not known yet)
        self._eof = False
        self._emitted = 0
        self._time_base = Fraction(1, self.rate)

    def _fill(self, need: int) -> None:
        """Decode until the FIFO holds ``need`` samples or the input ends."""
        import av

        while self._fifo.samples < need and not self._eof:
            try:
                decoded = next(self._decoder)
            except (StopIteration, av.FFmpegError):
                self._eof = True
                frames = self._resampler.resample(None)
            else:
                if self._skip is None:
                    first = decoded.time if decoded.time is not None else self._start
                    self._skip = round((self._start - first) * self.rate)
                    if self._skip < 0:  # the audio starts after the first video frame: pad with silence
                        self._write_silence(-self._skip)
                        self._skip = 0
                frames = self._resampler.resample(decoded)
            for frame in frames:
                frame.pts = None
                self._fifo.write(frame)
            if self._skip:
                dropped = self._fifo.read(min(self._skip, self._fifo.samples), partial=True)
                self._skip -= dropped.samples if dropped is not None else 0

    def _write_silence(self, samples: int) -> None:
        import av
        import numpy as np

        layout = self.stream.codec_context.layout
        fmt = self.stream.codec_context.format
        channels = len(layout.channels)
        dtype = np.int16 if fmt.name.startswith("s16") else np.float32  # the formats in FORMATS: s16, flt
        shape = (channels, samples) if fmt.is_planar else (1, samples * channels)
        frame = av.AudioFrame.from_ndarray(np.zeros(shape, dtype), format=fmt.name, layout=layout.name)
        frame.sample_rate = self.rate
        self._fifo.write(frame)

    def encode_until(self, seconds: float, final: bool = False) -> None:
        """Encode audio up to ``seconds`` of output time. ``final`` also writes a last short
        chunk and flushes the encoder."""
        target = round(seconds * self.rate)
        chunk = self.stream.codec_context.frame_size or 1024
        while self._emitted < target:
            want = min(chunk, target - self._emitted)
            if want < chunk and not final:
                break  # keep encoder frames full until the end
            self._fill(want)
            frame = self._fifo.read(want, partial=True)
            if frame is None:  # the source's audio ended before the video
                break
            frame.pts = self._emitted
            frame.time_base = self._time_base
            self._emitted += frame.samples
            self._output.mux(self.stream.encode(frame))
        if final:
            self._output.mux(self.stream.encode(None))

    def close(self) -> None:
        self._input.close()


class MovieSink(Sink):
    """Writes RGBA frames ((H, W, 4) uint8) to a ``.mov`` (ProRes 4444) or ``.webm`` (VP9) file.

    Frames are numbered in arrival order at ``StreamInfo.fps`` (an exact rational, so
    29.97 fps is 30000/1001), so the file holds exactly the frames written. A frame of a
    different size than the first is scaled to the first frame's size.

    Args:
        path: the output file; its extension picks the codec. Parent folders are created.

    Raises:
        TransportError: an extension other than ``.mov``/``.webm`` (at construction), or a
            file that cannot be created (at ``open``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FORMATS:
            raise TransportError(f"movie sink: unknown extension {suffix or '(none)'!r} in {str(self.path)!r}; "
                                 "use .mov (ProRes 4444) or .webm (VP9 with alpha)")
        self._format = FORMATS[suffix]
        self._container: Any = None
        self._stream: Any = None
        self._reformatter: Any = None
        self._audio: _AudioCarry | None = None
        self._rate = Fraction(30)
        self.frames = 0
        self._warned_size = False

    @classmethod
    def from_uri(cls, target: str, **options: Any) -> MovieSink:
        """``movie:PATH.mov`` or ``movie:PATH.webm``."""
        if not target:
            raise TransportError("movie sink needs a file: movie:out.mov (ProRes 4444) or movie:out.webm (VP9 with alpha)")
        return cls(target)

    def open(self, info: StreamInfo) -> None:
        import av
        from av.video.reformatter import VideoReformatter

        codec, pix_fmt, options, audio_codec, sample_format, audio_rate = self._format
        self._rate = frame_rate(info.fps)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), "w")
        except (OSError, av.FFmpegError) as exc:
            raise TransportError(f"movie sink: cannot create {str(self.path)!r} ({exc}); choose a writable path") from None
        stream = self._container.add_stream(codec, rate=self._rate)
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, pix_fmt
        stream.time_base = 1 / self._rate
        stream.options = dict(options)
        cc = stream.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = _BT709, _BT709, _BT709, _RANGE_LIMITED
        self._stream = stream
        self._reformatter = VideoReformatter()
        if info.audio_path:
            try:
                self._audio = _AudioCarry(self._container, info.audio_path, info.audio_start, audio_codec, sample_format, audio_rate)
            except (OSError, IndexError, ValueError, av.FFmpegError) as exc:
                log.warning("movie sink: cannot carry the audio of %s (%s); writing video only", info.audio_path, exc)
                self._audio = None

    def write(self, frame: Frame) -> None:
        import av

        stream = self._stream
        image = frame.image
        vf = av.VideoFrame.from_ndarray(image, format="rgba")
        if (frame.width, frame.height) != (stream.width, stream.height) and not self._warned_size:
            log.warning("movie sink: frame size changed to %dx%d; scaling to %dx%d", frame.width, frame.height, stream.width, stream.height)
            self._warned_size = True
        vf = self._reformatter.reformat(vf, width=stream.width, height=stream.height, format=stream.pix_fmt,
                                        dst_colorspace="itu709")
        vf.pts = self.frames
        self._container.mux(stream.encode(vf))
        self.frames += 1
        if self._audio is not None:
            self._audio.encode_until(float(self.frames / self._rate))

    def close(self) -> None:
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            if self._audio is not None:
                self._audio.encode_until(float(self.frames / self._rate), final=True)
            container.mux(self._stream.encode(None))
        finally:
            if self._audio is not None:
                self._audio.close()
                self._audio = None
            container.close()
