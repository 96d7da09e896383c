#!/usr/bin/env bash
# On the GPU machine (through the device tool, with .devcarry from bench/device/pack.py carried):
# unpacks the build and data, then runs the named stages, writing logs and results under $OUT.
#   tests     test_cuda (GPU against CPU; CUDA_TESTS: a gtest filter), the backend suite on the GPU (test_methods
#             Devices/*cuda*: against the naive forward), then the kernel tests again under compute-sanitizer
#             (QUICK=1: test_cuda only)
#   ref M     GPTQ w4/w3 and AWQ w4 on reference model M (reference settings) on the GPU, fp32 and tf32
#             products, each evaluated on the GPU (all windows, wikitext-2 and heldout); the base model too
#   smoke     a 2-block Llama-2-7B-shaped checkpoint: GPTQ and AWQ with 128 × 2048 calibration tokens
#   big       bench/gpu_quantize.sh on a full Llama-2-7B-shaped checkpoint (writes $OUT/gpu_bench.jsonl)
#   quality M bench/arch2026_quality.sh on reference model M (writes $OUT/quality.jsonl)
#   sweep M   GPTQ w3/w4 act-order on model M under varied seeds, damping and products (fp32/tf32), each
#             evaluated on all heldout windows on the GPU: how far GPTQ's outcome moves (writes $OUT/sweep.jsonl)
#   moe L     a Qwen3-30B-A3B-shaped checkpoint (synth, L layers, 128 experts top-8; SYNTH_SOURCE=1: the
#             synth: source, no checkpoint on disk): GPTQ w4g128 act-order
#             with 128 × 2048 calibration tokens on the GPU, time, peak GPU memory and host RSS, the tokens
#             per expert (writes $OUT/moe.jsonl and the run's stderr)
#   shape SHAPE L METHOD   issue 19: a synth: source of SHAPE (L layers, 0 = all; nothing on disk but the
#             output), METHOD gptq (w4g128 act-order) or awq (w4g128), 128 × 2048 calibration tokens on the GPU,
#             end to end: wall time, peak GPU memory (nvidia-smi, every 200 ms), peak host RSS (time -v), output
#             size; a killed run (KILL_AFTER=S seconds) is continued by the next call with RESUME=1
#             (writes $OUT/shape.jsonl and the run's stderr)
#   shaperef SHAPE        the GPTQ authors' procedure (bench/gptq_reference_torch.py) on 2 blocks of an
#             on-disk synth checkpoint of SHAPE, extrapolated to all its blocks ($OUT/shape.jsonl)
#   awq M     bench/awq_variants.sh on reference model M: AWQ's parts switched off one at a time, KL divergence
#             in and out of domain against RTN (writes $OUT/awq_variants.jsonl; VARIANTS from the environment)
#   arch M    a 2026 reference model M: transformers' float64 goldens (tests/data/arch2026/make_golden.py),
#             eval of the first 16 windows on the CPU and the GPU, GPTQ w4 act-order on the GPU (MoE: routed
#             and all-experts) evaluated on heldout (all windows) with the GPU; writes $OUT/arch.jsonl
# usage: bench/device/run.sh STAGE [ARG] [STAGE [ARG] ...]
set -uo pipefail
OUT=${OUT:-/tmp/out}
D=/tmp/ql
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
t0=$(date +%s)
[ -x $D/bin/quantllm ] || python3 bench/device/unpack.py .devcarry $D
export QUANTLLM_SHARED_DIR=$D/share
S=$D/share
# CUDA's libraries: the toolkit's, else the ones pip installed with PyTorch.
CUDALIB=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, q, "lib") for p in nvidia.__path__ for q in os.listdir(p)))' 2>/dev/null); do
  [ -d "$d" ] && CUDALIB="$CUDALIB:$d"
done
DRIVERLIB=/usr/local/nvidia/lib64:/usr/local/nvidia/lib:/usr/lib/x86_64-linux-gnu
# PRE: how our binaries are started (the machine's glibc when it is new enough, else the carried one).
if LD_LIBRARY_PATH=$D/lib$CUDALIB $D/bin/quantllm --help >/dev/null 2>&1; then
  PRE=(env LD_LIBRARY_PATH=$D/lib$CUDALIB:$DRIVERLIB)
  SYSTEM_GLIBC=1
  echo "run: binaries run on the machine's glibc"
