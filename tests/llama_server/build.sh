#!/usr/bin/env bash
# Builds llama.cpp's llama-server from the source vendored in the llama-cpp-python sdist on PyPI
# (no other download is possible here) and caches the binary outside the repo, keyed by version,
# so a machine builds it once. Prints the binary's path. CPU only, no UI, no curl, no OpenSSL.
# A second caller while a build runs waits for it (a lock in the cache) and then uses its binary.
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${THERAPIST_EVALUATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/therapist-evaluator}/llama-server-$VERSION"
BIN="$CACHE/llama-server"
if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi
if ! command -v cmake >/dev/null 2>&1 || ! command -v g++ >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake build-essential >&2
fi
PYTHON="${PYTHON:-python3}"
LOG="$CACHE/build.log"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "building llama-server $VERSION once for this machine (10-15 minutes on 2 cores; log: $LOG)" >&2
SDIST="$("$PYTHON" "$(dirname "$0")/fetch_sdist.py" llama-cpp-python "$VERSION" "$WORK")"
tar -xzf "$SDIST" -C "$WORK"
SRC="$(echo "$WORK"/llama_cpp_python-*/vendor/llama.cpp)"
if ! {
    cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF &&
        cmake --build "$WORK/build" --target llama-server -j "$(nproc)"
} >"$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    echo "llama-server build failed; full log: $LOG" >&2
    exit 1
fi
cp "$WORK/build/bin/llama-server" "$BIN.partial"
mv "$BIN.partial" "$BIN"
echo "$BIN"
