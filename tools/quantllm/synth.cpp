// quantllm synth: writes a synthetic checkpoint of a real model's shape with random weights, for
// speed measurements at real sizes (include/quantllm/synth.h).
#include "commands.h"
#include "common.h"
#include "quantllm/synth.h"
#include "quantllm/error.h"
#include "quantllm/util.h"

#include <fmt/format.h>

#include <chrono>

namespace quantllm::cli {

void register_synth(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  struct Args {
    std::string shape, out, dtype = "bf16", tokenizer_from;
    uint64_t seed = 0;
    int threads = 0;
    int64_t layers = 0, hidden = 0, ffn = 0, heads = 0, kv_heads = 0, vocab = 0;
    double shard_gb = 5.0;
    bool force = false, json = false, list = false;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("synth", "Write a checkpoint of a real model's shape with random weights (for benchmarks)");
  sub->add_option("--shape", a->shape, "named shape: llama-3.2-1b, llama-2-7b, llama-3-8b, … (--list-shapes)");
  sub->add_option("--out", a->out, "output directory");
  sub->add_option("--dtype", a->dtype, "bf16 or f16")->capture_default_str();
  sub->add_option("--seed", a->seed, "random seed (same seed, same bytes)");
  sub->add_option("--tokenizer-from", a->tokenizer_from,
                  "model directory whose tokenizer files are copied (default ../shared/models/gutenberg-llama-33m, "
                  "gutenberg-opt-28m for OPT shapes)");
  sub->add_option("--layers", a->layers, "override the number of decoder blocks");
  sub->add_option("--hidden", a->hidden, "override hidden_size");
  sub->add_option("--ffn", a->ffn, "override the feed-forward width");
  sub->add_option("--heads", a->heads, "override the number of attention heads");
  sub->add_option("--kv-heads", a->kv_heads, "override the number of key/value heads");
  sub->add_option("--vocab", a->vocab, "override vocab_size (at least the tokenizer's)");
  sub->add_option("--shard-gb", a->shard_gb, "largest shard in GB (10^9 bytes)")->capture_default_str();
  sub->add_option("--threads", a->threads, "threads (0 = all cores)");
  sub->add_flag("--force", a->force, "replace an existing output directory");
  sub->add_flag("--list-shapes", a->list, "print the named shapes and exit");
  sub->add_flag("--json", a->json, "print one JSON object on stdout");
  runners.emplace_back(sub, [a] {
    apply_threads(a->threads);
    if (a->list) {
      nlohmann::json shapes = nlohmann::json::array();
      for (const auto& s : synth_shapes()) {
        const double params = s.parameters();
        if (a->json) shapes.push_back({{"shape", s.name}, {"architecture", s.architecture}, {"parameters", params}});
        else fmt::print("{:16} {:20} hidden {:5} layers {:3} heads {:3}/{:<3} ffn {:6} vocab {:6}  ~{:.2f} B parameters\n",
                        s.name, s.architecture, s.hidden, s.layers, s.heads, s.kv_heads, s.ffn, s.vocab, params / 1e9);
      }
      if (a->json) print_json({{"shapes", shapes}});
      return;
    }
    if (a->shape.empty()) throw Error("--shape is required (--list-shapes lists them)");
    if (a->out.empty()) throw Error("--out is required");
    SynthOptions o;
    o.shape = synth_shape(a->shape);
    if (a->layers) o.shape.layers = a->layers;
    if (a->hidden) o.shape.hidden = a->hidden;
    if (a->ffn) o.shape.ffn = a->ffn;
    if (a->heads) o.shape.heads = a->heads;
    if (a->kv_heads) o.shape.kv_heads = a->kv_heads;
    if (a->vocab) o.shape.vocab = a->vocab;
    if (o.shape.architecture == "OPTForCausalLM") o.shape.kv_heads = o.shape.heads;
    o.dtype = a->dtype;
    if (!(a->shard_gb > 0)) throw Error("--shard-gb must be positive");
    o.shard_bytes = uint64_t(a->shard_gb * 1e9);
    o.out = a->out;
    o.seed = a->seed;
    o.overwrite = a->force;
    o.tokenizer_from = !a->tokenizer_from.empty() ? a->tokenizer_from
                       : o.shape.architecture == "OPTForCausalLM" ? "../shared/models/gutenberg-opt-28m"
                                                                   : "../shared/models/gutenberg-llama-33m";
    const auto t0 = std::chrono::steady_clock::now();
    Progress bar("synth", 100);
    o.progress = [&](uint64_t done, uint64_t total) {
      bar.update(int64_t(100 * done / std::max<uint64_t>(1, total)), format_bytes(done));
    };
    const SynthResult r = write_synthetic_checkpoint(o);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    bar.finish(fmt::format("{} in {}", format_bytes(r.bytes), format_duration(secs)));
    if (a->json) {
      print_json({{"out", a->out}, {"shape", a->shape}, {"parameters", r.parameters}, {"bytes", r.bytes},
                  {"shards", r.shards}, {"seconds", secs}});
    } else {
      fmt::print("{}: {} ({} layers), {:.3f} B parameters, {} in {} shard(s), {:.1f} s\n", a->out, a->shape,
                 o.shape.layers, double(r.parameters) / 1e9, format_bytes(r.bytes), r.shards, secs);
    }
  });
}

}  // namespace quantllm::cli
