// The CLI's subcommands: each file adds one subcommand to the CLI11 app and returns the function
// that runs it once the arguments are parsed.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace quantllm::cli {

using Runner = std::function<void()>;

// Each registers its subcommand on `app` and records what to run when it is chosen.
void register_eval(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners);
void register_inspect(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners);
void register_quantize(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners);
void register_generate(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners);
void register_compare(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners);
void register_imatrix(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners);
void register_synth(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners);

}  // namespace quantllm::cli
