#!/usr/bin/env bash
# Issue 17: GPTQ into GGML blocks (quantize --method gguf --gptq) against llama.cpp's imatrix quants of
# the same mix, both calibrated on gutenberg-calib.txt (the importance matrix: quantllm imatrix, 128 chunks
# of 512 tokens, llama-imatrix's statistics; the quants: llama.cpp's quantizer, byte for byte; GPTQ:
# 128 windows of 512 tokens). KL divergence against the bf16 model on wikitext2 and gutenberg-heldout.
# Writes one JSON object per line to OUT/gguf_gptq-MODEL.jsonl.
#   bench/gguf_gptq.sh MODEL_DIR DATA_DIR OUT [TYPE ...]      (default types: Q4_K_M Q3_K_M Q2_K)
# Env: QUANTLLM (binary), THREADS, KLD_WINDOWS (default 64), WORK (the files; default /tmp/gguf_gptq).
set -euo pipefail
model=$1 data=$2 out=$3
shift 3
types=${*:-Q4_K_M Q3_K_M Q2_K}
bin=${QUANTLLM:-build/quantllm}
threads=${THREADS:-0}
kldw=${KLD_WINDOWS:-64}
name=$(basename "$model")
work=${WORK:-/tmp/gguf_gptq}/$name
mkdir -p "$work"
log=$out/gguf_gptq-$name.jsonl
echo "{\"model\":\"$name\",\"date\":\"$(date -u +%FT%TZ)\",\"host\":\"$(hostname)\",\"threads\":$threads,\"cpus\":$(nproc)}" >>"$log"
imat=$work/imatrix.gguf
[ -f "$imat" ] || "$bin" imatrix --model "$model" --data "$data/gutenberg-calib.txt" --chunks 128 --ctx 512 \
  --threads "$threads" --out "$imat" --force 2>"$work/imatrix.log"
for t in $types; do
  for v in imatrix gptq; do
    f=$work/$t-$v.gguf
    if [ $v = imatrix ]; then extra=(--imatrix "$imat"); else
      extra=(--gptq --calib "$data/gutenberg-calib.txt" --nsamples 128 --seqlen 512 --seed 0); fi
    s0=$(date +%s.%N)
    "$bin" quantize --model "$model" --method gguf --type "$t" "${extra[@]}" --threads "$threads" --out "$f" --force \
      2>"$work/$t-$v.log" >/dev/null
    secs=$(printf "%.3f" "$(echo "$(date +%s.%N) - $s0" | bc)")
    for text in wikitext2-test.raw gutenberg-heldout.txt; do
      r=$("$bin" eval kld --base "$model" --model "$f" --data "$data/$text" --max-windows "$kldw" --threads "$threads" --json 2>/dev/null)
      line="{\"model\":\"$name\",\"type\":\"$t\",\"variant\":\"$v\",\"bytes\":$(stat -c %s "$f"),\"quantize_seconds\":$secs,\"text\":\"$text\",\"kld\":$r}"
      echo "$line" >>"$log"
      echo "$line"
    done
  done
done
