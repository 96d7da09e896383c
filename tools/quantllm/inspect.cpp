// quantllm inspect PATH: architecture, hyperparameters, tokenizer, and every tensor.
#include "commands.h"

namespace quantllm::cli {

void register_inspect(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  auto* sub = app.add_subcommand("inspect", "Show a model's architecture, tokenizer and tensors");
  runners.emplace_back(sub, [] {});
}

}  // namespace quantllm::cli
