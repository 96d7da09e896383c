// quantllm eval ppl|kld: perplexity and KL divergence.
#include "commands.h"

namespace quantllm::cli {

void register_eval(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  auto* sub = app.add_subcommand("eval", "Measure perplexity or KL divergence");
  runners.emplace_back(sub, [] {});
}

}  // namespace quantllm::cli
