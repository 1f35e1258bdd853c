#!/usr/bin/env bash
# GPU check for the avatar path (issue 12): one command, nothing to edit.
#
#   scripts/gpu-check.sh              # on a Linux box with an NVIDIA GPU and a CUDA torch
#   scripts/gpu-check.sh --dry-run    # print what it would run, run nothing
#   scripts/gpu-check.sh --cpu        # the same steps on the CPU with tiny models (checks the script)
#
# It uses the python that already has a CUDA torch (python3 on PATH, or $PYTHON), even when that python
# is itself a virtual environment (the lent GPU machine's is). What else the benchmark needs (diffusers,
# pydantic, python-osc, ai-edge-litert, ...) is imported from that python if present; else installed into a
# throw-away venv whose .pth file lists the outer python's site-packages (so its CUDA torch, numpy,
# transformers and OpenCV stay visible and are never replaced: every package the outer python has is
# pinned to its installed version with a pip constraints file). From ./wheels when that folder exists
# (offline: make it with scripts/gpu-wheels.sh on a machine with PyPI), else from the package index.
# After installing, it checks that diffusers' UNet2DConditionModel, ControlNetModel and AutoencoderTiny
# import and that `pip check` reports nothing new; else it stops with one line saying why.
#
# Then it runs `avatar-bridge bench avatar --random-weights` at 512x512 (1 and 2 steps, ControlNet on
# and off, each acceleration lever; see docs/benchmarks.md) in three runs and writes to $OUT (default
# ./gpu-check-out):
#   bench.json     the grid's JSON rows: steps 1,2 x ControlNet on,off x acceleration none, auto (whole-frame
#                  CUDA graph); end-to-end, pipelined and diffusion-only fps per row
#   levers.json    1 step + ControlNet, auto: all levers on, then each off in turn (cudnn-benchmark-off,
#                  spin-wait, nchw) and frames without a pose (no-pose: the ControlNet-free graph;
#                  no-pose-cn-graph: the full graph at scale 0)
#   compile.json   the grid again with acceleration compile-graphs (inductor-compiled models inside that graph)
#   bench.log, levers.log, compile.log   each run's progress lines, and each finished row as it finishes
#   profile.txt    torch.profiler: the 30 most expensive CUDA kernels of the 1-step + ControlNet row
#   nvidia-smi.txt, versions.txt (python, torch/CUDA, pip freeze), pip-check.txt
# The three runs share $GPU_CHECK_TIMEOUT seconds (default 400), so the check stays under 8 min: the grid
# gets 35 %, the levers 25 %, the compile rows what is left. A run cut off keeps the rows it finished
# (its .json is rebuilt from its log), the next run still starts, and the script exits 2 at the end.
#
# On a lent machine, in one call of the device tool (wheels/ is git-ignored, so it must be carried;
# 64 MiB per call at most, 10 min per command):
#   scripts/gpu-wheels.sh                       # here, with PyPI: fills ./wheels (refuses > 64 MiB)
#   run(command="scripts/gpu-check.sh", carry=["wheels"], timeout_s=540)
# and the files come back from $OUT. Put the rows in docs/benchmarks.md (avatar section).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-$ROOT/wheels}"
VENV="${GPU_CHECK_VENV:-${TMPDIR:-/tmp}/avatar-bridge-gpu-check-venv}"
TIMEOUT="${GPU_CHECK_TIMEOUT:-400}"
OUTDIR="${OUT:-$ROOT/gpu-check-out}"
DRY=0
CPU=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --cpu) CPU=1 ;;
    -h|--help) sed -n '2,/^set -e/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown option $arg (use --dry-run, --cpu or --help)" >&2; exit 2 ;;
  esac
done

if [ "$CPU" = 1 ]; then
  BENCH_ARGS=(--device cpu --model-size tiny --width 64 --height 64 --frames 2 --warmup 1)
else
  BENCH_ARGS=(--width 512 --height 512 --frames 60 --warmup 5)
