#!/usr/bin/env bash
# Builds quantllm (if needed) and runs the whole test suite through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
[ "${QUANTLLM_SKIP_LLAMA_CPP:-0}" != 0 ] || bash scripts/install-llama-cpp.sh || echo "test: installing llama.cpp failed; the interop tests will fail" >&2
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
