#!/usr/bin/env bash
# llama.cpp's own quantizer against ours on a model: `llama-quantize` of our F32 GGUF to each mix must give
# the same tensors, byte for byte, as `quantllm quantize --method gguf --type MIX` (the same per-tensor types
# from the mix rules, the same blocks). llama-quantize comes from the llama.cpp source node-llama-cpp carries
# (scripts/build-llama-bench.sh's build, target llama-quantize).
#   bench/llama_quantize_check.sh MODEL_DIR [MIX ...]     (default mixes: Q8_0 Q6_K Q4_K_M Q3_K_M Q2_K)
# IMATRIX=FILE (an importance matrix in llama.cpp's GGUF format, e.g. from `quantllm imatrix`) is given to both
# quantizers: the lattice mixes (IQ1_*, IQ2_*, IQ3_XXS) are written only with one.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1; shift
mixes=${*:-Q8_0 Q6_K Q4_K_M Q3_K_M Q2_K}
cache="${QUANTLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/quantllm}"
lq="$cache/llama.cpp-build/bin/llama-quantize"
if [ ! -x "$lq" ]; then
  bash scripts/build-llama-bench.sh >/dev/null
  cmake --build "$cache/llama.cpp-build" -j"$(nproc)" --target llama-quantize >/dev/null
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
build/quantllm quantize --model "$model" --method gguf --type F32 --out "$tmp/f32.gguf" >/dev/null
ours_im=() theirs_im=()
if [ -n "${IMATRIX:-}" ]; then ours_im=(--imatrix "$IMATRIX"); theirs_im=(--imatrix "$IMATRIX"); fi
for mix in $mixes; do
  build/quantllm quantize --model "$model" --method gguf --type "$mix" "${ours_im[@]}" --out "$tmp/ours.gguf" --force >/dev/null
  "$lq" "${theirs_im[@]}" "$tmp/f32.gguf" "$tmp/theirs.gguf" "$mix" 2 >/dev/null 2>&1
  echo "$(basename "$model") $mix: $(python3 bench/compare_gguf_tensors.py "$tmp/ours.gguf" "$tmp/theirs.gguf" | tail -1)"
done