fi
# Three runs, cheapest first, each with its share of the time, so that a slow one (inductor's compile) cannot
# take the others' rows with it: the grid, steps x ControlNet x acceleration none/auto, every lever on
# (bench.json) ...
BENCH=(-m bridge bench avatar --random-weights --json --steps 1,2 --controlnet on,off --acceleration none,auto --stream-batch on --filter off "${BENCH_ARGS[@]}")
# ... then each fast-path lever off in turn, 1 step + ControlNet, whole-frame graph (levers.json) ...
LEVER_BENCH=(-m bridge bench avatar --random-weights --json --steps 1 --controlnet on --acceleration auto --stream-batch on --filter off
  --levers all-on,cudnn-benchmark-off,spin-wait,nchw,no-pose,no-pose-cn-graph "${BENCH_ARGS[@]}")
# ... then the grid's rows with inductor-compiled models inside the whole-frame graph (compile.json): what is left
COMPILE_BENCH=(-m bridge bench avatar --random-weights --json --steps 1,2 --controlnet on,off --acceleration compile-graphs --stream-batch on --filter off "${BENCH_ARGS[@]}")
# each run's share of $TIMEOUT, in percent (the last one gets whatever the others left)
GRID_SHARE=35
LEVER_SHARE=25
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

fail() { echo "gpu-check: $*" >&2; exit 2; }
[ "$DRY" = 1 ] || mkdir -p "$OUTDIR"
pip_check() {  # the lines of `pip check` for python $1, sorted (empty when clean)
  "$1" -m pip check --disable-pip-version-check 2>/dev/null | grep -v '^No broken requirements' | sort || true
}
RUN_PY="$PY"
MISSING="$(missing_from "$PY")"
if [ -n "$MISSING" ]; then
  echo "gpu-check: not importable here: $MISSING; installing into $VENV (sees this python's packages)" >&2
  if [ ! -x "$VENV/bin/python" ]; then
    # without pip: no seeded pip/setuptools of its own to shadow the outer python's (a venv's setuptools 65
    # over the setuptools>=77 torch wants breaks `pip check`); the outer pip is reached through the .pth
    run "$PY" -m venv --without-pip "$VENV"
  fi
  if [ "$DRY" = 0 ]; then
    # The outer python may itself be a venv: a venv made from it (even --system-site-packages) sees only
    # the base interpreter's packages. A .pth file listing the outer python's site folders keeps its
    # torch, numpy, cv2, transformers visible; the venv's own site-packages still come first.
    INNER_SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    "$PY" - > "$INNER_SITE/gpu-check-outer.pth" <<'EOF'
import site, sysconfig
seen = []
for p in [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]:
    if p not in seen:
        seen.append(p)
print("\n".join(seen))
EOF
    # every distribution the outer python has, pinned to its installed version: carried wheels add what
    # is missing and never shadow the box's packages (e.g. a huggingface-hub 2.x over a transformers 4.x)
    "$PY" - > "$VENV/outer-constraints.txt" <<'EOF'
import importlib.metadata as md, re
seen = set()
for d in md.distributions():
    name, version = d.metadata["Name"], d.version
    key = re.sub(r"[-_.]+", "-", name or "").lower()
    if key and version and key not in seen:
        seen.add(key)
        print(f"{key}=={version}")
EOF
  fi
  PIP=("$VENV/bin/python" -m pip)  # the outer python's pip, installing into the venv
  if [ "$DRY" = 0 ] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    run "$VENV/bin/python" -m ensurepip --default-pip >/dev/null || fail "no pip in $PY and no ensurepip: install pip for it"
  fi
  INSTALL=("${PIP[@]}" install --disable-pip-version-check -q -c "$VENV/outer-constraints.txt")
  if [ -d "$WHEELS" ]; then
    run "${INSTALL[@]}" --no-index --find-links "$WHEELS" $MISSING \
      || fail "installing $MISSING from $WHEELS failed (pip's lines above): rebuild it with scripts/gpu-wheels.sh for this box's versions"
  else
    echo "gpu-check: no $WHEELS folder: installing from the package index (offline? run scripts/gpu-wheels.sh elsewhere and carry wheels/)" >&2
    run "${INSTALL[@]}" $MISSING || fail "installing $MISSING failed (pip's lines above)"
  fi
  RUN_PY="$VENV/bin/python"
fi

