// Runs llama.cpp itself (through node-llama-cpp's prebuilt CPU binaries) on a GGUF file and writes
// its full-vocabulary logits at every position of a token sequence, so that the interop test
// (llama_cpp_test.cpp) can compare them with our engine's on the same file.
//
//   node llama_logits.mjs --lib DIR --model F.gguf --tokens IDS.json --out LOGITS.f32 --meta META.json
//                         [--texts TEXTS.json] [--threads 2]
//
// DIR is where scripts/install-llama-cpp.sh installed node-llama-cpp (it holds node_modules/).
// IDS.json is a JSON array of token ids, evaluated as one sequence from position 0.
// LOGITS.f32 receives n_tokens × n_vocab little-endian float32: row i holds the logits for the
// token after ids[i]. META.json receives n_vocab, n_tokens, the context settings llama.cpp reports,
// and with --texts (a JSON array of strings) the ids llama.cpp's own tokenizer gives for each text
// (no BOS added): a check of the vocabulary metadata we wrote.
//
// Settings chosen so the comparison measures the weights' arithmetic and nothing else:
// CPU only and never build or download anything (the test must not depend on the network once the
// package is installed); F32 KV cache (the default F16 cache would add its own rounding of k and v);
// no flash attention (its CPU path converts K/V/Q to F16); the whole sequence in one batch (so every
// position sees the same kernels); default sampler, i.e. greedy, which leaves the logits untouched.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

function parse_args(argv) {
  const args = { threads: 2 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (!key.startsWith("--") || value === undefined) throw new Error(`bad argument '${key}'`);
    args[key.slice(2)] = value;
  }
  for (const required of ["lib", "model", "tokens", "out", "meta"])
    if (!args[required]) throw new Error(`missing --${required}`);
  return args;
}

async function load_node_llama_cpp(dir) {
  // The package lives outside this source tree, so resolve it from the install directory.
  const require = createRequire(path.join(path.resolve(dir), "package.json"));
  let entry;
  try {
    entry = require.resolve("node-llama-cpp");
  } catch {
    entry = path.join(path.resolve(dir), "node_modules", "node-llama-cpp", "dist", "index.js");
  }
  return import(pathToFileURL(entry).href);
}

async function main() {
  const args = parse_args(process.argv.slice(2));
  const ids = JSON.parse(readFileSync(args.tokens, "utf8"));
  if (!Array.isArray(ids) || ids.length === 0) throw new Error(`${args.tokens}: expected a non-empty array of ids`);

  const { getLlama, LlamaLogLevel } = await load_node_llama_cpp(args.lib);
  const llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.warn,
  });
  const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0, useMmap: true });
  const threads = Number(args.threads);
  const context = await model.createContext({
    contextSize: Math.max(ids.length, 32),
    batchSize: ids.length,
    sequences: 1,
    threads: { ideal: threads, min: threads },
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  const sequence = context.getSequence();
  const results = await sequence.controlledEvaluate(ids.map((id) => [id, { generateNext: { logits: true } }]));

  let vocab = 0;
  for (const r of results) if (r?.next?.logits) vocab = Math.max(vocab, r.next.logits.size);
  const logits = new Float32Array(ids.length * vocab);
  for (let i = 0; i < ids.length; ++i) {
    const map = results[i]?.next?.logits;
    if (!map || map.size !== vocab) throw new Error(`position ${i}: no full-vocabulary logits`);
    for (const [token, value] of map) logits[i * vocab + token] = value;
  }
  writeFileSync(args.out, Buffer.from(logits.buffer));

  const meta = {
    n_tokens: ids.length,
    n_vocab: vocab,
    kv_cache_key_type: String(context.kvCacheKeyType),
    kv_cache_value_type: String(context.kvCacheValueType),
    threads: context.currentThreads,
    batch_size: context.batchSize,
    flash_attention: context.flashAttention,
    bos: model.tokens.bos,
    eos: model.tokens.eos,
  };
  if (args.texts) {
    const texts = JSON.parse(readFileSync(args.texts, "utf8"));
    meta.text_ids = texts.map((text) => Array.from(model.tokenize(text)));
  }
  writeFileSync(args.meta, JSON.stringify(meta));

  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => {
  console.error(`llama_logits.mjs: ${e?.stack ?? e}`);
  process.exit(1);
});
