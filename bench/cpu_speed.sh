#!/usr/bin/env bash
# Prompt (pp512) and generation (tg128) speed of quantllm's CPU engine next to llama.cpp's own
# llama-bench on the same GGUF files, in one run, interleaved (every repetition runs every cell of
# both engines once, so load from other processes hits both alike). Writes OUT/results.jsonl and
# prints the Markdown table (bench/cpu_speed_table.py) that docs/benchmarks-cpu.md records.
#
#   bench/cpu_speed.sh [OUT]            OUT defaults to out/cpu-speed
#   THREADS=2 REPS=3 MODELS="llama synth" FORMATS="F16 Q8_0 Q4_K_M Q4_0 Q4_0_BF16 GPTQ" bench/cpu_speed.sh
#
# Models: "llama" = ../shared/models/gutenberg-llama-33m; "synth" = `quantllm synth --shape
# llama-3.2-1b` (random weights, the real shape: 1.24 B parameters, vocabulary 128256); "moe" =
# `quantllm synth --shape qwen3-30b-a3b --layers 4` (the real MoE layers — 128 experts of 768, top-8 — four
# of 48, 3.6 B parameters; llama.cpp's qwen3moe graph runs it, unlike the reference MoE model, whose first
# layer is dense). Formats: GGUF
# F16 / Q8_0 / Q4_K_M / Q4_0 written by `quantllm quantize --method gguf`; "GPTQ" = a GPTQ 4-bit,
# group-128 checkpoint (`--method rtn`: the same packed format as GPTQ's, without the calibration
# pass, which changes the weights' values and not the speed). llama.cpp has no GPTQ reader: its rows
# are left empty. Its peers: Q4_0 (llama.cpp's fastest 4-bit path) and "Q4_0_BF16" = Q4_0 with the
# token embeddings and output.weight kept in bf16 (--token-embedding-type / --output-tensor-type BF16),
# which holds what a GPTQ checkpoint holds: 4-bit linear layers, 16-bit embeddings and LM head.
# llama.cpp: scripts/install-llama-cpp.sh (node-llama-cpp) and scripts/build-llama-bench.sh
# (llama-bench built from the llama.cpp source node-llama-cpp ships, -march=native).
# BASE_BENCH=PATH (bench_cpu_engine built at an earlier commit) runs it too in every cell, after ours:
# the table then has a before/after column (the ratio ours / it, paired per repetition).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/cpu-speed}"
threads="${THREADS:-2}"
reps="${REPS:-3}"
models="${MODELS:-llama synth}"
formats="${FORMATS:-F16 Q8_0 Q4_K_M Q4_0 Q4_0_BF16 GPTQ}"
mkdir -p "$out"

cmake --build build -j"$(nproc)" --target quantllm bench_cpu_engine >/dev/null
q=build/quantllm
bash scripts/install-llama-cpp.sh >&2
lb=$(bash scripts/build-llama-bench.sh | tail -1)

model_dir() {  # the Hugging Face directory of a model name
  case "$1" in
    llama) echo ../shared/models/gutenberg-llama-33m ;;
    synth)
      [ -d "$out/synth-1b" ] || $q synth --shape llama-3.2-1b --out "$out/synth-1b" --seed 0 >&2
      echo "$out/synth-1b" ;;
    moe)
      [ -d "$out/synth-30b-a3b-4" ] || $q synth --shape qwen3-30b-a3b --layers 4 --out "$out/synth-30b-a3b-4" --seed 0 >&2
      echo "$out/synth-30b-a3b-4" ;;
    *) echo "cpu_speed: unknown model '$1'" >&2; exit 1 ;;
  esac
}
file_of() {  # model, format → the file (made once)
  local dir; dir=$(model_dir "$1")
  if [ "$2" = GPTQ ]; then
    local f="$out/$1-gptq-w4g128"
    [ -d "$f" ] || $q quantize --model "$dir" --method rtn --bits 4 --group-size 128 --out "$f" >&2
  elif [ "$2" = Q4_0_BF16 ]; then
    local f="$out/$1-$2.gguf"
    [ -f "$f" ] || $q quantize --model "$dir" --method gguf --type Q4_0 --token-embedding-type BF16 \
      --output-tensor-type BF16 --out "$f" >&2
  else
    local f="$out/$1-$2.gguf"
    [ -f "$f" ] || $q quantize --model "$dir" --method gguf --type "$2" --out "$f" >&2
  fi
  echo "$f"
}

# CPU time used by other processes over 2 s, in percent of all cores. llama.cpp's threads spin while
# they wait for each other, so a busy machine slows it far more than quantllm (whose threads sleep):
# each measurement waits (up to QUIET_WAIT seconds, default 600) until others use under 10%.
others_busy() {
  local a b
  read -r -a a </proc/stat; sleep 2; read -r -a b </proc/stat
  local busy=$(( (b[1]+b[2]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[6]+a[7]+a[8]) ))
  local idle=$(( (b[4]+b[5]) - (a[4]+a[5]) ))
  echo $(( 100 * busy / (busy + idle + 1) ))
}
wait_quiet() {
  local deadline=$((SECONDS + ${QUIET_WAIT:-600})) pct
  while :; do
    pct=$(others_busy)
    if [ "$pct" -lt 10 ] || [ $SECONDS -ge $deadline ]; then echo "$pct"; return; fi
    sleep 15
  done
}

res="$out/results.jsonl"
: >"$res"
for m in $models; do for f in $formats; do file_of "$m" "$f" >/dev/null; done; done
echo "cpu_speed: $(nproc) cores, $reps repetitions, $threads threads" >&2
for rep in $(seq 1 "$reps"); do
  for m in $models; do
    for f in $formats; do
      file=$(file_of "$m" "$f")
      load=$(wait_quiet)
      ours=$(build/bench/bench_cpu_engine --model "$file" --threads "$threads" --reps 1)
      echo "{\"rep\":$rep,\"model\":\"$m\",\"format\":\"$f\",\"engine\":\"quantllm\",\"load\":$load,\"result\":$ours}" >>"$res"
      if [ -n "${BASE_BENCH:-}" ]; then
        load=$(wait_quiet)
        before=$("$BASE_BENCH" --model "$file" --threads "$threads" --reps 1)
        echo "{\"rep\":$rep,\"model\":\"$m\",\"format\":\"$f\",\"engine\":\"quantllm-base\",\"load\":$load,\"result\":$before}" >>"$res"
      fi
      if [ "$f" != GPTQ ]; then
        load=$(wait_quiet)
        theirs=$("$lb" -m "$file" -t "$threads" -p 512 -n 128 -r 1 -o json 2>/dev/null | tr -d '\n')
        echo "{\"rep\":$rep,\"model\":\"$m\",\"format\":\"$f\",\"engine\":\"llama.cpp\",\"load\":$load,\"result\":$theirs}" >>"$res"
      fi
      echo "cpu_speed: rep $rep $m $f done (others busy before: $load%)" >&2
    done
  done
done
python3 bench/cpu_speed_table.py "$res"