if [ "$DRY" = 0 ]; then
  "$RUN_PY" -c 'from diffusers import UNet2DConditionModel, ControlNetModel, AutoencoderTiny' 2>"$OUTDIR/import-error.txt" \
    || fail "diffusers' UNet2DConditionModel/ControlNetModel/AutoencoderTiny do not import: $(tail -n 1 "$OUTDIR/import-error.txt")"
  rm -f "$OUTDIR/import-error.txt"
  BEFORE="$(pip_check "$PY")"
  AFTER="$(pip_check "$RUN_PY")"
  printf '%s\n' "$AFTER" > "$OUTDIR/pip-check.txt"
  NEW="$(comm -13 <(printf '%s\n' "$BEFORE") <(printf '%s\n' "$AFTER") | sed '/^$/d')"
  [ -z "$NEW" ] || fail "pip check: the installed wheels broke requirements: $(printf '%s' "$NEW" | head -n 1) (all in $OUTDIR/pip-check.txt)"
  {
    echo "python: $("$RUN_PY" -c 'import sys; print(sys.version)')"
    "$RUN_PY" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")' || true
    "$RUN_PY" -m pip freeze --disable-pip-version-check 2>/dev/null || true
  } > "$OUTDIR/versions.txt"
  if command -v nvidia-smi >/dev/null; then nvidia-smi > "$OUTDIR/nvidia-smi.txt" 2>&1 || true; else echo "no nvidia-smi on this machine" > "$OUTDIR/nvidia-smi.txt"; fi
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
if [ "$DRY" = 1 ]; then
  run timeout $(( TIMEOUT * GRID_SHARE / 100 )) "$RUN_PY" "${BENCH[@]}" --profile "$OUTDIR/profile.txt"
  run timeout $(( TIMEOUT * LEVER_SHARE / 100 )) "$RUN_PY" "${LEVER_BENCH[@]}"
  run timeout "(what is left of $TIMEOUT)" "$RUN_PY" "${COMPILE_BENCH[@]}"
else
  FAILED=()
  bench() {  # bench NAME SHARE ARGS...: JSON rows to $OUTDIR/NAME.json and stdout, progress to NAME.log and stderr
    local name="$1" share="$2" left rc; shift 2
    left=$(( TIMEOUT - ($(date +%s) - START) ))
    if [ -n "$share" ] && [ "$share" -lt "$left" ]; then left="$share"; fi
    if [ "$left" -le 10 ]; then
      echo "gpu-check: no time left for the $name rows (GPU_CHECK_TIMEOUT=$TIMEOUT s)" >&2; FAILED+=("$name (no time left)"); return
    fi
    echo "+ timeout $left $RUN_PY $*" >&2
    set +e
    timeout "$left" "$RUN_PY" "$@" > "$OUTDIR/$name.json" 2> >(tee "$OUTDIR/$name.log" >&2)
    rc=$?
    set -e
    sleep 1  # let tee write the log's last lines
    if [ "$rc" != 0 ]; then
      # cut off or failed: the rows it finished are in its log, one per line; keep them as its JSON
      "$RUN_PY" - "$OUTDIR/$name.log" > "$OUTDIR/$name.json" <<'EOF'
import json, sys
prefix = "bench avatar row: "
rows = [json.loads(line[len(prefix):]) for line in open(sys.argv[1], errors="replace") if line.startswith(prefix)]
print(json.dumps(rows, indent=1))
EOF
      local why="exit $rc" kept
      if [ "$rc" = 124 ]; then why="cut off after $left s"; fi
      kept="$(grep -c '^bench avatar row: ' "$OUTDIR/$name.log" || true)"
      FAILED+=("$name ($why; ${kept:-0} rows kept)")
    fi
    cat "$OUTDIR/$name.json"
  }
  bench bench $(( TIMEOUT * GRID_SHARE / 100 )) "${BENCH[@]}" --profile "$OUTDIR/profile.txt"
  bench levers $(( TIMEOUT * LEVER_SHARE / 100 )) "${LEVER_BENCH[@]}"
  bench compile "" "${COMPILE_BENCH[@]}"
  if [ "${#FAILED[@]}" -gt 0 ]; then
    fail "not every run finished: ${FAILED[*]}; partial output in $OUTDIR (each run's log has its progress)"
  fi
fi
echo "gpu-check: done in $(( $(date +%s) - START )) s; files in $OUTDIR; put the rows in docs/benchmarks.md (avatar section)" >&2
