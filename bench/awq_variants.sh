#!/usr/bin/env bash
# AWQ w4g128 variants against RTN on one reference model: which part of AWQ (the scale search of each
# group, duo scaling, the clip search, how many tokens the searches see) moves the KL divergence from the
# bf16 model in domain (gutenberg-heldout) and out of it (wikitext-2). Each variant: quantize, then KL
# divergence over the first 64 windows of both texts (CPU, fp32 engine) and perplexity of all heldout windows.
# Variants are "name|ENV=… ENV=…|quantize flags" lines in VARIANTS (default: the list below).
# Run on the GPU machine by bench/device/run.sh (stage `awq M`), sourced (it uses run.sh's QL); on a CPU
# machine DEVICE=cpu. Writes OUT/awq_variants.jsonl.
# usage: source bench/awq_variants.sh SHARED_DIR OUT_DIR MODEL
set -uo pipefail
S=$1
OUT=$2
MODEL=$3
DEVICE=${DEVICE:-cuda}
M=$S/models/$MODEL
CAL=$S/data/gutenberg-calib.txt
: "${VARIANTS:=rtn||--method rtn
awq||
awq-no-clip||--awq-no-clip
awq-no-duo||--awq-no-duo-scaling
awq-search-all||--awq-search-tokens 65536}"
while IFS= read -r v; do
  [ -z "$v" ] && continue
  name=${v%%|*} rest=${v#*|} envs=${rest%%|*} flags=${rest#*|}
  meth=awq calib="--calib $CAL --nsamples 128 --seqlen 512 --seed 0 --device $DEVICE"
  [[ $flags == *"--method rtn"* ]] && meth="" calib=""
  t=$(date +%s%N)
  env $envs "${PRE[@]}" $D/bin/quantllm quantize --model $M ${meth:+--method $meth} $flags --bits 4 --group-size 128 $calib \
    --out /tmp/qv-$name --force --json > /tmp/qv.json 2> /tmp/qv-$name.err || { echo "awq: $name failed: $(tail -2 /tmp/qv-$name.err)"; continue; }
  ms=$(( ($(date +%s%N) - t) / 1000000 ))
  line="{\"model\": \"$MODEL\", \"variant\": \"$name\", \"env\": \"$envs\", \"flags\": \"$flags\", \"quantize_ms\": $ms"
  for text in gutenberg-heldout.txt wikitext2-test.raw; do
    QL eval kld --base $M --model /tmp/qv-$name --data $S/data/$text --max-windows 64 --engine fp32 --json > /tmp/qk.json 2>/dev/null
    line="$line, \"kld64 $text\": $(cat /tmp/qk.json)"
  done
  if [ "${PPL_ALL:-1}" = 1 ]; then  # all 1316 heldout windows: seconds on a GPU, long on 2 CPU cores
    QL eval ppl --model /tmp/qv-$name --data $S/data/gutenberg-heldout.txt --device $DEVICE --engine fp32 --json > /tmp/qp.json 2>/dev/null
    line="$line, \"ppl_all heldout\": $(cat /tmp/qp.json)"
  fi
  echo "$line}" >> "$OUT/awq_variants.jsonl"
  echo "awq: $MODEL $name $(tail -1 "$OUT/awq_variants.jsonl" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("kld heldout %.5f wikitext2 %.5f ppl heldout %s" % (r["kld64 gutenberg-heldout.txt"]["kld"], r["kld64 wikitext2-test.raw"]["kld"], r.get("ppl_all heldout", {}).get("ppl")))' 2>/dev/null)"
  tr "\r" "\n" < /tmp/qv-$name.err | grep -a "block [0-9]*/[0-9]*: awq" | tail -2 | cut -c1-400
done <<< "$VARIANTS"
