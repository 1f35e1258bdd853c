"""Stand-in for ``scope.core.pipelines`` (the real one also imports its built-in pipelines)."""