else
  PRE=($D/lib/glibc/ld-linux-x86-64.so.2 --library-path $D/lib/glibc:$D/lib$CUDALIB:$DRIVERLIB)
  SYSTEM_GLIBC=0
  echo "run: binaries run on the carried glibc"
fi
QL() { "${PRE[@]}" $D/bin/quantllm "$@"; }
QLT() { local t=$1; shift; timeout $t "${PRE[@]}" $D/bin/quantllm "$@"; }  # with a time limit (s)
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
echo "run: setup $(( $(date +%s) - t0 ))s"

stage_tests() {
  timeout 200 "${PRE[@]}" $D/bin/test_cuda --gtest_filter="${CUDA_TESTS:-*}" > "$OUT/test_cuda.log" 2>&1
  echo "run: test_cuda rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$OUT/test_cuda.log" | tr '\n' ' ')"
  grep -E "FAILED|Failure|rror" "$OUT/test_cuda.log" | head -30
  [ "${QUICK:-0}" = 1 ] && return  # test_cuda only
  timeout 120 "${PRE[@]}" $D/bin/test_methods --gtest_filter='Devices/*cuda*' > "$OUT/test_backend.log" 2>&1
  echo "run: backend suite on cuda rc=$? $(grep -E '^\[  (PASSED|FAILED|SKIPPED)' "$OUT/test_backend.log" | tr '\n' ' ')"
  grep -E "FAILED|Failure" -A4 "$OUT/test_backend.log" | head -30
  local cs=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
  if [ -n "$cs" ] && [ $SYSTEM_GLIBC = 1 ]; then
    timeout 120 "${PRE[@]}" $cs --tool memcheck --print-limit 20 $D/bin/test_cuda \
      --gtest_filter='Gpu.Rtn*:Gpu.AwqPseudo*:Gpu.AwqClip*:Gpu.GptqLayer*:Gpu.Hessian*:Gpu.BlockForward*' > "$OUT/sanitizer.log" 2>&1
    echo "run: memcheck rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)"
  fi
}

# ref MODEL: the reference settings of reference.json's peer_baselines, on the GPU.
stage_ref() {
  local m=$1 mdir=$S/models/$1
  for text in wikitext2-test.raw gutenberg-heldout.txt; do
    echo "{\"model\": \"$m\", \"config\": \"base\", \"text\": \"$text\", \"eval\": $(QLT 60 eval ppl --model $mdir --data $S/data/$text --device cuda --json 2>/dev/null)}" >> "$OUT/results.jsonl"
  done
  for prec in fp32 tf32; do
    for cfg in "gptq 4" "gptq 3" "awq 4"; do
      set -- $cfg
      local meth=$1 bits=$2 dir=/tmp/q-$m-$1-w$2-$prec extra=""
      [ "$meth" = gptq ] && extra="--act-order --damp 0.01"
      local t=$(now_ms)
      QLT 120 quantize --model $mdir --method $meth --bits $bits --group-size 128 $extra --calib $S/data/gutenberg-calib.txt \
        --nsamples 128 --seqlen 512 --seed 0 --device cuda --gpu-precision $prec --out $dir --force --json > /tmp/q.json 2> /tmp/q.err
      local rc=$? secs=$(( ($(now_ms) - t) / 1000 ))
      [ $rc = 0 ] || { echo "run: quantize $m $cfg $prec failed:"; tail -5 /tmp/q.err; continue; }
      grep -E "GPU" /tmp/q.err | head -3
      for text in wikitext2-test.raw gutenberg-heldout.txt; do
        echo "{\"model\": \"$m\", \"config\": \"$meth w$bits $prec\", \"text\": \"$text\", \"quantize_s\": $secs, \"eval\": $(QLT 60 eval ppl --model $dir --data $S/data/$text --device cuda --json 2>/dev/null)}" >> "$OUT/results.jsonl"
      done
      python3 - "$m $cfg $prec" /tmp/q.json <<'PY'
import json, sys
j = json.load(open(sys.argv[2])); L = j.get("layers", {})
obj = [v["relative_error"] for v in L.values()]; rtn = [v["rtn_relative_error"] for v in L.values() if v.get("rtn_relative_error")]
print(f"run: {sys.argv[1]}: {j['seconds']:.1f}s, mean objective {sum(obj)/len(obj):.4e}" + (f" (rtn {sum(rtn)/len(rtn):.4e})" if rtn else ""))
PY
    done
  done
  # One GPU-quantized checkpoint comes back whole, to be evaluated by the CPU engine too.
  [ -d /tmp/q-$m-gptq-w4-fp32 ] && tar -C /tmp -cf - q-$m-gptq-w4-fp32 | split -b 15M - "$OUT/ckpt-$m-gptq-w4-fp32.tar.part-"
  tail -n 20 "$OUT/results.jsonl" | python3 -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l); print("run:", r["model"], r["config"], r["text"][:9], "ppl %.4f" % r["eval"]["ppl"])'
}

