#!/usr/bin/env bash
# The main job: set up, build, then quantize the default reference model with each method
# (GGUF Q4_K_M, GPTQ 4-bit, AWQ 4-bit), evaluate them against the original and print the
# comparison table and the chart's path. Outputs go to out/ (override with OUT=...).
#   bash scripts/main-job.sh [MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-../shared/models/gutenberg-llama-33m}
data=${DATA:-../shared/data}
out=${OUT:-out}
bash scripts/setup.sh
# The CUDA backend is compiled wherever nvcc is (its tests skip without a GPU; runs load cuBLAS only for --device cuda).
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
cuda_flags=(-DQUANTLLM_CUDA=OFF)
[ -n "$nvcc" ] && cuda_flags=(-DQUANTLLM_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc")
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "${cuda_flags[@]}" >/dev/null
cmake --build build -j"$(nproc)" --target quantllm
mkdir -p "$out"
q=build/quantllm
calib=(--calib "$data/gutenberg-calib.txt" --nsamples "${NSAMPLES:-64}" --seqlen 512 --seed 0)
$q quantize --model "$model" --method gguf --type Q4_K_M --out "$out/model-Q4_K_M.gguf" --force
$q quantize --model "$model" --method gptq --bits 4 --group-size 128 --act-order "${calib[@]}" --out "$out/model-gptq-w4g128" --force
$q quantize --model "$model" --method awq --bits 4 --group-size 128 "${calib[@]}" --out "$out/model-awq-w4g128" --force
$q compare --base "$model" --candidates "$out/model-Q4_K_M.gguf" "$out/model-gptq-w4g128" "$out/model-awq-w4g128" \
  --data "$data/wikitext2-test.raw" --max-windows "${WINDOWS:-16}" --chart "$out/compare.svg"
