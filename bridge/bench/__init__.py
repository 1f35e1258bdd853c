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
BENCHMARKS = ["bridge.bench.alpha", "bridge.bench.engine", "bridge.bench.pose", "bridge.bench.osc", "bridge.bench.avatar", "bridge.bench.ndi"]


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
