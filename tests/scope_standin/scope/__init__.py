"""Stand-in for Daydream Scope's ``scope`` package (tests only; see ../README.md)."""
