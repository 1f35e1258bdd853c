"""Write ``touchdesigner/osc_schema.json`` from the daemon's OSC schema.

The TouchDesigner project builds its panel from this file (TouchDesigner's Python cannot
import the daemon), so it must match ``bridge.osc.schema.osc_schema()``;
``tests/test_touchdesigner.py`` fails when it does not. After adding or changing a stage
parameter, run (in the daemon's virtual environment)::

    python touchdesigner/sync_schema.py          # rewrite the file
    python touchdesigner/sync_schema.py --check  # exit 1 if it is out of date

then press "Rebuild panel from schema" on the COMP's Daemon page in TouchDesigner.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent / "osc_schema.json"


def schema_text() -> str:
    """The file's content for the current daemon: ``osc_schema()`` as indented JSON."""
    from bridge.osc.schema import osc_schema

    return json.dumps(osc_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` compare) the schema file. Returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = schema_text()
    current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else ""
    if args.check:
        if current != text:
            print(f"{SCHEMA_PATH} is out of date: run python touchdesigner/sync_schema.py", file=sys.stderr)
            return 1
        print(f"{SCHEMA_PATH} is up to date")
        return 0
    SCHEMA_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {SCHEMA_PATH} ({len(json.loads(text))} addresses)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
