"""avatar-bridge as a Daydream Scope plugin: pose, avatar and person-alpha inside Scope.

Scope (github.com/daydreamlive/scope) finds this module through the ``scope`` entry
point in ``pyproject.toml``, registers it with pluggy and calls
:func:`register_pipelines`, which registers three pipelines generated from our stage
configs (see :mod:`bridge.scope_plugin.adapter`):

========================  ===========================  ======================================
pipeline id               where it appears in Scope    output
========================  ===========================  ======================================
``pose``                  Preprocessor dropdown        the stage's ``video`` (+ its extras)
``avatar``                main pipeline selector       img2img frames; prompt from Scope's box
``person-alpha``          Postprocessor dropdown       RGBA (C=4) or RGB over a key colour
========================  ===========================  ======================================

This module imports Scope (its hook marker), so only Scope imports it: ``import
bridge`` and the daemon never do.
"""

from __future__ import annotations

import logging

from scope.core.plugins.hookspecs import hookimpl

from bridge.scope_plugin.adapter import ScopeSpec

log = logging.getLogger("bridge.scope_plugin")


def _avatar_artifacts() -> list[tuple[str, list[str]]]:
    from bridge.avatar.models import scope_artifacts

    return scope_artifacts()


#: The pipelines this plugin gives Scope, in chain order (pre -> main -> post).
PIPELINES: tuple[ScopeSpec, ...] = (
    ScopeSpec("pose"),
    ScopeSpec("avatar", artifacts=_avatar_artifacts),
    ScopeSpec("person-alpha", matte_output=True, omit=("alpha_source",)),
)


@hookimpl
def register_pipelines(register):
    """Scope's hook: ``register(PipelineClass)`` for each pipeline in :data:`PIPELINES`.

    A stage that cannot be found (a broken install) is skipped with a logged error, so
    the other pipelines still appear in Scope.
    """
    from bridge.scope_plugin.adapter import scope_pipeline_class
    from bridge.stages.registry import UnknownStageError, get_stage

    for spec in PIPELINES:
        try:
            stage_cls = get_stage(spec.stage)
        except UnknownStageError as exc:
            log.error("avatar-bridge: %s; reinstall avatar-bridge (pip install -e . in its folder)", exc)
            continue
        register(scope_pipeline_class(stage_cls, spec))
