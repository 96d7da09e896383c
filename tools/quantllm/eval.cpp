// quantllm eval ppl / kld: perplexity of a model (HF directory, quantized directory or .gguf) on a text,
// and its KL divergence from a base model's next-token distributions.
#include "commands.h"
#include "common.h"
#include "quantllm/eval.h"

#include <fmt/format.h>

namespace quantllm::cli {

namespace {
struct EvalArgs {
  std::string model, data, base, gpu_precision = "fp32";
  EvalOptions o;
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
  ppl->add_option("--ctx", args->o.ctx, "window length in tokens, BOS included")->capture_default_str();
  ppl->add_option("--max-windows", args->o.max_windows, "score only the first N windows (0 = all)");
  ppl->add_option("--batch", args->o.batch, "windows per forward pass (0 = automatic)");
  ppl->add_option("--threads", args->threads, "threads (0 = all cores)");
  ppl->add_option("--engine", args->o.engine,
                  "quant: weights stay packed, CPU kernels on 8-bit activations; fp32: every weight widened (reference)")
      ->capture_default_str();
  ppl->add_flag("--json", args->json, "print one JSON object on stdout");
  ppl->add_option("--device", args->o.device, "cpu | cuda (the forward pass on one GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  ppl->add_option("--gpu-precision", args->gpu_precision, "cuda: tf32 or fp32 matrix products")
      ->check(CLI::IsMember({"tf32", "fp32"}))
      ->capture_default_str();
  runners.emplace_back(ppl, [args] {
    apply_threads(args->threads);
    args->o.gpu_tf32 = args->gpu_precision == "tf32";
    const Model m(args->model);
    Progress bar("perplexity", 1);
    const PerplexityResult r = perplexity(m, args->data, args->o, bar.callback());
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
  kld->add_option("--ctx", args->o.ctx, "window length in tokens, BOS included")->capture_default_str();
  kld->add_option("--max-windows", args->o.max_windows, "use only the first N windows (0 = all)");
  kld->add_option("--batch", args->o.batch, "windows per forward pass (0 = automatic)");
  kld->add_option("--threads", args->threads, "threads (0 = all cores)");
  kld->add_option("--engine", args->o.engine, "quant or fp32, for both models (see eval ppl)")->capture_default_str();
  kld->add_flag("--json", args->json, "print one JSON object on stdout");
  kld->add_flag("--no-cache", args->no_cache, "neither read nor write the base's cached logits");
  runners.emplace_back(kld, [args] {
    apply_threads(args->threads);
    const Model base(args->base), m(args->model);
    Progress bar("kl divergence", 1);
    const KldResult r = kl_divergence(base, m, args->data, args->o, !args->no_cache, bar.callback());
    bar.finish(fmt::format("kld {:.6f}", r.kld));
    if (args->json) {
      print_json({{"kld", r.kld}, {"kld_p99", r.kld_p99}, {"top1_agreement", r.top1_agreement},
                  {"ppl_base", r.ppl_base}, {"ppl", r.ppl}, {"positions", r.positions},
                  {"windows", r.windows}, {"seconds", r.seconds}, {"base_from_cache", r.base_from_cache}});
    } else {
      fmt::print("KL divergence {:.6f} (p99 {:.6f}), top-1 agreement {:.2f}%, ppl {:.4f} vs base {:.4f}, {} positions\n",
                 r.kld, r.kld_p99, 100 * r.top1_agreement, r.ppl, r.ppl_base, r.positions);
    }
  });
}

}  // namespace quantllm::cli
