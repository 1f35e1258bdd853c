#!/usr/bin/env bash
# Wheels for scripts/gpu-check.sh on an offline GPU box (Python 3.12, Linux x86_64, with a CUDA torch,
# numpy 2, transformers, accelerate, OpenCV, onnxruntime and torchvision preinstalled).
#
#   scripts/gpu-wheels.sh [FOLDER]     # default ./wheels; needs internet (PyPI)
#
# Downloads cp312 manylinux wheels of what the box lacks (diffusers, pydantic, python-osc, ai-edge-litert)
# and their dependencies, leaves out what the box has (torch, numpy and NVIDIA's libraries), copies the
# carphone sample (real frames of a real person) into FOLDER/samples, and refuses a total over 64 MiB.
# Carry FOLDER to the box as <repo>/wheels; scripts/gpu-check.sh installs from it with pip --no-index.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/wheels}"
PY="${PYTHON:-python3}"
LIMIT_MIB=64
PYVER="${GPU_WHEELS_PYTHON:-3.12}"  # the GPU box's python (3.12); the test sets the local one
# the versions this tree is tested with (diffusers) and the LiteRT runtime of the vision stages
PACKAGES=("diffusers==0.42.1" "ai-edge-litert==2.3.0" "pydantic>=2.6" "python-osc>=1.9" "annotated-types>=0.6" "PyYAML>=6" "Pillow>=10")
# older releases pip can fall back to when the box's own packages (pinned by gpu-check.sh) are older than the
# newest releases want: pydantic 2.14 needs typing-extensions>=4.16, pydantic 2.11 takes >=4.12.2
FALLBACKS=("pydantic==2.11.*")
PLATFORMS=(manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64 any)
# preinstalled on the box (and large): never carried
DROP='^(torch|numpy|nvidia_|triton)'

mkdir -p "$OUT"
args=()
for p in "${PLATFORMS[@]}"; do args+=(--platform "$p"); done
"$PY" -m pip download --disable-pip-version-check --only-binary=:all: --python-version "$PYVER" --implementation cp --abi "cp${PYVER/./}" \
  "${args[@]}" -d "$OUT" "${PACKAGES[@]}"
"$PY" -m pip download --disable-pip-version-check --only-binary=:all: --python-version "$PYVER" --implementation cp --abi "cp${PYVER/./}" \
  "${args[@]}" -d "$OUT" "${FALLBACKS[@]}"
for wheel in "$OUT"/*.whl; do
  if basename "$wheel" | grep -Eiq "$DROP"; then rm -f "$wheel"; fi
done

SAMPLE="$(PYTHONPATH="$ROOT" "$PY" -c 'from bridge.samples import fetch_sample; print(fetch_sample("carphone", quiet=True))' 2>/dev/null || true)"
if [ -n "$SAMPLE" ] && [ -f "$SAMPLE" ]; then
  mkdir -p "$OUT/samples"
  cp "$SAMPLE" "$OUT/samples/"
else
  echo "gpu-wheels: the carphone sample could not be fetched; the GPU check will time synthetic frames" >&2
fi

TOTAL=$(du -sb "$OUT" | cut -f1)
echo "gpu-wheels: $(ls "$OUT"/*.whl | wc -l) wheels + samples in $OUT, $((TOTAL / 1048576)) MiB (limit $LIMIT_MIB MiB)" >&2
if [ "$TOTAL" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "gpu-wheels: $OUT is over $LIMIT_MIB MiB; it will not fit the box's transfer limit" >&2
  exit 1
fi
