"""Transports chosen by URI: ``scheme:target`` (``video:clip.mp4``, ``spout:TDOut``).

Each scheme lives in its own module, imported only when used, so a Windows-only or
optional library (SpoutGL, cyndilib) is never imported for another scheme.
"""

from __future__ import annotations

import importlib
from typing import Any

from bridge.errors import ConfigError, TransportError
from bridge.transports.base import Sink, Source, StreamInfo

#: scheme -> "module:Class" of the source; the class has ``from_uri(target, **options)``.
SOURCES: dict[str, str] = {
    "video": "bridge.transports.video:VideoFileSource",
    "images": "bridge.transports.images:ImageDirSource",
    "camera": "bridge.transports.camera:CameraSource",
    "spout": "bridge.transports.spout:SpoutSource",
    "ndi": "bridge.transports.ndi:NDISource",
}

#: scheme -> "module:Class" of the sink.
SINKS: dict[str, str] = {
    "images": "bridge.transports.images:ImageDirSink",
    "movie": "bridge.transports.movie:MovieSink",
    "null": "bridge.transports.null:NullSink",
    "spout": "bridge.transports.spout:SpoutSink",
    "ndi": "bridge.transports.ndi:NDISink",
}


def split_uri(uri: str) -> tuple[str, str]:
    """``"video:C:/a.mp4"`` -> ``("video", "C:/a.mp4")`` (split at the first colon).

    Raises:
        ConfigError: no scheme.
    """
    scheme, sep, target = uri.partition(":")
    if not sep or not scheme:
        raise ConfigError(f"bad URI {uri!r}: expected SCHEME:TARGET, e.g. video:clip.mp4 or images:out/")
    return scheme.lower(), target


def _load(table: dict[str, str], kind: str, uri: str) -> tuple[Any, str]:
    scheme, target = split_uri(uri)
    spec = table.get(scheme)
    if spec is None:
        known = ", ".join(f"{s}:" for s in table)
        raise ConfigError(f"unknown {kind} scheme {scheme + ':'!r} in {uri!r}; use one of {known}")
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("bridge."):
            raise TransportError(f"{kind} {scheme}: is not available in this build") from None
        raise
    return getattr(module, class_name), target


def open_source(uri: str, **options: Any) -> Source:
    """Make (not yet open) the source for ``uri``. Options: ``loop`` and scheme-specific ones.

    Raises:
        ConfigError: unknown scheme or bad target.
        TransportError: the scheme's library is missing (the message names the fix).
    """
    cls, target = _load(SOURCES, "source", uri)
    return cls.from_uri(target, **options)


def open_sink(uri: str, **options: Any) -> Sink:
    """Make (not yet open) the sink for ``uri``. Same errors as :func:`open_source`."""
    cls, target = _load(SINKS, "sink", uri)
    return cls.from_uri(target, **options)


__all__ = ["SINKS", "SOURCES", "Sink", "Source", "StreamInfo", "open_sink", "open_source", "split_uri"]
