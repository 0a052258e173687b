#!/usr/bin/env bash
# The GPU check on a host that reaches no package index (docs/gpu.md): the wheels carried in WHEEL_DIR are
# installed beside the host's own packages (not over them: --target keeps torch and its CUDA libraries as they
# are), this project without its dependencies and without build isolation (which would fetch setuptools), then
# benchmarks/gpu_check.py runs with the remaining arguments.
# Usage: bash benchmarks/gpu_check_offline.sh WHEEL_DIR [gpu_check.py arguments ...]
set -euo pipefail
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: bash benchmarks/gpu_check_offline.sh WHEEL_DIR [gpu_check.py arguments]: WHEEL_DIR must be a folder of .whl files (docs/gpu.md lists them)" >&2
    exit 2
fi
wheels=$(cd "$1" && pwd)  # absolute: the script moves to the repository root
shift
shopt -s nullglob
found=("$wheels"/*.whl)
if [ ${#found[@]} -eq 0 ]; then
    echo "no .whl file in $wheels; fix: download them as docs/gpu.md says" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
site=${MLPERF_EXT_WHEEL_SITE:-$PWD/.wheel-site}  # in the repository (ignored), beside nothing of the host's
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "${found[@]}"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
PYTHONUNBUFFERED=1 exec python3 benchmarks/gpu_check.py "$@"
