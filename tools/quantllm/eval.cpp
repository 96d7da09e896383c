// quantllm eval ppl: perplexity of a model (HF directory, quantized directory or .gguf) on a text.
#include "commands.h"
#include "common.h"
#include "core/fs.h"
#include "core/progress.h"
#include "eval/kld.h"
#include "eval/perplexity.h"
#include "methods/backend.h"

#include <fmt/format.h>

namespace quantllm::cli {

namespace {
struct EvalArgs {
  std::string model, data, base, engine = "quant", device = "cpu", gpu_precision = "fp32";
  int64_t ctx = 512, max_windows = 0, batch = 0;
  int threads = 0;
  bool json = false, no_cache = false;
};
}  // namespace

void register_eval(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  auto* eval = app.add_subcommand("eval", "Measure perplexity or KL divergence");
  eval->require_subcommand(1);
  auto args = std::make_shared<EvalArgs>();

  auto* ppl = eval->add_subcommand("ppl", "Perplexity over windows of a text file");
  ppl->add_option("--model", args->model, "HF directory, quantized directory or .gguf file")->required();
  ppl->add_option("--data", args->data, "UTF-8 text file (e.g. wikitext2-test.raw)")->required();
  ppl->add_option("--ctx", args->ctx, "window length in tokens, BOS included")->capture_default_str();
  ppl->add_option("--max-windows", args->max_windows, "score only the first N windows (0 = all)");
  ppl->add_option("--batch", args->batch, "windows per forward pass (0 = automatic)");
  ppl->add_option("--threads", args->threads, "threads (0 = all cores)");
  ppl->add_option("--engine", args->engine,
                  "quant: weights stay packed, CPU kernels on 8-bit activations; fp32: every weight widened (reference)")
      ->capture_default_str();
  ppl->add_flag("--json", args->json, "print one JSON object on stdout");
  ppl->add_option("--device", args->device, "cpu | cuda (the forward pass on one GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  ppl->add_option("--gpu-precision", args->gpu_precision, "cuda: tf32 or fp32 matrix products")
      ->check(CLI::IsMember({"tf32", "fp32"}))
      ->capture_default_str();
  runners.emplace_back(ppl, [args] {
    apply_threads(args->threads);
    const std::string text = read_text_file(args->data);
    Model m = open_model(args->model);
    const Windows w = make_windows(*m.tokenizer, text, args->ctx, args->max_windows);
    Progress bar("perplexity", w.n_windows);
    const auto on_progress = [&](int64_t done, int64_t) { bar.update(done, fmt::format("windows of {} tokens", args->ctx)); };
    const auto runner = make_model_runner(m, parse_device(args->device), parse_engine(args->engine),
                                          args->gpu_precision == "tf32");
    const PerplexityResult r = perplexity(*runner, w, args->batch, on_progress);
    bar.finish(fmt::format("ppl {:.4f}", r.ppl));
    if (args->json) {
      print_json({{"ppl", r.ppl},
                  {"nll", r.nll},
                  {"tokens_scored", r.tokens_scored},
                  {"windows", r.windows},
                  {"seconds", r.seconds},
                  {"tokens_per_second", r.tokens_per_second}});
    } else {
      fmt::print("perplexity {:.4f} (nll {:.6f}) over {} windows, {} tokens scored, {:.1f} tokens/s\n", r.ppl, r.nll,
                 r.windows, r.tokens_scored, r.tokens_per_second);
    }
  });

  auto* kld = eval->add_subcommand("kld", "KL divergence of a model's next-token distributions from a base model's");
  kld->add_option("--base", args->base, "the reference model (usually full precision)")->required();
  kld->add_option("--model", args->model, "the model to compare")->required();
  kld->add_option("--data", args->data, "UTF-8 text file")->required();
  kld->add_option("--ctx", args->ctx, "window length in tokens, BOS included")->capture_default_str();
  kld->add_option("--max-windows", args->max_windows, "use only the first N windows (0 = all)");
  kld->add_option("--batch", args->batch, "windows per forward pass (0 = automatic)");
  kld->add_option("--threads", args->threads, "threads (0 = all cores)");
  kld->add_option("--engine", args->engine, "quant or fp32, for both models (see eval ppl)")->capture_default_str();
  kld->add_flag("--json", args->json, "print one JSON object on stdout");
  kld->add_flag("--no-cache", args->no_cache, "neither read nor write the base's cached logits");
  runners.emplace_back(kld, [args] {
    apply_threads(args->threads);
    const std::string text = read_text_file(args->data);
    Model base = open_model(args->base);
    Model m = open_model(args->model);
    const Windows w = make_windows(*base.tokenizer, text, args->ctx, args->max_windows);
    const Windows wm = make_windows(*m.tokenizer, text, args->ctx, args->max_windows);
    if (wm.tokens != w.tokens) fail("{} and {} tokenize the text differently: KL divergence needs the same tokens",
                                    args->base, args->model);
    // The base's logits: from the cache an earlier run over the same windows wrote, else computed
    // (and cached for the next candidate).
    const uint64_t key = base_logits_key(args->base, w, "engine " + args->engine);
    const std::filesystem::path cache = args->no_cache ? std::filesystem::path{} : base_logits_cache_path(key, w, base.config.vocab);
    std::unique_ptr<BaseLogits> src = cached_base_logits(cache, key, w, base.config.vocab);
    const bool from_cache = src != nullptr;
    std::unique_ptr<FullModel> fb;
    if (from_cache) {
      fmt::print(stderr, "quantllm: base logits from {}\n", cache.string());
    } else {
      fb = std::make_unique<FullModel>(base, parse_engine(args->engine));
      src = model_base_logits(*fb, w, cache, key);
    }
    FullModel fm(m, parse_engine(args->engine));
    Progress bar("kl divergence", w.n_windows);
    const auto r = kl_divergence(*src, {&fm}, w, args->batch, [&](int64_t done, int64_t) { bar.update(done); });
    bar.finish(fmt::format("kld {:.6f}", r[0].kld));
    if (args->json) {
      print_json({{"kld", r[0].kld}, {"kld_p99", r[0].kld_p99}, {"top1_agreement", r[0].top1_agreement},
                  {"ppl_base", r[0].ppl_base}, {"ppl", r[0].ppl}, {"positions", r[0].positions},
                  {"windows", r[0].windows}, {"seconds", r[0].seconds}, {"base_from_cache", from_cache}});
    } else {
      fmt::print("KL divergence {:.6f} (p99 {:.6f}), top-1 agreement {:.2f}%, ppl {:.4f} vs base {:.4f}, {} positions\n",
                 r[0].kld, r[0].kld_p99, 100 * r[0].top1_agreement, r[0].ppl, r[0].ppl_base, r[0].positions);
    }
  });
}

}  // namespace quantllm::cli
