"""Stand-in for ``scope.core.config``: where Scope keeps downloaded models."""

import os
from pathlib import Path

DEFAULT_MODELS_DIR = "~/.daydream-scope/models"
MODELS_DIR_ENV_VAR = "DAYDREAM_SCOPE_MODELS_DIR"


def get_models_dir() -> Path:
    """``$DAYDREAM_SCOPE_MODELS_DIR`` or ``~/.daydream-scope/models``, absolute."""
    return Path(os.environ.get(MODELS_DIR_ENV_VAR) or DEFAULT_MODELS_DIR).expanduser().resolve()
