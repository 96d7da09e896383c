#!/usr/bin/env bash
# Byte-identity check for refactors: runs the same matrix of quantize / imatrix / eval / generate commands
# with two builds of quantllm and compares every file written (sha256) and every number printed (the
# --json output with its timings removed). Used for issue "One decoder block, described once": the
# redesign must not change a single output byte.
#
#   scripts/check-identical.sh BEFORE AFTER [WORKDIR]
#
# BEFORE / AFTER: a quantllm binary, or a git revision (built into WORKDIR/build-REV with the CPU backend).
# WORKDIR (default /tmp/quantllm-identical) keeps each side's outputs; a side whose outputs exist is not
# rerun unless FORCE=1. QUICK=1 runs a smaller matrix (one model, fewer types). Exit status 0 when every
# output matches; otherwise the differing outputs are listed.
#
# The matrix, on both reference models (gutenberg-llama-33m, gutenberg-opt-28m):
#   imatrix (2 and 1 threads); GGUF: every mix without and with that imatrix (2 threads), a few at 1 thread;
#   RTN w4/w3; GPTQ w4 act-order (2 and 1 threads), w3, static groups, symmetric without true-sequential,
#   gptq_v2, per-channel w8, --mse; AWQ w4 (2 and 1 threads); GPTQ and GGUF with --awq-scale;
#   eval ppl (both engines) of the base and of outputs, eval kld, greedy generation.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
before=${1:?usage: check-identical.sh BEFORE AFTER [WORKDIR]}
after=${2:?usage: check-identical.sh BEFORE AFTER [WORKDIR]}
work=${3:-/tmp/quantllm-identical}
shared=$(cd "$root/../shared" && pwd)
data=$shared/data
mkdir -p "$work"

# A binary path as it is, or a revision built once into WORKDIR/build-REV.
binary_of() {
  local spec=$1
  if [ -x "$spec" ] && [ -f "$spec" ]; then echo "$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")"; return; fi
  local rev
  rev=$(git rev-parse --short "$spec")
  local src=$work/src-$rev bld=$work/build-$rev
  if [ ! -x "$bld/quantllm" ]; then
    rm -rf "$src"
    mkdir -p "$src"
    git archive "$rev" | tar -x -C "$src"
    cmake -S "$src" -B "$bld" -DCMAKE_BUILD_TYPE=Release -DQUANTLLM_CUDA=OFF -DQUANTLLM_TESTS=OFF \
      -DQUANTLLM_BENCH=OFF -DQUANTLLM_PYTHON=OFF >/dev/null
    cmake --build "$bld" -j"$(nproc)" --target quantllm >/dev/null
  fi
  echo "$bld/quantllm"
}

