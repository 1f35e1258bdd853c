"""Path-valued parameters set over OSC stay inside the project's folders.

A parameter whose field is marked as a path (``json_schema_extra`` holds ``"path": True``;
:func:`path_params` lists them: the avatar's model folders, ``models_dir``,
``reference_images``; the pose stage's ``model``) may name a local file or folder. Over OSC
any allowed sender can set it, and once ``--osc-allow`` opens the port beyond loopback
(the README's two-machine setup) that is anyone on the venue network. So a path set over
OSC must resolve inside the models folder, the presets folder or a folder named with
``--allow-path DIR`` on the command line; anything else is refused with one
``/bridge/error`` line and the stream goes on. Presets loaded from disk and the command
line are not checked (whoever writes those already owns the machine).

What counts as a path in a value (each ``;``-separated part): an absolute path, one that
starts with ``~`` or ``.``, one with a backslash, or a name that exists relative to the
presets folder or the working directory (how :func:`bridge.stages.avatar.reference_paths`
and the model loaders resolve them). Anything else is a name (``sd-turbo``, a Hugging Face
``owner/name``) and opens no local file. ``models_dir`` is always a path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from bridge.errors import BridgeError

#: Fields whose whole value is a folder, even when it does not exist yet.
ALWAYS_PATH = {"models_dir"}


def path_params(config: type) -> list[str]:
    """Names of the fields of ``config`` (a stage config class) marked as paths."""
    out = []
    for name, info in config.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("path"):
            out.append(name)
    return out


class PathPolicy:
    """Where OSC may point path-valued parameters.

    Args:
        allowed: extra folders (``--allow-path``); the models folder and the presets folder
            (as they are when a value is checked) are always allowed.
    """

    def __init__(self, allowed: Iterable[str | os.PathLike[str]] = ()) -> None:
        self.extra = [Path(p).expanduser().resolve() for p in allowed]

    def roots(self) -> list[Path]:
        """The allowed folders, resolved (symbolic links followed)."""
        from bridge.avatar.models import models_dir
        from bridge.presets import presets_dir

        return [models_dir().resolve(), presets_dir().resolve(), *self.extra]

    def check(self, config: type, name: str, value: Any) -> None:
        """Refuse ``value`` for field ``name`` of ``config`` when it names a path outside :meth:`roots`.

        Raises:
            BridgeError: one line naming the path and the fix (``--allow-path``).
        """
        if name not in path_params(config) or not isinstance(value, str) or not value.strip():
            return
        roots = self.roots()
        parts = [value.strip()] if name in ALWAYS_PATH else [p.strip() for p in value.split(";") if p.strip()]
        for part in parts:
            path = _as_path(part, name in ALWAYS_PATH)
            if path is None:
                continue
            if not any(path == root or path.is_relative_to(root) for root in roots):
                raise BridgeError(f"path {part!r} is outside the folders OSC may use (the models folder, the presets folder"
                                  f"{', ' + ', '.join(str(p) for p in self.extra) if self.extra else ''}); put it there, "
                                  f"or start the daemon with --allow-path DIR")


def _as_path(part: str, always: bool) -> Path | None:
    """``part`` resolved as a local path, or None when it is a name (see the module docstring)."""
    from bridge.presets import presets_dir

    path = Path(part).expanduser()
    if path.is_absolute():
        return path.resolve()
    in_presets, in_cwd = presets_dir() / path, Path.cwd() / path
    if always or part.startswith((".", "~")) or "\\" in part or in_presets.exists() or in_cwd.exists():
        return (in_presets if in_presets.exists() else in_cwd).resolve()
    return None
