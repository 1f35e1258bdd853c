"""Regenerate the README's OSC address table from ``avatar-bridge osc-schema``.

The table between ``<!-- osc-schema:begin -->`` and ``<!-- osc-schema:end -->`` in
README.md is the output of ``avatar-bridge osc-schema`` (run as ``python -m bridge
osc-schema`` with this interpreter), so a field added to a stage config shows up in
the README with no second list to keep in sync.

Usage::

    python tools/gen_readme_osc.py            # rewrite the block in README.md
    python tools/gen_readme_osc.py --check    # exit 1 when README.md is stale (tests run this)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BEGIN = "<!-- osc-schema:begin -->"
END = "<!-- osc-schema:end -->"
ROOT = Path(__file__).resolve().parent.parent


def schema_markdown() -> str:
    """The table ``avatar-bridge osc-schema`` prints (Markdown), without a trailing newline.

    Raises:
        subprocess.CalledProcessError: the command failed.
    """
    out = subprocess.run([sys.executable, "-m", "bridge", "osc-schema"], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip("\n")


def render(readme: str, table: str) -> str:
    """``readme`` with the text between the markers replaced by ``table``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {BEGIN} ... {END} block")
    return readme[: start + len(BEGIN)] + "\n" + table + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` verify) the README's OSC table. Returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README table is stale; change nothing")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    try:
        fresh = render(text, schema_markdown())
    except ValueError as exc:
        print(f"gen_readme_osc: {exc}", file=sys.stderr)
        return 2
    if fresh == text:
        print(f"{args.readme}: OSC table is up to date")
        return 0
    if args.check:
        print(f"{args.readme}: OSC table is stale; run: python tools/gen_readme_osc.py", file=sys.stderr)
        return 1
    args.readme.write_text(fresh, encoding="utf-8")
    print(f"{args.readme}: OSC table regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
