#!/usr/bin/env bash
# Fresh virtual environment, torch CPU first (2.13.0), then the project with its test
# extras, then pytest. Used by the README's Quick start and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test,ndi,avatar]"
python -m pytest "$@"
