// quantllm eval ppl: perplexity of a model (HF directory, quantized directory or .gguf) on a text.
#include "commands.h"
#include "common.h"
#include "core/fs.h"
#include "core/progress.h"
#include "eval/perplexity.h"

#include <fmt/format.h>

namespace quantllm::cli {

namespace {
struct EvalArgs {
  std::string model, data, base;
  int64_t ctx = 512, max_windows = 0, batch = 0;
  int threads = 0;
  bool json = false;
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
  ppl->add_flag("--json", args->json, "print one JSON object on stdout");
  runners.emplace_back(ppl, [args] {
    apply_threads(args->threads);
    const std::string text = read_text_file(args->data);
    Model m = open_model(args->model);
    const Windows w = make_windows(*m.tokenizer, text, args->ctx, args->max_windows);
    FullModel fm(m);
    Progress bar("perplexity", w.n_windows);
    const auto r = perplexity(fm, w, args->batch, [&](int64_t done, int64_t total) {
      bar.update(done, fmt::format("windows of {} tokens", args->ctx));
    });
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
}

}  // namespace quantllm::cli
