"""``avatar-bridge bench WHAT``: benchmarks whose numbers go into docs/benchmarks.md.

Each benchmark lives in its own module here with ``add_parser(subparsers)``; the
parser sets ``func`` (args -> exit code). Benchmarks print a human table and, with
``--json``, a machine-readable result.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

#: benchmark modules, each with add_parser(subparsers)
BENCHMARKS = ["bridge.bench.alpha", "bridge.bench.engine", "bridge.bench.pose", "bridge.bench.osc", "bridge.bench.avatar", "bridge.bench.ndi", "bridge.bench.soak"]


def parse_sizes(text: str, what: str, minimum: int = 16) -> list[tuple[int, int]]:
    """``"512x512,1920x1080"`` -> ``[(512, 512), (1920, 1080)]`` (width, height in pixels).

    Raises:
        ConfigError: an item that is not WxH, or smaller than ``minimum`` pixels a side;
            the message starts with ``what`` (e.g. "bench engine").
    """
    from bridge.errors import ConfigError

    sizes = []
    for item in text.split(","):
        try:
            width, height = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise ConfigError(f"{what}: bad size {item!r}; use WxH, e.g. --sizes 512x512,1280x720") from None
        if width < minimum or height < minimum:
            raise ConfigError(f"{what}: size {item!r} is too small; use at least {minimum}x{minimum}")
        sizes.append((width, height))
    return sizes


def add_commands(sub: Any) -> None:
    """Add ``bench`` and its benchmarks to the CLI's subparsers."""
    bench = sub.add_parser("bench", help="benchmarks (numbers for docs/benchmarks.md)")
    bsub = bench.add_subparsers(dest="bench_command", metavar="WHAT", parser_class=type(bench))
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_parser(bsub)
    bench.set_defaults(func=lambda args: (bench.print_help(), 2)[1])


__all__ = ["add_commands", "argparse"]
