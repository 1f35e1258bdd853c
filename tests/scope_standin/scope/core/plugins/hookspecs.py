"""Stand-in for ``scope.core.plugins.hookspecs``: pluggy markers for project ``"scope"``."""

import pluggy

hookspec = pluggy.HookspecMarker("scope")
hookimpl = pluggy.HookimplMarker("scope")


class ScopeHookSpec:
    """Hooks a Scope plugin may implement."""

    @hookspec
    def register_pipelines(self, register):
        """Call ``register(PipelineClass)`` once per pipeline the plugin provides."""
