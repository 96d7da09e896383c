// Helpers shared by the CLI's subcommands: thread setup and JSON output. The subcommands see only the
// public API (include/quantllm).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace quantllm::cli {

// Applies --threads (0 = all cores).
void apply_threads(int threads);
// Prints exactly one JSON object on stdout.
void print_json(const nlohmann::json& j);
// "[1536, 512]"
std::string shape_text(const std::vector<int64_t>& shape);

}  // namespace quantllm::cli
