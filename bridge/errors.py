"""Errors a user can cause or fix. Each carries a one-line message that says what to do.

The CLI prints ``avatar-bridge: <message>`` for any :class:`BridgeError` and exits 2,
with no traceback. The daemon reports them on its status and keeps streaming.
"""


class BridgeError(Exception):
    """Base of user-facing errors; ``str(err)`` is one line saying what is wrong and what to do."""


class ConfigError(BridgeError):
    """A bad preset, parameter, URI or option."""


class ModelMissingError(BridgeError):
    """A model a stage needs is not installed or not downloaded; the message names the fix."""


class TransportError(BridgeError):
    """A source or sink cannot be opened (missing file, missing library, unknown scheme)."""


class SourceLost(Exception):
    """A live source disappeared (sender closed, camera unplugged); the engine retries it."""
