#!/usr/bin/env bash
# The README's test command. System tools the tests drive (liblo's oscsend/oscdump) are
# installed with apt-get when missing and this runs as root on a Debian/Ubuntu machine;
# otherwise the test that needs them is skipped with the exact command to run. Then a
# virtual environment (.venv, or $VENV), torch CPU first (2.13.0), the project with its test
# extras, and pytest (arguments are passed on: `bash scripts/test.sh tests/test_cli.py -x`).
# Used by the README's Quick start and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# System tools: liblo-tools (oscsend, oscdump) for tests/test_osc_daemon.py.
missing=""
command -v oscsend >/dev/null 2>&1 && command -v oscdump >/dev/null 2>&1 || missing="$missing liblo-tools"
if [ -n "$missing" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "scripts/test.sh: installing$missing (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null 2>&1 \
      || echo "scripts/test.sh: apt-get could not install$missing; the tests that need it will be skipped"
  else
    echo "scripts/test.sh: missing$missing; the tests that need it will be skipped (install: sudo apt-get install$missing, or brew install liblo)"
  fi
fi

VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test,ndi,avatar]"
python -m pytest "$@"
