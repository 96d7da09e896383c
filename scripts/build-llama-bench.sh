#!/usr/bin/env bash
# Builds llama.cpp's own benchmark tool, llama-bench, from the llama.cpp source that the npm package
# node-llama-cpp carries (node_modules/node-llama-cpp/llama/gitRelease.bundle, a git bundle of the
# release its prebuilt binaries were made from), so bench/ can put llama.cpp's speed beside ours on
# the same GGUF files without any network access. Needs scripts/install-llama-cpp.sh first.
#
# Built for this machine (GGML_NATIVE: -march=native, so every ISA extension the CPU has is used),
# CPU only, Release. Idempotent: an existing binary of the same source commit is kept.
#   QUANTLLM_CACHE     cache root (default ~/.cache/quantllm)
#   JOBS               parallel compile jobs (default: nproc)
# Prints the path of llama-bench on its last line.
set -euo pipefail

cache="${QUANTLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/quantllm}"
bundle="$cache/node-llama-cpp/node_modules/node-llama-cpp/llama/gitRelease.bundle"
src="$cache/llama.cpp-src"
build="$cache/llama.cpp-build"
[ -f "$bundle" ] || { echo "build-llama-bench: $bundle not found (run scripts/install-llama-cpp.sh)" >&2; exit 1; }
command -v git >/dev/null || { echo "build-llama-bench: git not found" >&2; exit 1; }

head=$(git bundle list-heads "$bundle" | awk 'NR==1{print $1}')
if [ -x "$build/bin/llama-bench" ] && [ -f "$build/.commit" ] && [ "$(cat "$build/.commit")" = "$head" ]; then
  echo "$build/bin/llama-bench"
  exit 0
fi
rm -rf "$src" "$build"
git clone -q "$bundle" "$src" >&2
git -C "$src" checkout -q "$head" >&2
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_VULKAN=OFF \
  -DGGML_METAL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$build" -j"${JOBS:-$(nproc)}" --target llama-bench >&2
echo "$head" >"$build/.commit"
echo "$build/bin/llama-bench"