stage_smoke() {
  rm -rf /tmp/syn2
  QL synth --shape llama-2-7b --layers 2 --out /tmp/syn2 --tokenizer-from $S/models/gutenberg-llama-33m > /dev/null
  for meth in gptq awq; do
    local extra=""; [ "$meth" = gptq ] && extra="--act-order"
    local t=$(now_ms)
    QLT 150 quantize --model /tmp/syn2 --method $meth --bits 4 --group-size 128 $extra --calib $S/data/gutenberg-calib.txt \
      --nsamples 128 --seqlen 2048 --device cuda --out /tmp/syn2-$meth --force > /tmp/s.out 2> /tmp/s.err
    echo "run: smoke $meth rc=$? $(( $(now_ms) - t )) ms"
    grep -E "GPU|wrote|error|Error" /tmp/s.err /tmp/s.out | tail -4
  done
}

stage_big() { ( source bench/gpu_quantize.sh "$S" "$OUT" ); }

stage_moe() {
  local L=$1 m=/tmp/qwen3-30b-a3b-$1
  if [ "${SYNTH_SOURCE:-0}" = 1 ]; then  # no checkpoint on disk: the synth: source generates each tensor
    m="synth:qwen3-30b-a3b,layers=$L,tokenizer=$S/models/gutenberg-llama-33m"
  else
    [ -d $m ] || QL synth --shape qwen3-30b-a3b --layers $L --out $m --tokenizer-from $S/models/gutenberg-llama-33m --threads 16 2>&1 | tail -1
  fi
  ( peak=0; while true; do u=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1); \
      [ "$u" -gt "$peak" ] && peak=$u && echo $peak > /tmp/gpu_peak; sleep 0.2; done ) &
  local mon=$!
  local t=$(now_ms)
  /usr/bin/time -v "${PRE[@]}" $D/bin/quantllm quantize --model $m --method gptq --bits 4 --group-size 128 --act-order \
    --calib $S/data/gutenberg-calib.txt --nsamples 128 --seqlen 2048 --device cuda --out /tmp/moe-out --force --json \
    > /tmp/moe.json 2> "$OUT/moe-$L.err"
  local rc=$? ms=$(( $(now_ms) - t ))
  kill $mon 2>/dev/null
  local rss=$(grep "Maximum resident" "$OUT/moe-$L.err" | awk '{print $NF}')
  echo "{\"shape\": \"qwen3-30b-a3b\", \"layers\": $L, \"synth_source\": ${SYNTH_SOURCE:-0}, \"rc\": $rc, \"ms\": $ms, \"gpu_peak_mib\": $(cat /tmp/gpu_peak), \"host_rss_kib\": ${rss:-0}}" >> "$OUT/moe.jsonl"
  echo "run: moe $L layers rc=$rc ${ms} ms, GPU peak $(cat /tmp/gpu_peak) MiB, host RSS ${rss} KiB"
  grep -E "GPU|expert layers|wrote|error" "$OUT/moe-$L.err" | grep -v "^  model" | tail -8
}

