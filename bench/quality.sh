#!/usr/bin/env bash
# Quality benchmark: quantizes one reference model with every method and measures perplexity on
# wikitext2 and gutenberg-heldout (all windows unless MAX_WINDOWS is set) and KL divergence against
# the full-precision model. Writes one JSON object per line to OUT/quality-MODEL.jsonl.
#   bench/quality.sh MODEL_DIR DATA_DIR OUT [jobs...]
# jobs: fp32 rtn gptq awq gguf (default: all). Env: QUANTLLM (binary), THREADS, MAX_WINDOWS, KLD_WINDOWS.
set -euo pipefail
model=$1 data=$2 out=$3
shift 3
jobs=${*:-fp32 rtn gptq awq gguf}
bin=${QUANTLLM:-build/quantllm}
threads=${THREADS:-0}
maxw=${MAX_WINDOWS:-0}
kldw=${KLD_WINDOWS:-64}
name=$(basename "$model")
work=$out/work-$name
mkdir -p "$work"
log=$out/quality-$name-${JOBTAG:-all}.jsonl
read -r -a texts <<<"${TEXTS:-wikitext2-test.raw gutenberg-heldout.txt}"

emit() { echo "$1" >>"$log"; echo "$1"; }

ppl() {  # label path bytes bpw seconds
  local label=$1 path=$2 bytes=$3 bpw=$4 secs=$5
  for t in "${texts[@]}"; do
    r=$("$bin" eval ppl --model "$path" --data "$data/$t" --max-windows "$maxw" --threads "$threads" --json 2>/dev/null)
    emit "{\"model\":\"$name\",\"variant\":\"$label\",\"text\":\"$t\",\"bytes\":$bytes,\"bpw\":$bpw,\"quantize_seconds\":$secs,\"ppl\":$r}"
  done
  if [ "$label" != fp32 ]; then
    r=$("$bin" eval kld --base "$model" --model "$path" --data "$data/wikitext2-test.raw" --max-windows "$kldw" --threads "$threads" --json 2>/dev/null)
    emit "{\"model\":\"$name\",\"variant\":\"$label\",\"text\":\"wikitext2-test.raw\",\"kld_windows\":$kldw,\"kld\":$r}"
  fi
}

quantize() {  # label args...
  local label=$1
  shift
  local q
  q=$("$bin" quantize --model "$model" --threads "$threads" --force --json "$@" 2>"$work/$label.log")
  emit "{\"model\":\"$name\",\"variant\":\"$label\",\"quantize\":$q}"
  local path bytes bpw secs
  path=$(echo "$q" | python3 -c 'import json,sys; print(json.load(sys.stdin)["out"])')
  bytes=$(echo "$q" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
  bpw=$(echo "$q" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bits_per_weight"])')
  secs=$(echo "$q" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
  ppl "$label" "$path" "$bytes" "$bpw" "$secs"
}

calib=(--calib "$data/gutenberg-calib.txt" --nsamples 128 --seqlen 512 --seed 0)
for job in $jobs; do
  case $job in
    fp32) ppl fp32 "$model" 0 16 0 ;;
    rtn)
      quantize rtn_w4g128 --method rtn --bits 4 --group-size 128 --out "$work/rtn4"
      quantize rtn_w3g128 --method rtn --bits 3 --group-size 128 --out "$work/rtn3" ;;
    gptq4) quantize gptq_w4g128_actorder --method gptq --bits 4 --group-size 128 --act-order "${calib[@]}" --out "$work/gptq4" ;;
    gptq3) quantize gptq_w3g128_actorder --method gptq --bits 3 --group-size 128 --act-order "${calib[@]}" --out "$work/gptq3" ;;
    awq4) quantize awq_w4g128 --method awq --bits 4 --group-size 128 "${calib[@]}" --out "$work/awq4" ;;
    awq3) quantize awq_w3g128 --method awq --bits 3 --group-size 128 "${calib[@]}" --out "$work/awq3" ;;
    gptq)
      quantize gptq_w4g128_actorder --method gptq --bits 4 --group-size 128 --act-order "${calib[@]}" --out "$work/gptq4"
      quantize gptq_w3g128_actorder --method gptq --bits 3 --group-size 128 --act-order "${calib[@]}" --out "$work/gptq3" ;;
    awq)
      quantize awq_w4g128 --method awq --bits 4 --group-size 128 "${calib[@]}" --out "$work/awq4"
      quantize awq_w3g128 --method awq --bits 3 --group-size 128 "${calib[@]}" --out "$work/awq3" ;;
    gguf)
      [ "${GGUF_IMATRIX:-1}" = 1 ] && "$bin" imatrix --model "$model" --data "$data/gutenberg-calib.txt" --out "$work/imatrix.gguf" --threads "$threads" --force >/dev/null 2>&1
      for t in ${GGUF_TYPES:-Q8_0 Q6_K Q5_K_M Q4_K_M IQ4_XS Q3_K_M Q2_K}; do
        quantize "gguf_$t" --method gguf --type "$t" --out "$work/$t.gguf"
      done
      if [ "${GGUF_IMATRIX:-1}" = 1 ]; then
        quantize gguf_Q4_K_M_imatrix --method gguf --type Q4_K_M --imatrix "$work/imatrix.gguf" --out "$work/Q4_K_M-imat.gguf"
      fi ;;
    *) echo "unknown job $job" >&2; exit 1 ;;
  esac
done
