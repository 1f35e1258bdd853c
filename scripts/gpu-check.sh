#!/usr/bin/env bash
# GPU check for the avatar path (issue 12): one command, nothing to edit.
#
#   scripts/gpu-check.sh              # on a Linux box with an NVIDIA GPU and a CUDA torch
#   scripts/gpu-check.sh --dry-run    # print what it would run, run nothing
#   scripts/gpu-check.sh --cpu        # the same steps on the CPU with tiny models (checks the script)
#
# It uses the python that already has a CUDA torch (python3 on PATH, or $PYTHON). What else the
# benchmark needs (diffusers, pydantic, python-osc, ai-edge-litert) is imported from that python if
# present; else installed into a throw-away venv that sees the preinstalled packages
# (--system-site-packages: the CUDA torch, numpy 2, transformers, OpenCV stay as they are), from
# ./wheels when that folder exists (an offline box: make it with scripts/gpu-wheels.sh on a machine
# with internet and carry it along, at most 64 MiB), else from the package index.
#
# Then it prints the JSON of `avatar-bridge bench avatar --random-weights` at 512x512: 1 and 2 steps,
# ControlNet on and off, acceleration none and auto (auto = the whole frame as one CUDA graph), each
# row with end-to-end fps (pose + diffusion + alpha, in series and pipelined) and diffusion-only fps.
# The benchmark is cut off after $GPU_CHECK_TIMEOUT seconds (default 420) so the whole check stays
# within 8 minutes. Put the numbers in docs/benchmarks.md (avatar section).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-$ROOT/wheels}"
VENV="${GPU_CHECK_VENV:-${TMPDIR:-/tmp}/avatar-bridge-gpu-check-venv}"
TIMEOUT="${GPU_CHECK_TIMEOUT:-420}"
DRY=0
CPU=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --cpu) CPU=1 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown option $arg (use --dry-run, --cpu or --help)" >&2; exit 2 ;;
  esac
done

if [ "$CPU" = 1 ]; then
  BENCH_ARGS=(--device cpu --model-size tiny --width 64 --height 64 --frames 2 --warmup 1)
else
  BENCH_ARGS=(--width 512 --height 512 --frames 60 --warmup 5)
fi
BENCH=(-m bridge bench avatar --random-weights --json --steps 1,2 --controlnet on,off --acceleration none,auto --stream-batch on --filter off "${BENCH_ARGS[@]}")
# import name -> what to install when it is missing
NEEDED=(diffusers:diffusers pydantic:pydantic pythonosc:python-osc ai_edge_litert:ai-edge-litert yaml:PyYAML PIL:Pillow safetensors:safetensors)

run() {  # echo, and run unless --dry-run
  echo "+ $*" >&2
  if [ "$DRY" = 0 ]; then "$@"; fi
}

command -v "$PY" >/dev/null || { echo "gpu-check: $PY not found; set PYTHON=/path/to/python (the one with the CUDA torch)" >&2; exit 2; }
PY="$(command -v "$PY")"
case "$PY" in /*) ;; *) PY="$PWD/$PY" ;; esac
echo "gpu-check: python $("$PY" -c 'import sys; print(sys.version.split()[0])') at $(command -v "$PY")" >&2
if [ "$DRY" = 0 ]; then
  if [ "$CPU" = 0 ]; then
    "$PY" - <<'EOF' || exit 2
import sys
try:
    import torch
except ImportError:
    sys.exit("gpu-check: this python has no torch; install a CUDA torch or set PYTHON=/path/to/python")
if not torch.cuda.is_available():
    sys.exit(f"gpu-check: torch {torch.__version__} sees no CUDA GPU (torch.version.cuda={torch.version.cuda}); "
             "run it on the GPU box, or --cpu to check the steps here")
print(f"gpu-check: torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}", file=sys.stderr)
EOF
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
  fi
fi

missing_from() {  # the pip names of what $1 (a python) cannot import
  "$1" - "${NEEDED[@]}" <<'EOF'
import importlib.util, sys
print(" ".join(pip for mod, pip in (a.split(":") for a in sys.argv[1:]) if importlib.util.find_spec(mod) is None))
EOF
}

RUN_PY="$PY"
MISSING="$(missing_from "$PY")"
if [ -n "$MISSING" ]; then
  echo "gpu-check: not importable here: $MISSING; installing into $VENV (sees the preinstalled packages)" >&2
  if [ ! -x "$VENV/bin/python" ]; then
    # no ensurepip (Debian without python3-venv): a venv without pip, driven by the outer pip below
    run "$PY" -m venv --system-site-packages "$VENV" || run "$PY" -m venv --system-site-packages --without-pip "$VENV"
  fi
  PIP=("$VENV/bin/python" -m pip)
  if [ "$DRY" = 0 ] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    PIP=("$PY" -m pip --python "$VENV/bin/python")  # a venv without pip: drive it with the outer pip
  fi
  if [ -d "$WHEELS" ]; then
    run "${PIP[@]}" install --disable-pip-version-check --no-index --find-links "$WHEELS" $MISSING
  else
    echo "gpu-check: no $WHEELS folder: installing from the package index (offline? run scripts/gpu-wheels.sh elsewhere and copy wheels/ here)" >&2
    run "${PIP[@]}" install --disable-pip-version-check $MISSING
  fi
  RUN_PY="$VENV/bin/python"
fi

# real frames of a real person: the carphone clip from wheels/samples when this box cannot fetch it
if [ -f "$WHEELS/samples/carphone_pristine.mp4" ] && [ -z "${AVATAR_BRIDGE_CACHE:-}" ]; then
  CACHE="${TMPDIR:-/tmp}/avatar-bridge-gpu-check-cache"
  run mkdir -p "$CACHE/samples"
  run cp "$WHEELS/samples/carphone_pristine.mp4" "$CACHE/samples/"
  export AVATAR_BRIDGE_CACHE="$CACHE"
fi

cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)
run timeout "$TIMEOUT" "$RUN_PY" "${BENCH[@]}"
echo "gpu-check: done in $(( $(date +%s) - START )) s; put the rows in docs/benchmarks.md (avatar section) with: scripts/gpu-check.sh" >&2
