"""avatar-bridge as a Daydream Scope plugin: pose, avatar and person-alpha inside Scope.

Scope (github.com/daydreamlive/scope) finds this module through the ``scope`` entry
point in ``pyproject.toml``, registers it with pluggy and calls
:func:`register_pipelines`, which registers three pipelines generated from our stage
configs (see :mod:`bridge.scope_plugin.adapter`):

=================  ======================  ======================================================
pipeline id        where it appears        output
=================  ======================  ======================================================
``pose``           Preprocessor dropdown   the camera frames, the skeleton as ``control_video``
``avatar``         main pipeline selector  img2img frames; prompt from Scope's Prompts box
``person-alpha``   Postprocessor dropdown  RGB over a key colour (default), the matte, or RGBA
=================  ======================  ======================================================

This module imports Scope (its hook marker), so only Scope imports it: ``import
bridge`` and the daemon never do.
"""

from __future__ import annotations

import logging

from scope.core.plugins.hookspecs import hookimpl

from bridge.scope_plugin.adapter import ScopeSpec

log = logging.getLogger("bridge.scope_plugin")


def _avatar_artifacts() -> list[tuple[str, list[str]]]:
    from bridge.scope_plugin.models import avatar_artifacts

    return avatar_artifacts()


def _avatar_in_scope_models(load: dict) -> dict:
    from bridge.scope_plugin.models import in_scope_models

    return in_scope_models(load)


#: The pipelines this plugin gives Scope, in chain order (pre -> main -> post).
PIPELINES: tuple[ScopeSpec, ...] = (
    ScopeSpec("pose", control_output=True),
    ScopeSpec("avatar", artifacts=_avatar_artifacts, prepare_load=_avatar_in_scope_models),
    ScopeSpec("person-alpha", matte_output=True, omit=("alpha_source",)),
)


@hookimpl
def register_pipelines(register):
    """Scope's hook: ``register(PipelineClass)`` for each pipeline in :data:`PIPELINES`.

    A pipeline that cannot be built (a stage missing from a broken install) is skipped
    with a one-line logged error, so the others still appear in Scope.
    """
    from bridge.scope_plugin.adapter import scope_pipeline_class
    from bridge.stages.registry import get_stage

    for spec in PIPELINES:
        try:
            pipeline_cls = scope_pipeline_class(get_stage(spec.stage), spec)
        except Exception as exc:  # one broken pipeline must not hide the others
            log.error("avatar-bridge: %s pipeline not registered: %s; reinstall avatar-bridge (pip install -e . in its folder)", spec.stage, exc)
            continue
        register(pipeline_cls)