stage_shape() {
  local shape=$1 L=$2 meth=$3
  local m="synth:$shape,tokenizer=$S/models/gutenberg-llama-33m"
  [ "$L" != 0 ] && m="synth:$shape,layers=$L,tokenizer=$S/models/gutenberg-llama-33m"
  local extra="" resume="--force"
  [ "$meth" = gptq ] && extra="--act-order"
  [ "${RESUME:-0}" = 1 ] && resume="--resume"
  local err="$OUT/shape-$shape-$L-$meth-${PREC:-tf32}.err"
  ( peak=0; while true; do u=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1); \
      [ "$u" -gt "$peak" ] && peak=$u && echo $peak > /tmp/gpu_peak; sleep 0.2; done ) &
  local mon=$!
  local t=$(now_ms)
  timeout -s KILL ${KILL_AFTER:-100000} /usr/bin/time -v "${PRE[@]}" $D/bin/quantllm quantize --model $m --method $meth \
    --bits 4 --group-size 128 $extra --calib $S/data/gutenberg-calib.txt --nsamples 128 --seqlen 2048 --device cuda \
    --gpu-precision ${PREC:-tf32} --out /tmp/shape-out $resume --json > /tmp/shape.json 2> "$err"
  local rc=$? ms=$(( $(now_ms) - t ))
  kill $mon 2>/dev/null
  local rss=$(grep "Maximum resident" "$err" | awk '{print $NF}')
  local bytes=$(du -sb /tmp/shape-out 2>/dev/null | cut -f1)
  local blocks=$(grep -o '"blocks_done":[0-9]*' /tmp/shape-out.resume/*-state.json 2>/dev/null | tail -1)
  echo "{\"shape\": \"$shape\", \"layers\": $L, \"method\": \"$meth\", \"precision\": \"${PREC:-tf32}\", \"resumed\": ${RESUME:-0}, \"rc\": $rc, \"ms\": $ms, \"gpu_peak_mib\": $(cat /tmp/gpu_peak), \"host_rss_kib\": ${rss:-0}, \"out_bytes\": ${bytes:-0}, \"killed_at\": \"${blocks}\"}" >> "$OUT/shape.jsonl"
  echo "run: shape $shape $L $meth ${PREC:-tf32} rc=$rc ${ms} ms, GPU peak $(cat /tmp/gpu_peak) MiB, host RSS ${rss} KiB, out ${bytes} B ${blocks}"
  grep -E "quantllm: GPU|expert|written to|wrote|error|mean" "$err" | grep -v "^  model" | tail -8
  [ $rc = 0 ] && python3 -c "
import json; j = json.load(open('/tmp/shape.json')); L = j['layers'].values()
e = [v['relative_error'] for v in L]; r = [v['rtn_relative_error'] for v in L if v.get('rtn_relative_error')]
print('run: mean objective %.5e (rtn %.5e) over %d layers, peak_rss_bytes %d' % (sum(e)/len(e), sum(r)/max(1,len(r)), len(e), j.get('peak_rss_bytes', 0)))"
  [ $rc = 0 ] && rm -rf /tmp/shape-out
  rm -f /tmp/gpu_peak
}

stage_shaperef() {
  local shape=$1 m=/tmp/ref-$1
  [ -d $m ] || QL synth --shape $shape --layers 2 --out $m --tokenizer-from $S/models/gutenberg-llama-33m --threads 16 > /dev/null
  local t=$(now_ms)
  python3 bench/gptq_reference_torch.py $m --blocks 2 > /tmp/ref.json 2> /tmp/ref.err
  local rc=$? ms=$(( $(now_ms) - t ))
  [ $rc = 0 ] || tail -5 /tmp/ref.err
  tail -1 /tmp/ref.json | python3 -c "
import json, sys
r = json.loads(sys.stdin.read()); r['shape'] = '$shape'; r['wall_ms_2_blocks'] = $ms
layers = {'llama-3-8b': 32, 'llama-3-70b': 80, 'llama-2-7b': 32}['$shape']
r['extrapolated_all_blocks_s'] = layers * r['s_per_block']
print(json.dumps(r))" | tee -a "$OUT/shape.jsonl" | sed 's/^/run: shaperef /'
}

stage_sweep() {
  local m=$1 mdir=$S/models/$1
  for v in "w3 seed0 tf32|--bits 3 --seed 0" "w3 seed0 fp32|--bits 3 --seed 0 --gpu-precision fp32" \
           "w3 seed1|--bits 3 --seed 1" "w3 seed2|--bits 3 --seed 2" "w3 seed3|--bits 3 --seed 3" \
           "w3 damp0.1|--bits 3 --damp 0.1" "w3 no-act-order|--bits 3 --no-act-order-placeholder" \
           "w3 static-groups|--bits 3 --static-groups" "w3 no-true-sequential|--bits 3 --no-true-sequential" \
           "w4 seed1|--bits 4 --seed 1" "w4 seed2|--bits 4 --seed 2"; do
    local name=${v%%|*} args=${v#*|}
    local ao="--act-order"; [[ $args == *placeholder* ]] && ao="" && args=${args/--no-act-order-placeholder/}
    QLT 120 quantize --model $mdir --method gptq $ao $args --calib $S/data/gutenberg-calib.txt --nsamples 128 --device cuda \
      --out /tmp/sw --force > /dev/null 2> /tmp/sw.err || { echo "run: sweep $name failed: $(tail -1 /tmp/sw.err)"; continue; }
    QLT 60 eval ppl --model /tmp/sw --data $S/data/gutenberg-heldout.txt --device cuda --gpu-precision fp32 --json > /tmp/e.json 2>/dev/null
    local ppl=$(python3 -c 'import json;print(json.load(open("/tmp/e.json"))["ppl"])' 2>/dev/null)
    echo "{\"model\": \"$m\", \"variant\": \"$name\", \"heldout_ppl_all\": $ppl}" >> "$OUT/sweep.jsonl"
    echo "run: sweep $m $name heldout $ppl"
  done
}

stage_arch() {
  local m=$1 mdir=$S/models/$1
  python3 tests/data/arch2026/make_golden.py $mdir "$OUT/golden-$m.json" 2>&1 | grep -v Warning | tail -2
  for dev in cpu cuda; do
    for text in wikitext2-test.raw gutenberg-heldout.txt; do
      QLT 120 eval ppl --model $mdir --data $S/data/$text --max-windows 16 --engine fp32 --device $dev --gpu-precision fp32 \
        --json > /tmp/e.json 2> /tmp/e.err
      echo "{\"model\": \"$m\", \"what\": \"fp32 first16\", \"device\": \"$dev\", \"text\": \"$text\", \"eval\": $(cat /tmp/e.json)}" >> "$OUT/arch.jsonl"
      echo "run: $m fp32 $dev $text $(python3 -c 'import json;print(json.load(open("/tmp/e.json"))["ppl"])' 2>/dev/null) $(grep -i error /tmp/e.err | head -2)"
    done
  done
  local policies="routed"; grep -q num_local_experts $mdir/config.json && policies="routed all-experts"
  for pol in $policies; do
    local t=$(now_ms)
    QLT 240 quantize --model $mdir --method gptq --bits 4 --act-order --calib $S/data/gutenberg-calib.txt --nsamples 128 \
      --device cuda --moe-calibration $pol --out /tmp/a-$m-$pol --force --json > /tmp/q.json 2> /tmp/q.err
    echo "run: $m gptq $pol rc=$? $(( $(now_ms) - t )) ms; $(grep -E 'block 2 experts|error' /tmp/q.err | head -2)"
    QLT 120 eval ppl --model /tmp/a-$m-$pol --data $S/data/gutenberg-heldout.txt --device cuda --json > /tmp/e.json 2> /tmp/e.err
    echo "{\"model\": \"$m\", \"what\": \"gptq w4 act-order $pol (cuda)\", \"device\": \"cuda\", \"text\": \"gutenberg-heldout.txt\", \"eval\": $(cat /tmp/e.json)}" >> "$OUT/arch.jsonl"
    echo "run: $m gptq $pol heldout all $(python3 -c 'import json;print(json.load(open("/tmp/e.json"))["ppl"])' 2>/dev/null) $(grep -i error /tmp/e.err | head -2)"
  done
}

while [ $# -gt 0 ]; do
  st=$1; shift
  case $st in
    tests) stage_tests ;;
    ref) stage_ref "$1"; shift ;;
    smoke) stage_smoke ;;
    big) stage_big ;;
    arch) stage_arch "$1"; shift ;;
    sweep) stage_sweep "$1"; shift ;;
    moe) stage_moe "$1"; shift ;;
    shape) stage_shape "$1" "$2" "$3"; shift 3 ;;
    shaperef) stage_shaperef "$1"; shift ;;
    quality) ( source bench/arch2026_quality.sh "$S" "$OUT" "$1" ); shift ;;
    awq) ( source bench/awq_variants.sh "$S" "$OUT" "$1" ); shift ;;
    *) echo "run: unknown stage $st"; exit 2 ;;
  esac
  echo "run: after $st $(( $(date +%s) - t0 ))s"
done
