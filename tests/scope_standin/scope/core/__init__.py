"""Stand-in for ``scope.core``."""
