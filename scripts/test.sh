#!/usr/bin/env bash
# Builds quantllm (if needed) and runs the whole test suite through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
# The CUDA backend is compiled wherever nvcc is (its tests skip without a GPU; runs load cuBLAS only for --device cuda).
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
cuda_flags=(-DQUANTLLM_CUDA=OFF)
[ -n "$nvcc" ] && cuda_flags=(-DQUANTLLM_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc")
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "${cuda_flags[@]}" >/dev/null
cmake --build build -j"$(nproc)"
[ "${QUANTLLM_SKIP_LLAMA_CPP:-0}" != 0 ] || bash scripts/install-llama-cpp.sh || echo "test: installing llama.cpp failed; the interop tests will fail" >&2
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
