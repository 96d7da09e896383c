// Helpers shared by the CLI's subcommands: thread setup, JSON output, path checks.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace quantllm::cli {

// Applies --threads (0 = all cores).
void apply_threads(int threads);
// Prints exactly one JSON object on stdout.
void print_json(const nlohmann::json& j);

}  // namespace quantllm::cli
