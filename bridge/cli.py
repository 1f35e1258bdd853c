"""The ``avatar-bridge`` command line.

Subcommands: ``run``, ``demo``, ``doctor``, ``presets``, ``osc-schema`` (and those
other modules add through :data:`EXTRA_COMMANDS`). Every user error prints one line,
``avatar-bridge: <what is wrong; what to do>``, and exits 2 with no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

from bridge import __version__
from bridge.errors import BridgeError

log = logging.getLogger("bridge")

#: Modules that add subcommands: each has ``add_commands(subparsers)``; a subcommand
#: sets ``func`` (args -> exit code) with ``set_defaults``.
EXTRA_COMMANDS: list[str] = ["bridge.bench", "bridge.models_cli"]

#: Hooks that add options to ``run`` (``add_run_options(parser)``) and start services
#: around the engine (``start_with_engine(engine, args) -> stop callable or None``); one
#: may also have ``transport_options(args) -> dict`` of keyword options for the transports.
RUN_EXTENSIONS: list[str] = ["bridge.osc.daemon", "bridge.transports.ndi_options"]


VERBOSE_HELP = "debug logging, and the inference runtime's own log lines (LiteRT/TFLite, absl), hidden by default"

#: Environment variables that set the native runtimes' log thresholds (TensorFlow Lite /
#: LiteRT and absl: 0 = everything, 2 = errors only; glog: 0 = INFO, 2 = ERROR). Set only
#: when the user has not set them.
NATIVE_LOG_ENV = ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel")


def set_verbosity(verbose: bool) -> None:
    """Quiet (default) or ``--verbose`` output for the whole process.

    Quiet: our INFO logging, and the inference runtime's native log lines (``INFO: Created
    TensorFlow Lite XNNPACK delegate for CPU``, ``W0000 ...``) are hidden
    (:func:`bridge.vision.runtime.set_verbose`, errors-only native log levels). Verbose:
    DEBUG logging and every native line.
    """
    import os

    from bridge.vision.runtime import set_verbose

    set_verbose(verbose)
    for name in NATIVE_LOG_ENV:
        os.environ.setdefault(name, "0" if verbose else "2")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("absl", "ai_edge_litert", "tensorflow"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.ERROR)


class UsageError(BridgeError):
    """A bad command line."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"avatar-bridge: {message} (see 'avatar-bridge {self.prog.split()[-1]} --help')\n")


