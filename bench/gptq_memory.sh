#!/usr/bin/env bash
# Peak resident memory and wall time of GPTQ-quantizing one model (default: the reference Llama,
# w4 g128 act-order, 128 windows of 512 tokens, 2 threads), measured with GNU time, next to the floor
# that design.md promises: one decoder block in fp32 + the calibration hidden states + what the
# block-by-block runner holds while it pushes one chunk of windows through a block + the model's
# mapped safetensors files (their pages count in RSS once read).
#   bench/gptq_memory.sh [MODEL_DIR] [CALIB_FILE]
# Env: QUANTLLM (binary, default build/quantllm), THREADS (2), NSAMPLES (128), SEQLEN (512),
#      CHUNK_TOKENS (8192: BackendOptions::chunk_tokens, tokens per forward chunk of the CPU backend).
# Needs GNU time (/usr/bin/time, Debian package `time`; scripts/setup.sh installs it).
set -euo pipefail
model=${1:-../shared/models/gutenberg-llama-33m}
calib=${2:-../shared/data/gutenberg-calib.txt}
bin=${QUANTLLM:-build/quantllm}
threads=${THREADS:-2}
nsamples=${NSAMPLES:-128}
seqlen=${SEQLEN:-512}
chunk_tokens=${CHUNK_TOKENS:-8192}
[ -x /usr/bin/time ] || { echo "gptq_memory: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
[ -x "$bin" ] || { echo "gptq_memory: $bin not found (build first, or set QUANTLLM)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/time -v "$bin" quantize --model "$model" --method gptq --bits 4 --group-size 128 --act-order \
  --calib "$calib" --nsamples "$nsamples" --seqlen "$seqlen" --seed 0 --threads "$threads" \
  --out "$work/out" --json >"$work/result.json" 2>"$work/stderr"
# Benchmarks validate before they time: the run must have written a loadable directory.
[ -f "$work/out/model.safetensors" ] || { cat "$work/stderr" >&2; echo "gptq_memory: no output" >&2; exit 1; }

rss_kb=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$work/stderr")
elapsed=$(sed -n 's/^[[:space:]]*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/stderr")
user=$(sed -n 's/^[[:space:]]*User time (seconds): //p' "$work/stderr")
sys=$(sed -n 's/^[[:space:]]*System time (seconds): //p' "$work/stderr")
cpu=$(sed -n 's/^[[:space:]]*Percent of CPU this job got: //p' "$work/stderr")

python3 - "$model" "$nsamples" "$seqlen" "$chunk_tokens" "$rss_kb" "$elapsed" "$user" "$sys" "$cpu" "$work/result.json" <<'EOF'
import glob, json, os, sys
model, nsamples, seqlen, chunk_tokens, rss_kb = sys.argv[1], *map(int, sys.argv[2:6])
elapsed, user, sys_s, cpu, result = sys.argv[6:11]
c = json.load(open(os.path.join(model, "config.json")))
d, ffn, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
heads, kv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
hd = c.get("head_dim") or d // heads
qd, kvd = heads * hd, kv * hd
MiB = 1 << 20
linear_params = d * qd + 2 * d * kvd + qd * d + 3 * d * ffn      # q, k, v, o, gate, up, down
block_fp32 = 4 * (linear_params + 2 * d)                          # + the two RMSNorm gains
hidden_states = 4 * nsamples * seqlen * d                         # BlockRunner::hidden_
chunk = max(1, chunk_tokens // seqlen) * seqlen                   # tokens per forward chunk (whole windows)
# Live at the widest point of block_forward (inside the gated MLP): the chunk's copy x, the normed
# h, the attention output att (still in scope), o, up and gate: [chunk, 3·d + q_dim + 2·ffn] floats.
chunk_bufs = 4 * chunk * (3 * d + qd + 2 * ffn)
mapped = sum(os.path.getsize(p) for p in glob.glob(os.path.join(model, "*.safetensors")))
floor = block_fp32 + hidden_states + chunk_bufs + mapped
rss = rss_kb * 1024
print(f"model {os.path.basename(os.path.normpath(model))}: {L} blocks, hidden {d}, ffn {ffn}; "
      f"{nsamples}x{seqlen} calibration tokens")
print(f"wall time                  {elapsed} (user {user} s, system {sys_s} s, CPU {cpu})")
print(f"quantize --json seconds    {json.load(open(result))['seconds']:.1f}")
print(f"maximum resident set size  {rss / MiB:.1f} MiB ({rss_kb} kB)")
print("expected floor:")
print(f"  one block in fp32                      {block_fp32 / MiB:7.1f} MiB")
print(f"  calibration hidden states              {hidden_states / MiB:7.1f} MiB  ({nsamples}x{seqlen}x{d}x4 B)")
print(f"  runner's forward chunk ({chunk} tokens) {chunk_bufs / MiB:7.1f} MiB  (x, h, att, o, up, gate)")
print(f"  mapped safetensors files               {mapped / MiB:7.1f} MiB")
print(f"  total                                  {floor / MiB:7.1f} MiB;  peak / floor = {rss / floor:.2f}")
EOF
