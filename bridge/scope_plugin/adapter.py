"""Turn one of our stages into a Daydream Scope pipeline class, generated from its config.

Inside Scope the classes must be Scope's own, so for a stage class this module builds,
at hook time:

* a config class subclassing ``scope.core.pipelines.base_schema.BasePipelineConfig``,
  with the stage's metadata as ClassVars (``pipeline_id``, ``pipeline_name``,
  ``pipeline_description``, ``pipeline_version``, ``supports_prompts``, ``modes``,
  ``usage``, ``artifacts``) and one field per stage parameter, same type, bounds,
  default and description, whose ``json_schema_extra`` comes from Scope's own
  ``ui_field_config`` (order, label, ``is_load_param``, ...);
* a pipeline class subclassing ``scope.core.pipelines.interface.Pipeline`` that builds
  the stage in ``__init__`` from the load-time parameters and calls it with the runtime
  parameters read from ``kwargs`` on every call.

So each parameter is defined once, in the stage's config, for the daemon, OSC,
TouchDesigner and Scope.

Naming. Scope keeps one flat parameter dict for the whole chain (preprocessor, main
pipeline, postprocessor get the same runtime ``kwargs``, and the same ``load_params``
go to every pipeline's ``__init__``; checked in Scope's ``frame_processor.py`` and
``pipeline_manager.py``), so two stages with a ``threshold`` would fight. Every
parameter therefore appears in Scope as ``<osc name>_<parameter>``: the daemon's
``/bridge/alpha/threshold`` is Scope's ``alpha_threshold`` (and its OSC address
``/scope/alpha_threshold``). The one exception is the text prompt: a stage with
``supports_prompts`` takes its ``prompt`` parameter from Scope's own prompt box
(``kwargs["prompts"]``), so it is not repeated as a field.

Matte output. A stage that returns ``"alpha"`` (THW1) next to ``"video"`` (THW3) gets two
Scope-only parameters: ``<osc>_output_mode`` and ``<osc>_key_color``. Scope turns a
pipeline's output into ``(video * 255).clamp(0, 255).to(uint8)`` and then, for its
browser preview (WebRTC track), headless sink, recorder and cloud relay,
``av.VideoFrame.from_ndarray(frame, format="rgb24")``, which refuses 4 channels
(checked in Scope 68b0f95: ``server/pipeline_processor.py``, ``server/headless.py``,
``server/recording.py``); only its Spout sender takes 4 (``server/spout/sender.py``).
So the modes are:

* ``key`` (the default inside Scope): C=3, the RGB composited over ``<osc>_key_color``
  (green unless changed), so every Scope output shows the matte as the key colour around
  the person, and a chroma keyer downstream can pull it back out;
* ``matte``: C=3, the matte itself as grey (white = person), to judge it;
* ``rgba``: C=4, the matte in alpha, for Scope's Spout output to TouchDesigner; Scope's
  preview, recorder and headless sink cannot show 4 channels (they fail).

The daemon (Spout/NDI/file sinks) never goes through this module: its stages return
RGBA as before.

Control output. A preprocessor whose image is meant as a ControlNet input (the pose
skeleton) gets ``<osc>_output``: ``passthrough`` (default: its input frames go on as
``video`` and its image goes on as ``control_video``, which Scope hands to the next
pipeline as a parameter, so the avatar gets the camera for img2img and the skeleton
for its ControlNet) or ``control`` (its image is the ``video``, e.g. to look at it).

Nothing here imports Scope at module level; :func:`scope_pipeline_class` does, and it
is only called from the plugin hook, which only Scope calls.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import torch
from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo

import bridge
from bridge.errors import ConfigError, ModelMissingError
from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, instance_lock, stack_video

#: The stage parameter fed from Scope's prompt box when the stage ``supports_prompts``.
PROMPT_FIELD = "prompt"

#: Keys of ``ui_field_config`` that Scope's helper takes (all keyword-only there).
_UI_KEYS = ("order", "component", "modes", "label", "category")

#: Default key colour of the ``key`` output mode: pure green, as a chroma keyer expects.
DEFAULT_KEY_COLOR = "#00ff00"

#: Output modes of a matte stage inside Scope; the first is the default (see the module doc).
MATTE_OUTPUT_MODES = ("key", "matte", "rgba")


@dataclass(frozen=True)
class ScopeSpec:
    """How one of our stages appears in Scope.

    Attributes:
        stage: the stage's ``pipeline_id`` (or OSC name) in :mod:`bridge.stages`.
        matte_output: the stage returns ``"alpha"``; offer key-colour (default), matte or RGBA output.
        control_output: the stage's ``video`` is a control image (a pose skeleton); offer
            passing the input frames through with the image as ``control_video``.
        omit: stage parameters that mean nothing inside Scope (hidden there, their
            default applies), e.g. person-alpha's ``alpha_source``: Scope gives a
            postprocessor only the main pipeline's output, never the camera frame.
        artifacts: returns ``[(repo_id, [files])]``, the Hugging Face files Scope must
            download before loading the pipeline (called at hook time).
        prepare_load: maps the stage's validated load-time parameters before the stage is
            built inside Scope (e.g. model names -> the folders Scope downloaded them to).
    """

    stage: str
    matte_output: bool = False
    control_output: bool = False
    omit: tuple[str, ...] = ()
    artifacts: Callable[[], list[tuple[str, list[str]]]] | None = None
    prepare_load: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def scope_param_name(config_cls: type[BasePipelineConfig], name: str) -> str:
    """The name of stage parameter ``name`` inside Scope: ``<osc name>_<name>``."""
    return f"{config_cls.osc_name}_{name}"


def prompt_text(prompts: Any) -> str | None:
    """The text of Scope's ``prompts`` value: the highest-weighted entry (first on ties).

    Scope sends a list of ``{"text": str, "weight": float}`` (plain strings, and objects
    with ``text``/``weight`` attributes, are taken too; no weight means 1). Returns None
    when there is no prompt.
    """
    if isinstance(prompts, str):
        return prompts
    best, best_weight = None, float("-inf")
    for item in prompts or ():
        if isinstance(item, str):
            text, weight = item, 1.0
        else:
            get = item.get if isinstance(item, dict) else lambda key, default=None: getattr(item, key, default)
            text, weight = get("text"), get("weight", 1.0)
            weight = 1.0 if weight is None else float(weight)
        if text is not None and weight > best_weight:
            best, best_weight = str(text), weight
    return best


def parse_key_color(value: str) -> tuple[float, float, float]:
    """``"#RRGGBB"`` (or ``"RRGGBB"``) -> RGB floats in [0, 1].

    Raises:
        ValueError: not six hexadecimal digits; the message shows the expected form.
    """
    text = str(value).strip().removeprefix("#")
    if len(text) != 6 or any(c not in string.hexdigits for c in text):
        raise ValueError(f"key colour must be #RRGGBB (e.g. {DEFAULT_KEY_COLOR}), got {value!r}")
    return tuple(int(text[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def rgba_output(video: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """(T,H,W,3) RGB and (T,H,W,1) alpha, float32 in [0,1] -> (T,H,W,4) RGBA float32."""
    return torch.cat((video[..., :3], alpha.to(video.dtype)), dim=-1)


def key_output(video: torch.Tensor, alpha: torch.Tensor, key: torch.Tensor, premultiplied: bool) -> torch.Tensor:
    """Composite over a key colour, in place: (T,H,W,3) RGB, (T,H,W,1) alpha, (3,) key -> (T,H,W,3).

    Straight RGB: ``key + alpha * (rgb - key)``; premultiplied RGB: ``rgb + (1 - alpha) * key``
    (Porter & Duff "over", 1984). Everything float32 in [0, 1]; ``video`` is overwritten.
    """
    rgb = video[..., :3]
    if premultiplied:
        return rgb.addcmul_(alpha, key, value=-1.0).add_(key)
    return rgb.sub_(key).mul_(alpha).add_(key)


def _ui_kwargs(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    ui = extra.get("ui", {}) if isinstance(extra.get("ui", {}), dict) else {}
    kwargs = {key: ui[key] for key in _UI_KEYS if ui.get(key) is not None}
    if ui.get("is_load_param"):  # seed 001: never pass is_load_param=False explicitly
        kwargs["is_load_param"] = True
    return kwargs


def _next_order(ours: type[BasePipelineConfig]) -> int:
    orders = [_ui_kwargs(f).get("order", -1) for f in ours.model_fields.values()]
    return max(orders, default=-1) + 1


def scope_config_class(stage_cls: type[Pipeline], spec: ScopeSpec) -> type:
    """A Scope ``BasePipelineConfig`` subclass generated from ``stage_cls``'s config.

    Raises:
        ValueError: a name in ``spec.omit`` is not a parameter of the stage.
    """
    from scope.core.pipelines.artifacts import HuggingfaceRepoArtifact
    from scope.core.pipelines.base_schema import BasePipelineConfig as ScopeConfig
    from scope.core.pipelines.base_schema import ModeDefaults, UsageType as ScopeUsage, ui_field_config

    ours = stage_cls.get_config_class()
    unknown = [name for name in spec.omit if name not in ours.model_fields]
    if unknown:
        raise ValueError(f"{ours.pipeline_id}: cannot omit unknown parameters {unknown}")
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for name, field in ours.model_fields.items():
        if name in spec.omit or (ours.supports_prompts and name == PROMPT_FIELD):
            continue
        scope_name = scope_param_name(ours, name)
        annotations[scope_name] = field.annotation
        namespace[scope_name] = FieldInfo.merge_field_infos(field, json_schema_extra=ui_field_config(**_ui_kwargs(field)))
    if spec.matte_output:
        order = _next_order(ours)
        annotations[scope_param_name(ours, "output_mode")] = Literal[MATTE_OUTPUT_MODES]  # type: ignore[valid-type]
        namespace[scope_param_name(ours, "output_mode")] = Field(
            default=MATTE_OUTPUT_MODES[0],
            description="key: 3 channels, the person over the key colour (works in every Scope output). "
            "matte: 3 channels, the matte as grey. rgba: 4 channels, the matte in alpha, for Scope's Spout "
            "output only (Scope's preview, recorder and headless output take 3 channels and fail on 4).",
            json_schema_extra=ui_field_config(order=order, label="Output"),
        )
        annotations[scope_param_name(ours, "key_color")] = str
        namespace[scope_param_name(ours, "key_color")] = Field(
            default=DEFAULT_KEY_COLOR,
            pattern=r"^#?[0-9A-Fa-f]{6}$",
            description="Background colour of the key output mode, #RRGGBB.",
            json_schema_extra=ui_field_config(order=order + 1, label="Key colour"),
        )
    if spec.control_output:
        annotations[scope_param_name(ours, "output")] = Literal["passthrough", "control"]
        namespace[scope_param_name(ours, "output")] = Field(
            default="passthrough",
            description="passthrough: the input frames go on, this stage's image goes to the next pipeline as its "
            "ControlNet image (control_video), as the avatar needs. control: output this stage's image.",
            json_schema_extra=ui_field_config(order=_next_order(ours), label="Output"),
        )
    usage_by_value = {u.value: u for u in ScopeUsage}
    namespace.update(
        __module__=__name__,
        __qualname__=f"{ours.__name__}InScope",
        __doc__=f"Scope config of avatar-bridge's {ours.pipeline_id!r} stage (generated from {ours.__name__}).",
        __annotations__=annotations,
        pipeline_id=ours.pipeline_id,
        pipeline_name=ours.pipeline_name,
        pipeline_description=ours.pipeline_description,
        pipeline_version=bridge.__version__,
        supports_prompts=ours.supports_prompts,
        modes={name: ModeDefaults(default=mode.default) for name, mode in ours.modes.items()},
        # Scope has no "main" usage: a main pipeline is one with no pre/post usage.
        usage=[usage_by_value[u.value] for u in ours.usage if u is not UsageType.MAIN and u.value in usage_by_value],
        artifacts=[HuggingfaceRepoArtifact(repo_id=repo, files=list(files)) for repo, files in (spec.artifacts() if spec.artifacts else [])],
    )
    return type(f"{ours.__name__}InScope", (ScopeConfig,), namespace)


class _StageAdapter:
    """Scope pipeline behaviour shared by every generated class (mixed in before Scope's ``Pipeline``).

    Class attributes set by :func:`scope_pipeline_class`: ``_stage_cls``, ``_scope_config``,
    ``_spec``, ``_requirements_cls`` (Scope's ``Requirements``), ``_runtime`` and ``_load``
    (pairs of (Scope name, stage name)).
    """

    _stage_cls: ClassVar[type[Pipeline]]
    _scope_config: ClassVar[type]
    _spec: ClassVar[ScopeSpec]
    _requirements_cls: ClassVar[type]
    _runtime: ClassVar[tuple[tuple[str, str], ...]]
    _load: ClassVar[tuple[tuple[str, str], ...]]

    @classmethod
    def get_config_class(cls) -> type:
        """The generated Scope config class."""
        return cls._scope_config

    def __init__(self, device: torch.device | str | None = None, **kwargs: Any) -> None:
        """Build the stage from this pipeline's load-time parameters found in ``kwargs``.

        Scope calls ``Pipeline(**load_params)`` with one dict shared by every pipeline
        of the chain: parameters that are not this stage's are ignored. ``device``
        defaults to CUDA when available, else CPU.

        Raises:
            ConfigError: a load-time parameter has a wrong type or value (names it).
            BridgeError: the stage cannot load (e.g. ModelMissingError names the fix).
        """
        ours = self._stage_cls.get_config_class()
        picked = {name: kwargs[scope_name] for scope_name, name in self._load if scope_name in kwargs}
        try:
            config = ours.model_validate(picked)
        except ValidationError as exc:
            problems = "; ".join(
                (f"{scope_param_name(ours, '.'.join(map(str, e['loc'])))}: " if e["loc"] else "") + e["msg"] for e in exc.errors()
            )
            raise ConfigError(f"{ours.pipeline_id}: {problems}") from None
        self.device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        load = config.load_params()
        #: the stage's load-time parameters as used (stage names, not Scope names).
        self.load_params = self._spec.prepare_load(load) if self._spec.prepare_load else load
        try:
            self.stage = self._stage_cls(device=self.device, **self.load_params)
        except ModelMissingError as exc:
            # Scope (68b0f95, server/pipeline_manager.py, PipelineManager._load_pipeline_by_id_sync)
            # catches this, logs "Failed to load pipeline <id>: str(e)" (its Logs panel shows it)
            # and sends str(e) only in its Kafka "pipeline_load_failed" event; its
            # /api/v1/pipeline/status always says "error": null. Name Scope's own download first.
            raise ModelMissingError(f"{ours.pipeline_id}: {exc} -- in Scope: download the pipeline's models "
                                    "(its Download Models dialog on Start, or POST /api/v1/models/download), then load again") from exc
        # every runtime parameter gets a value, so a same-named key of another Scope
        # pipeline can never reach the stage
        self._defaults = {name: ours.model_fields[name].get_default(call_default_factory=True) for name in ours.runtime_fields()}
        self._prompt = ours.supports_prompts and PROMPT_FIELD in self._defaults
        self._key: tuple[str | None, torch.Tensor | None] = (None, None)
        self._output_name = scope_param_name(ours, "output")

    def stage_params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """This stage's runtime parameters, stage names -> values, read from Scope's ``kwargs``.

        Parameters Scope did not send keep the stage's defaults; the prompt comes from
        Scope's ``prompts`` when the stage supports prompts.
        """
        params = dict(self._defaults)
        for scope_name, name in self._runtime:
            if scope_name in kwargs:
                params[name] = kwargs[scope_name]
        if self._prompt:
            text = prompt_text(kwargs.get("prompts"))
            if text is not None:
                params[PROMPT_FIELD] = text
        return params

    def prepare(self, **kwargs: Any) -> Any:
        """Scope's ``Requirements`` from the stage's ``prepare`` (frames needed per call)."""
        requirements = self.stage.prepare(**self.stage_params(kwargs))
        return self._requirements_cls(input_size=int(requirements.input_size))

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        """Run the stage on ``kwargs["video"]`` (list of (1,H,W,C) tensors in [0,255]).

        Returns ``{"video": (T,H,W,C) float32 in [0,1]}`` (for a matte stage C=3 in the
        default ``key`` mode and in ``matte`` mode, C=4 RGBA in ``rgba`` mode) plus any other tensor outputs of the stage (Scope forwards those
        to the next pipeline as parameters; Python objects such as the pose stage's
        ``people`` stay inside the daemon). ``init_cache=True`` (Scope's first call and
        its cache reset) resets the stage's temporal state.

        Raises:
            ValueError: no video input, a bad key colour or output mode.
        """
        video = kwargs.get("video")
        if video is None or len(video) == 0:
            raise ValueError(f"{self._scope_config.pipeline_id} needs video input: choose the Video input mode in Scope")
        # one call at a time per instance: reset + call + the key cache belong together
        # (the stage itself locks too, see bridge.stages.base)
        with instance_lock(self):
            return self._run(video, kwargs)

    def _run(self, video: list[torch.Tensor], kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("init_cache"):
            self.stage.reset()
        params = self.stage_params(kwargs)
        # Scope's float contract: never the daemon's uint8 outputs (bridge.stages.base)
        out = self.stage(**{**kwargs, **params, "keep_uint8": False})
        result = {key: value for key, value in out.items() if key != "alpha" and isinstance(value, torch.Tensor)}
        if self._spec.matte_output:
            result["video"] = self._matte_output(out["video"], out.get("alpha"), params, kwargs)
        elif self._spec.control_output and kwargs.get(self._output_name, "passthrough") == "passthrough":
            result["control_video"] = out["video"]
            result["video"] = stack_video(video, self.device)
        return result

    def _matte_output(self, video: torch.Tensor, alpha: torch.Tensor | None, params: dict[str, Any], kwargs: dict[str, Any]) -> torch.Tensor:
        ours = self._stage_cls.get_config_class()
        if alpha is None:
            alpha = torch.ones_like(video[..., :1])
        mode = kwargs.get(scope_param_name(ours, "output_mode"), MATTE_OUTPUT_MODES[0])
        if mode == "rgba":
            return rgba_output(video, alpha)
        if mode == "matte":
            return alpha.to(video.dtype).expand(*alpha.shape[:-1], 3).clone()
        if mode != "key":
            raise ValueError(f"{scope_param_name(ours, 'output_mode')} must be one of {', '.join(MATTE_OUTPUT_MODES)}; got {mode!r}")
        premultiplied = params.get("alpha_mode") == "premultiplied"
        return key_output(video, alpha, self._key_tensor(kwargs.get(scope_param_name(ours, "key_color"), DEFAULT_KEY_COLOR), video), premultiplied)

    def _key_tensor(self, value: str, like: torch.Tensor) -> torch.Tensor:
        text, tensor = self._key
        if text != value or tensor is None or tensor.device != like.device:
            tensor = torch.tensor(parse_key_color(value), dtype=like.dtype, device=like.device)
            self._key = (value, tensor)
        return tensor


def scope_pipeline_class(stage_cls: type[Pipeline], spec: ScopeSpec) -> type:
    """A Scope ``Pipeline`` subclass running ``stage_cls``, with its generated config class.

    Call only where Scope is importable (the plugin hook).
    """
    from scope.core.pipelines.interface import Pipeline as ScopePipeline
    from scope.core.pipelines.interface import Requirements

    ours = stage_cls.get_config_class()
    config_cls = scope_config_class(stage_cls, spec)
    fields = config_cls.model_fields

    def pairs(names: list[str]) -> tuple[tuple[str, str], ...]:
        return tuple((scope_param_name(ours, n), n) for n in names if scope_param_name(ours, n) in fields)

    namespace = {
        "__module__": __name__,
        "__qualname__": f"{stage_cls.__name__}InScope",
        "__doc__": f"avatar-bridge's {ours.pipeline_id!r} stage as a Scope pipeline.\n\n{stage_cls.__doc__ or ''}",
        "_stage_cls": stage_cls,
        "_scope_config": config_cls,
        "_spec": spec,
        "_requirements_cls": Requirements,
        "_runtime": pairs(ours.runtime_fields()),
        "_load": pairs(ours.load_fields()),
    }
    return type(f"{stage_cls.__name__}InScope", (_StageAdapter, ScopePipeline), namespace)
