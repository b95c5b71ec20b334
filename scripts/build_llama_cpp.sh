#!/usr/bin/env bash
# Build llama.cpp's command-line tools from the source distribution of llama-cpp-python on PyPI, which vendors
# llama.cpp (vendor/llama.cpp, with convert_hf_to_gguf.py and gguf-py). Outside the repository, once; re-running
# with the binaries present does nothing. The pinned sdist's sha256 is checked, so every build compiles the same
# llama.cpp. Only what the export checks use is built: llama-tokenize (ids of a text), llama-simple (greedy
# continuation) and llama-completion (the general command line, --temp 0 for greedy).
#   LLAMA_CPP_HOME  where the source and the build go   (default: ~/.cache/gptstack/llama.cpp)
#   JOBS            parallel compile jobs               (default: 2)
# Prints the folder of the binaries last; tests find them there (or at $LLAMA_CPP_BIN).
set -euo pipefail
VERSION=0.3.36
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
HOME_DIR="${LLAMA_CPP_HOME:-$HOME/.cache/gptstack/llama.cpp}"
JOBS="${JOBS:-2}"
TARGETS=(llama-tokenize llama-simple llama-completion)
SRC="$HOME_DIR/llama_cpp_python-$VERSION/vendor/llama.cpp"
BUILD="$HOME_DIR/build"
PYTHON="${PYTHON:-python3}"
for tool in cmake c++ make; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed (Debian/Ubuntu: apt-get install cmake g++ make)" >&2; exit 2; }
done

mkdir -p "$HOME_DIR"
if [ ! -d "$SRC" ]; then
    archive="$HOME_DIR/llama_cpp_python-$VERSION.tar.gz"
    if [ ! -f "$archive" ]; then
        echo "==> downloading llama-cpp-python $VERSION (source distribution, about 75 MB)"
        "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$HOME_DIR"
    fi
    echo "$SHA256  $archive" | sha256sum --check --quiet - \
        || { echo "error: $archive is not the pinned llama-cpp-python $VERSION (sha256 differs); delete it and re-run" >&2; exit 2; }
    tar -xzf "$archive" -C "$HOME_DIR"
fi

if ! [ -x "$BUILD/bin/llama-tokenize" ] || ! [ -x "$BUILD/bin/llama-simple" ] || ! [ -x "$BUILD/bin/llama-completion" ]; then
    echo "==> configuring llama.cpp in $BUILD"
    # portable CPU code (no -march=native), static binaries, nothing that needs the network or OpenSSL
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF > "$HOME_DIR/cmake-configure.log" 2>&1 \
        || { tail -20 "$HOME_DIR/cmake-configure.log" >&2; echo "error: cmake configure failed (log: $HOME_DIR/cmake-configure.log)" >&2; exit 1; }
    echo "==> building ${TARGETS[*]} with $JOBS jobs (several minutes)"
    start=$SECONDS
    nice -n 10 cmake --build "$BUILD" --config Release -j "$JOBS" --target "${TARGETS[@]}" \
        > "$HOME_DIR/cmake-build.log" 2>&1 \
        || { tail -20 "$HOME_DIR/cmake-build.log" >&2; echo "error: build failed (log: $HOME_DIR/cmake-build.log)" >&2; exit 1; }
    echo "==> built in $((SECONDS - start)) s"
fi
echo "llama.cpp binaries: $BUILD/bin"
echo "llama.cpp converter: $SRC/convert_hf_to_gguf.py"