# Runs the matrix with binary $1 into directory $2.
run_side() {
  local q=$1 out=$2
  rm -rf "$out"
  mkdir -p "$out/files" "$out/json"
  local models=(gutenberg-llama-33m gutenberg-opt-28m)
  local mixes=(F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q2_K_S Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M
               Q6_K IQ4_NL IQ4_XS)
  if [ "${QUICK:-0}" = 1 ]; then models=(gutenberg-llama-33m); mixes=(Q8_0 Q4_K_M Q2_K IQ4_XS); fi
  local calib=(--calib "$data/gutenberg-calib.txt" --nsamples 24 --seqlen 512 --seed 3)
  local f=$out/files j=$out/json
  # json NAME CMD...: the command's --json object (its timings are dropped when comparing).
  json() {
    local name=$1; shift
    "$@" --json 2>/dev/null > "$j/$name.json" || true
  }
  for model in "${models[@]}"; do
    local m=$shared/models/$model s=${model%%-*}
    s=${model#gutenberg-}
    echo "== $model" >&2
    $q imatrix --model "$m" --data "$data/gutenberg-calib.txt" --chunks 12 --out "$f/$s-imatrix.gguf" --threads 2 >/dev/null
    $q imatrix --model "$m" --data "$data/gutenberg-calib.txt" --chunks 12 --out "$f/$s-imatrix-t1.gguf" --threads 1 >/dev/null
    for mix in "${mixes[@]}"; do
      $q quantize --model "$m" --method gguf --type "$mix" --out "$f/$s-$mix.gguf" --threads 2 >/dev/null
      $q quantize --model "$m" --method gguf --type "$mix" --imatrix "$f/$s-imatrix.gguf" --out "$f/$s-$mix-imat.gguf" \
        --threads 2 >/dev/null
    done
    for mix in Q4_K_M Q2_K IQ4_XS; do
      $q quantize --model "$m" --method gguf --type "$mix" --imatrix "$f/$s-imatrix.gguf" --out "$f/$s-$mix-imat-t1.gguf" \
        --threads 1 >/dev/null
    done
    $q quantize --model "$m" --method rtn --bits 4 --out "$f/$s-rtn-w4" --threads 2 >/dev/null
    $q quantize --model "$m" --method rtn --bits 3 --sym --out "$f/$s-rtn-w3-sym" --threads 2 >/dev/null
    json "$s-gptq-w4-act" $q quantize --model "$m" --method gptq --bits 4 --act-order "${calib[@]}" --out "$f/$s-gptq-w4-act" --threads 2
    $q quantize --model "$m" --method gptq --bits 4 --act-order "${calib[@]}" --out "$f/$s-gptq-w4-act-t1" --threads 1 >/dev/null 2>&1
    $q quantize --model "$m" --method gptq --bits 3 "${calib[@]}" --out "$f/$s-gptq-w3" --threads 2 >/dev/null 2>&1
    $q quantize --model "$m" --method gptq --bits 4 --act-order --static-groups "${calib[@]}" --out "$f/$s-gptq-w4-static" \
      --threads 2 >/dev/null 2>&1
    $q quantize --model "$m" --method gptq --bits 4 --sym --no-true-sequential "${calib[@]}" --out "$f/$s-gptq-w4-sym-nts" \
      --threads 2 >/dev/null 2>&1
    $q quantize --model "$m" --method gptq --bits 4 --format gptq_v2 "${calib[@]}" --out "$f/$s-gptq-w4-v2" --threads 2 >/dev/null 2>&1
    $q quantize --model "$m" --method gptq --bits 8 --group-size -1 "${calib[@]}" --out "$f/$s-gptq-w8-pc" --threads 2 >/dev/null 2>&1
    $q quantize --model "$m" --method gptq --bits 4 --mse "${calib[@]}" --out "$f/$s-gptq-w4-mse" --threads 2 >/dev/null 2>&1
    json "$s-awq-w4" $q quantize --model "$m" --method awq --bits 4 "${calib[@]}" --out "$f/$s-awq-w4" --threads 2
    $q quantize --model "$m" --method awq --bits 4 "${calib[@]}" --out "$f/$s-awq-w4-t1" --threads 1 >/dev/null 2>&1
    $q quantize --model "$m" --method gptq --bits 4 --awq-scale "${calib[@]}" --out "$f/$s-gptq-awqscale" --threads 2 >/dev/null 2>&1
    $q quantize --model "$m" --method gguf --type Q4_K_M --awq-scale "${calib[@]}" --out "$f/$s-Q4_K_M-awqscale.gguf" \
      --threads 2 >/dev/null 2>&1
    local text=$data/wikitext2-test.raw
    for eng in quant fp32; do
      json "$s-ppl-base-$eng" $q eval ppl --model "$m" --data "$text" --max-windows 4 --engine $eng --threads 2
      json "$s-ppl-gptq-$eng" $q eval ppl --model "$f/$s-gptq-w4-act" --data "$text" --max-windows 4 --engine $eng --threads 2
      json "$s-ppl-awq-$eng" $q eval ppl --model "$f/$s-awq-w4" --data "$text" --max-windows 4 --engine $eng --threads 2
      json "$s-ppl-q4km-$eng" $q eval ppl --model "$f/$s-Q4_K_M-imat.gguf" --data "$text" --max-windows 4 --engine $eng --threads 2
    done
    json "$s-kld-gptq" $q eval kld --base "$m" --model "$f/$s-gptq-w4-act" --data "$text" --max-windows 3 --no-cache --threads 2
    json "$s-gen-q4km" $q generate --model "$f/$s-Q4_K_M.gguf" --prompt "It was a dark and stormy night" --max-tokens 24 --threads 2
    json "$s-gen-base" $q generate --model "$m" --prompt "It was a dark and stormy night" --max-tokens 24 --threads 1 --engine fp32
  done
  # Every file written, by relative path.
  (cd "$out/files" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$out/files.sha256"
  (cd "$out/json" && sha256sum *.json) > "$out/json.sha256"
}

# The printed results of a side without what depends on time (seconds, rates) or on the output path.
normalized_json() {
  python3 - "$1" <<'PY'
import json, os, sys
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items()
                if k not in ("seconds", "out", "cached") and not k.endswith("per_second")}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    text = open(os.path.join(d, name)).read()
    try:
        print(name, json.dumps(strip(json.loads(text)), sort_keys=True))
    except ValueError:
        print(name, "not JSON:", text[:200].replace("\n", " "))
PY
}

qb=$(binary_of "$before")
qa=$(binary_of "$after")
for side in before after; do
  bin=$qb; [ $side = after ] && bin=$qa
  if [ "${FORCE:-0}" = 1 ] || [ ! -f "$work/$side/done" ] || [ "$(cat "$work/$side/done")" != "$bin $(sha256sum < "$bin" | cut -c1-16) ${QUICK:-0}" ]; then
    echo "check-identical: running the matrix with $bin ($side)" >&2
    t0=$(date +%s)
    run_side "$bin" "$work/$side"
    echo "$bin $(sha256sum < "$bin" | cut -c1-16) ${QUICK:-0}" > "$work/$side/done"
    echo "check-identical: $side took $(( $(date +%s) - t0 ))s" >&2
  fi
done
status=0
if ! diff "$work/before/files.sha256" "$work/after/files.sha256" > "$work/files.diff"; then
  status=1
  echo "check-identical: files differ:"
  grep '^[<>]' "$work/files.diff" | awk '{print $1, $3}' | sort -k2 | uniq
fi
if ! diff <(normalized_json "$work/before/json") <(normalized_json "$work/after/json") > "$work/json.diff"; then
  status=1
  echo "check-identical: printed results differ:"
  grep '^[<>]' "$work/json.diff" | cut -c1-200
fi
n_files=$(wc -l < "$work/after/files.sha256")
n_json=$(ls "$work/after/json" | wc -l)
if [ $status = 0 ]; then
  echo "check-identical: all $n_files files and $n_json printed results are identical"
fi
exit $status
