#!/usr/bin/env bash
# Quality of every method on a 2026 reference model (Gemma 3, Qwen3-MoE): RTN, GPTQ (act-order) and AWQ at
# 4 bits (GPTQ and RTN at 3 bits too), groups of 128, asymmetric, 128 calibration windows of 512 tokens from
# gutenberg-calib.txt (reference.json's peer-baseline settings); for the MoE model GPTQ under both
# --moe-calibration policies. Each result: perplexity over all windows of gutenberg-heldout and wikitext-2
# (on the GPU when there is one) and KL divergence from the bf16 model over the first 64 windows of each
# (CPU, the quantized engine off: fp32 weights both sides).
#
# Run on the GPU machine by bench/device/run.sh (stage `quality M`), sourced (it uses run.sh's QL); on a
# CPU-only machine DEVICE=cpu runs everything on the CPU (slow: about an hour a model on 2 cores).
# Writes one JSON line per measurement to OUT/quality.jsonl; bench/arch2026_table.py makes the table.
# usage: source bench/arch2026_quality.sh SHARED_DIR OUT_DIR MODEL
set -uo pipefail
S=$1
OUT=$2
MODEL=$3
DEVICE=${DEVICE:-cuda}
M=$S/models/$MODEL
CAL=$S/data/gutenberg-calib.txt
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

configs=("rtn-w4|--method rtn --bits 4" "rtn-w3|--method rtn --bits 3"
         "gptq-w4|--method gptq --bits 4 --act-order --calib $CAL" "gptq-w3|--method gptq --bits 3 --act-order --calib $CAL")
if grep -q -e num_local_experts -e num_experts $M/config.json; then
  configs+=("gptq-w4-all-experts|--method gptq --bits 4 --act-order --calib $CAL --moe-calibration all-experts"
            "gptq-w3-all-experts|--method gptq --bits 3 --act-order --calib $CAL --moe-calibration all-experts"
            "awq-w4|--method awq --bits 4 --calib $CAL --device cpu")  # AWQ of MoE: CPU for now
else
  configs+=("awq-w4|--method awq --bits 4 --calib $CAL")
fi

record() {  # name what json
  echo "{\"model\": \"$MODEL\", \"config\": \"$1\", \"what\": \"$2\", \"result\": $3}" >> "$OUT/quality.jsonl"
}

evaluate() {  # name dir
  for text in gutenberg-heldout.txt wikitext2-test.raw; do
    local dev=$DEVICE
    QL eval ppl --model $2 --data $S/data/$text --device $dev --gpu-precision fp32 --engine fp32 --json > /tmp/qe.json 2> /tmp/qe.err \
      && record "$1" "ppl_all $text" "$(cat /tmp/qe.json)" || echo "quality: eval ppl $1 $text failed: $(tail -1 /tmp/qe.err)"
    [ "$1" = bf16 ] && continue
    QL eval kld --base $M --model $2 --data $S/data/$text --max-windows 64 --engine fp32 --json > /tmp/qk.json 2> /tmp/qk.err \
      && record "$1" "kld64 $text" "$(cat /tmp/qk.json)" || echo "quality: eval kld $1 $text failed: $(tail -1 /tmp/qk.err)"
  done
  echo "quality: $MODEL $1 $(grep "\"$1\"" "$OUT/quality.jsonl" | python3 -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l); x = r["result"]
    if len(r["what"].split()) < 2: continue  # the quantize timing
    print(r["what"].split()[0], r["what"].split()[1][:9], "%.4f" % (x.get("kld", x.get("ppl"))), end="; ")')"
}

evaluate bf16 $M
for c in "${configs[@]}"; do
  name=${c%%|*} args=${c#*|}
  dev=$DEVICE
  [[ $args == *"--device cpu"* ]] && dev=cpu && args=${args/--device cpu/}
  t=$(now_ms)
  QL quantize --model $M $args --group-size 128 --nsamples 128 --seqlen 512 --device $dev --out /tmp/qq-$name --force --json \
    > /tmp/qq.json 2> /tmp/qq.err || { echo "quality: quantize $name failed: $(tail -2 /tmp/qq.err)"; continue; }
  record "$name" "quantize" "{\"ms\": $(( $(now_ms) - t )), \"device\": \"$dev\"}"
  grep -E "experts, calibration tokens" /tmp/qq.err | sed "s/^/quality: $name: /"
  evaluate "$name" /tmp/qq-$name
done