def _extensions(names: list[str]) -> list[Any]:
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = _Parser(prog="avatar-bridge", description="TouchDesigner <-> real-time AI avatar bridge daemon.")
    parser.add_argument("--version", action="version", version=f"avatar-bridge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    # --verbose is also accepted after the command (avatar-bridge run --verbose ...)
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)

    run = sub.add_parser("run", parents=[verbose], help="stream frames from a source through a preset's stages to a sink")
    run.add_argument("--source", required=True, metavar="URI", help="video:PATH | camera:N | images:DIR | spout:SENDER | ndi:NAME")
    run.add_argument("--sink", required=True, metavar="URI", help="images:DIR | movie:PATH(.mov|.webm) | spout:SENDER | ndi:NAME | null:")
    run.add_argument("--preset", default="default", metavar="NAME", help="preset from presets/ (default: default)")
    run.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N source frames")
    run.add_argument("--loop", action="store_true", help="replay a file source forever (rehearsal, soak runs)")
    run.add_argument("--device", default="cpu", help="torch device for the stages (cpu, cuda, cuda:1, mps)")
    run.add_argument("--stats-every", type=float, default=2.0, metavar="S", help="print stats every S seconds (0 = never)")
    run.add_argument("--json", action="store_true", help="print the final stats as JSON")
    for ext in _extensions(RUN_EXTENSIONS):
        ext.add_run_options(run)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", parents=[verbose], help="run the real sample clip through the default preset")
    demo.add_argument("--out", default="out/demo", metavar="DIR", help="where the RGBA PNGs go (default out/demo)")
    demo.add_argument("--preset", default="default", metavar="NAME")
    demo.set_defaults(func=cmd_demo)

    doctor = sub.add_parser("doctor", parents=[verbose], help="what transports, stages, models and devices work here")
    doctor.set_defaults(func=cmd_doctor)

    presets = sub.add_parser("presets", help="list or show presets")
    psub = presets.add_subparsers(dest="presets_command", metavar="ACTION", parser_class=_Parser)
    psub.add_parser("list", help="names and descriptions").set_defaults(func=cmd_presets_list)
    show = psub.add_parser("show", help="one preset, validated, with every parameter")
    show.add_argument("name")
    show.set_defaults(func=cmd_presets_show)
    presets.set_defaults(func=cmd_presets_list)

    schema = sub.add_parser("osc-schema", help="every OSC address, its type, range and default")
    schema.add_argument("--json", action="store_true", help="JSON list (what the TouchDesigner project reads)")
    schema.set_defaults(func=cmd_osc_schema)

    for ext in _extensions(EXTRA_COMMANDS):
        ext.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    set_verbosity(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BridgeError as exc:
        print(f"avatar-bridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# ---------------------------------------------------------------------------- run
def build_engine(args: argparse.Namespace, on_status: Callable[[Any], None] | None = None) -> Any:
    """Preset -> chain, URIs -> source and sink, all validated; returns an Engine.

    Raises:
        BridgeError: bad preset, URI, or a stage that cannot load.
    """
    from bridge.chain import Chain
    from bridge.engine import Engine
    from bridge.presets import load_preset
    from bridge.transports import open_sink, open_source

    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be at least 1")
    preset = load_preset(args.preset)
    options = dict(getattr(args, "transport_options", None) or {})
    for ext in _extensions(RUN_EXTENSIONS):  # e.g. the ndi_* options of bridge.transports.ndi_options
        if hasattr(ext, "transport_options"):
            options.update(ext.transport_options(args))
    source = open_source(args.source, **options)
    sink = open_sink(args.sink, **options)
    chain = Chain.from_spec(preset.chain_spec(), device=args.device)
    engine = Engine(source, chain, sink, max_frames=args.max_frames, loop=args.loop, on_status=on_status)
    engine.preset = preset
    return engine


def cmd_run(args: argparse.Namespace) -> int:
    """``avatar-bridge run``: stream until the source ends, --max-frames, or Ctrl-C."""
    engine = build_engine(args)
    stops = []
    for ext in _extensions(RUN_EXTENSIONS):
        stop = ext.start_with_engine(engine, args)
        if stop is not None:
            stops.append(stop)
    t0 = time.perf_counter()
    engine.start()
    next_print = t0 + args.stats_every if args.stats_every > 0 else float("inf")
    try:
        while engine.running:
            time.sleep(0.05)
            if time.perf_counter() >= next_print:
                _print_stats(engine.stats)
                next_print += args.stats_every
    except KeyboardInterrupt:
        print("avatar-bridge: stopping", file=sys.stderr)
        engine.stop()
    finally:
        for stop in stops:
            stop()
    stats = engine.join()
    elapsed = time.perf_counter() - t0
    summary = stats.snapshot()
    summary["elapsed_s"] = round(elapsed, 3)
    summary["mean_fps"] = round(stats.frames_out / elapsed, 2) if elapsed > 0 else 0.0
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{stats.frames_out} frames from {args.source} to {args.sink} in {elapsed:.2f} s "
              f"({summary['mean_fps']} fps), dropped {stats.dropped}, latency {stats.latency_ms:.1f} ms")
    return 0


def _print_stats(stats: Any) -> None:
    stages = " ".join(f"{k}={v:.1f}ms" for k, v in stats.stage_ms.items())
    print(f"[{stats.state}] {stats.fps:.1f} fps, latency {stats.latency_ms:.1f} ms, dropped {stats.dropped}, {stages}", file=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    """``avatar-bridge demo``: carphone (a real person) -> default preset -> RGBA PNGs."""
    from bridge.samples import fetch_sample

    clip = fetch_sample("carphone")
    out = Path(args.out)
    run_args = argparse.Namespace(source=f"video:{clip}", sink=f"images:{out}", preset=args.preset, max_frames=None,
                                  loop=False, device="cpu", stats_every=0, json=False)
    engine = build_engine(run_args)
    t0 = time.perf_counter()
    stats = engine.run()
    elapsed = time.perf_counter() - t0
    per_stage = ", ".join(f"{k} {v:.1f} ms/frame" for k, v in stats.stage_ms.items())
    print(f"demo: {stats.frames_out} RGBA frames of {clip.name} written to {out.resolve()}/frame_NNNNNN.png")
    print(f"demo: {stats.frames_out / elapsed:.1f} fps end to end ({per_stage}), dropped {stats.dropped}")
    return 0


# ---------------------------------------------------------------------------- info
def cmd_presets_list(args: argparse.Namespace) -> int:
    """``avatar-bridge presets list``."""
    from bridge.presets import list_presets, load_preset, presets_dir

    names = list_presets()
    if not names:
        print(f"no presets in {presets_dir()}")
    for name in names:
        try:
            print(f"{name:20s} {load_preset(name).description}")
        except BridgeError as exc:
            print(f"{name:20s} INVALID: {exc}")
    return 0


def cmd_presets_show(args: argparse.Namespace) -> int:
    """``avatar-bridge presets show NAME``: the preset with every parameter filled in."""
    import yaml

    from bridge.chain import validate_params
    from bridge.presets import load_preset
    from bridge.stages.registry import get_stage

    preset = load_preset(args.name)
    stages = []
    for entry in preset.stages:
        config = validate_params(get_stage(entry.stage).get_config_class(), entry.params)
        stages.append({"stage": config.osc_name, "id": config.pipeline_id, "params": config.model_dump(mode="json")})
    print(yaml.safe_dump({"name": preset.name, "description": preset.description, "stages": stages}, sort_keys=False), end="")
    return 0


def cmd_osc_schema(args: argparse.Namespace) -> int:
    """``avatar-bridge osc-schema [--json]``."""
    from bridge.osc.schema import osc_schema, schema_table

    entries = osc_schema()
    print(json.dumps(entries, indent=2) if args.json else schema_table(entries))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """``avatar-bridge doctor``: each check on one line, with what to do when it fails."""
    from bridge.doctor import run_checks

    failed = 0
    for check in run_checks():
        mark = "ok  " if check.ok else ("warn" if check.optional else "FAIL")
        failed += 0 if check.ok or check.optional else 1
        line = f"[{mark}] {check.name}: {check.detail}"
        if not check.ok and check.fix:
            line += f" -> {check.fix}"
        print(line)
    return 1 if failed else 0
