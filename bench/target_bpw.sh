#!/usr/bin/env bash
# Issue 17: --target-bpw against llama.cpp's named mixes. All files from one importance matrix (quantllm
# imatrix on gutenberg-calib.txt, IMATRIX_CHUNKS chunks of 512 tokens; llama.cpp's statistics). The named
# mixes are llama.cpp's quantizer byte for byte (tests/quant/ggml_golden_test.cpp; the per-tensor types:
# bench/llama_quantize_check.sh); ours choose each tensor's type for the size, either rounding as llama.cpp
# does (variant imatrix) or with GPTQ's error feedback into the blocks (variant gptq: --gptq, calibrated on
# NSAMPLES windows of 512 tokens of the same text); both measure each tensor's sensitivity on that text. One `compare` per text over every file: its JSON rows go
# to OUT/target_bpw-MODEL-TEXT.json and its chart (KL divergence against bits a weight) beside them.
#   bench/target_bpw.sh MODEL_DIR DATA_DIR OUT
# Env: QUANTLLM (binary), THREADS, KLD_WINDOWS (64), IMATRIX_CHUNKS (128), NSAMPLES (128), WORK (/tmp/target_bpw),
#      TARGETS ("3.0 3.5 4.0 4.5"), MIXES (the named mixes from IQ2_M to Q5_K_M), VARIANTS ("imatrix gptq").
set -euo pipefail
model=$1 data=$2 out=$3
bin=${QUANTLLM:-build/quantllm}
threads=${THREADS:-0}
kldw=${KLD_WINDOWS:-64}
targets=${TARGETS:-3.0 3.5 4.0 4.5}
mixes=${MIXES:-IQ2_M Q2_K IQ3_XXS IQ3_XS IQ3_S Q3_K_S IQ3_M Q3_K_M Q3_K_L IQ4_XS Q4_K_S Q4_K_M Q5_K_S Q5_K_M}
variants=${VARIANTS:-imatrix gptq}
name=$(basename "$model")
work=${WORK:-/tmp/target_bpw}/$name
mkdir -p "$work" "$out"
imat=$work/imatrix.gguf
[ -f "$imat" ] || "$bin" imatrix --model "$model" --data "$data/gutenberg-calib.txt" --chunks "${IMATRIX_CHUNKS:-128}" \
  --ctx 512 --threads "$threads" --out "$imat" --force 2>"$work/imatrix.log"
files=()
for m in $mixes; do
  f=$work/llama.cpp-$m.gguf
  [ -f "$f" ] || "$bin" quantize --model "$model" --method gguf --type "$m" --imatrix "$imat" --threads "$threads" \
    --out "$f" --force >/dev/null 2>"$work/$m.log"
  files+=("$f")
done
for v in $variants; do
  for t in $targets; do
    f=$work/quantllm-$t-$v.gguf
    # --calib: the text of the sensitivity probe (both variants) and of GPTQ's calibration
    extra=(--calib "$data/gutenberg-calib.txt" --nsamples "${NSAMPLES:-128}" --seqlen 512 --seed 0)
    if [ $v = imatrix ]; then extra+=(--imatrix "$imat"); else extra+=(--gptq); fi
    s0=$(date +%s.%N)
    [ -f "$f" ] || "$bin" quantize --model "$model" --method gguf --target-bpw "$t" "${extra[@]}" --threads "$threads" \
      --out "$f" --force >/dev/null 2>"$work/$t-$v.log"
    echo "$name target $t $v: $(stat -c %s "$f") bytes, $(printf "%.1f" "$(echo "$(date +%s.%N) - $s0" | bc)") s"
    files+=("$f")
  done
done
for text in wikitext2-test.raw gutenberg-heldout.txt; do
  stem=$out/target_bpw-$name-${text%%.*}
  "$bin" compare --base "$model" --candidates "${files[@]}" --data "$data/$text" --max-windows "$kldw" \
    --threads "$threads" --format json --chart "$stem.svg" >"$stem.json" 2>"$work/compare-$text.log"
  echo "$stem.json"
done
