#!/usr/bin/env bash
# GPTQ and AWQ on one GPU, end to end (read → calibrate → quantize → write the checkpoint), on a
# Llama-2-7B-shaped checkpoint with random weights (quantllm synth), 4 bits, groups of 128, act-order
# (GPTQ), 128 calibration windows of 2048 tokens; and, in the same run on the same GPU, the GPTQ
# authors' procedure transcribed into PyTorch (bench/gptq_reference_torch.py) timed on the first
# blocks of the same checkpoint. Peak GPU memory is sampled with nvidia-smi every 100 ms (the whole
# process: CUDA context, cuBLAS workspaces and our buffers).
#
# Run on the GPU machine by bench/device/run.sh (stage `big`), which provides the binaries (QL) and
# the data; writes one JSON line per measurement to OUT/gpu_bench.jsonl. Sourced (it uses run.sh's QL).
# With BASE_BIN set (the CUDA build of an earlier commit, carried as .devcarry/bin/quantllm-base),
# each method runs with that binary too, on the same checkpoint and GPU, before ours: a before/after
# timing on one machine. With NO_REFERENCE=1 the PyTorch reference is skipped.
# usage: source bench/gpu_quantize.sh SHARED_DIR OUT_DIR
set -uo pipefail
S=$1
OUT=$2
M=/tmp/llama-2-7b-synth
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
gpu_mem() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; }
# Runs "$@" while sampling GPU memory; prints "WALL_MS PEAK_MIB" of the command (peak above the idle level).
measure() {
  local base=$(gpu_mem) f=/tmp/mem.$$
  (while true; do gpu_mem >> $f; sleep 0.1; done) & local mon=$!
  local t=$(now_ms)
  "$@"
  local rc=$?
  local wall=$(( $(now_ms) - t ))
  kill $mon 2>/dev/null; wait $mon 2>/dev/null
  local peak=$(sort -n $f | tail -1); rm -f $f
  echo "$wall $(( peak - base )) $rc"
}

t=$(now_ms)
QL synth --shape llama-2-7b --out $M --force --tokenizer-from $S/models/gutenberg-llama-33m > /dev/null || return 1
echo "bench: synth llama-2-7b $(( $(now_ms) - t )) ms, $(du -sh $M | cut -f1)"
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader

ours() {  # METHOD EXTRA_FLAGS...   (the binary: QL, or BASE_BIN when IMPL=base)
  local meth=$1; shift
  local run=QL; [ "${IMPL:-}" = base ] && run=QLBASE
  $run quantize --model $M --method $meth --bits 4 --group-size 128 "$@" --calib $S/data/gutenberg-calib.txt \
    --nsamples 128 --seqlen 2048 --device cuda --out /tmp/l7-$meth --force 2> /tmp/l7-$meth.err > /tmp/l7-$meth.out
}
reference() { python3 bench/gptq_reference_torch.py $M --blocks 2 > /tmp/ref.json 2> /tmp/ref.err; }

QLBASE() { "${PRE[@]}" ${BASE_BIN:-false} "$@"; }
impls="ours"; [ -n "${BASE_BIN:-}" ] && impls="base ours"
for meth in gptq awq; do
 for IMPL in $impls; do
  extra=""
  [ $meth = gptq ] && extra="--act-order"
  read wall peak rc < <(measure ours $meth $extra)
  grep -E "quantllm: GPU|wrote|written to" /tmp/l7-$meth.err /tmp/l7-$meth.out | sed 's/^/bench: /'
  [ "$rc" = 0 ] || tail -5 /tmp/l7-$meth.err
  echo "bench: $IMPL $meth: ${wall} ms end to end, peak GPU memory ${peak} MiB (rc $rc)"
  impl=quantllm; [ $IMPL = base ] && impl=quantllm-base
  echo "{\"impl\": \"$impl\", \"method\": \"$meth\", \"wall_ms\": $wall, \"peak_gpu_mib\": $peak, \"rc\": $rc, \"detail\": \"$(grep -h 'GPU time' /tmp/l7-$meth.err | sed 's/"//g')\"}" >> $OUT/gpu_bench.jsonl
  rm -rf /tmp/l7-$meth
 done
done
[ "${NO_REFERENCE:-}" = 1 ] && return 0

# The reference procedure on the first blocks (its per-block time × 32 blocks = its whole model).
read wall peak rc < <(measure reference)
cat /tmp/ref.json | sed 's/^/bench: /'
[ "$rc" = 0 ] || tail -5 /tmp/ref.err
tail -1 /tmp/ref.json | python3 -c "
import json, sys
r = json.loads(sys.stdin.read()); r['peak_gpu_mib_sampled'] = $peak; r['wall_ms_2_blocks'] = $wall
r['extrapolated_32_blocks_s'] = 32 * r['s_per_block']
print(json.dumps(r))" >> $OUT/gpu_bench.jsonl
tail -3 $OUT/gpu_bench.jsonl
