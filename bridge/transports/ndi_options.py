"""NDI® options of ``avatar-bridge run``: discovery by IP, what to send while the source is gone.

A run extension (see ``bridge.cli.RUN_EXTENSIONS``): :func:`add_run_options` adds the
flags, :func:`transport_options` turns them into the ``ndi_*`` keyword options every
``ndi:`` source and sink takes (other transports ignore them), :func:`start_with_engine`
has nothing to start (the transports configure discovery themselves when they open).
"""

from __future__ import annotations

import argparse
from typing import Any

from bridge.transports.ndi import DEFAULT_TIMEOUT_S, HOLD_MODES, parse_ips


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--ndi-extra-ips``, ``--ndi-config-dir``, ``--ndi-hold`` and ``--ndi-timeout`` to ``run``."""
    group = parser.add_argument_group("NDI (ndi: sources and sinks)")
    group.add_argument("--ndi-extra-ips", metavar="IP[,IP...]", default=None,
                       help="IPs of the machines to reach without mDNS (e.g. the TouchDesigner laptop); "
                            "written to an NDI config (ndi-config.v1.json) for this run")
    group.add_argument("--ndi-config-dir", metavar="DIR", default=None,
                       help="an NDI config folder (holding ndi-config.v1.json) to use or to start from")
    group.add_argument("--ndi-hold", choices=HOLD_MODES, default="last",
                       help="what the ndi: sink sends while no new frame comes: the last frame (default) or transparent frames")
    group.add_argument("--ndi-timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                       help=f"seconds without a frame before the ndi: source counts as lost and the sink starts holding (default {DEFAULT_TIMEOUT_S:g})")


def transport_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``ndi_*`` options for ``open_source``/``open_sink`` from parsed ``run`` arguments.

    Attributes missing from ``args`` (a Namespace built in code) take the defaults.

    Raises:
        ConfigError: a malformed ``--ndi-extra-ips`` entry.
    """
    ips = getattr(args, "ndi_extra_ips", None)
    parse_ips(ips)
    return {
        "ndi_extra_ips": ips,
        "ndi_config_dir": getattr(args, "ndi_config_dir", None),
        "ndi_hold": getattr(args, "ndi_hold", "last"),
        "ndi_timeout": getattr(args, "ndi_timeout", DEFAULT_TIMEOUT_S),
    }


def start_with_engine(engine: Any, args: argparse.Namespace) -> None:
    """Nothing to start: ``ndi:`` transports set up discovery when the engine opens them."""
    return None
