"""Stand-in for ``scope.core.plugins.manager``: entry-point discovery and the register callback."""

import pluggy

from .hookspecs import ScopeHookSpec

pm = pluggy.PluginManager("scope")
pm.add_hookspecs(ScopeHookSpec)


def load_plugins() -> None:
    """Load every plugin installed under the ``scope`` entry-point group."""
    pm.load_setuptools_entrypoints("scope")


def register_plugin_pipelines(registry) -> None:
    """Run every plugin's ``register_pipelines`` hook into ``registry``."""

    def register_callback(pipeline_class):
        config_class = pipeline_class.get_config_class()
        registry.register(getattr(config_class, "pipeline_id", None), pipeline_class)

    pm.hook.register_pipelines(register=register_callback)
