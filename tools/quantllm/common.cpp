// Shared CLI helpers.
#include "common.h"

#include "quantllm/util.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <thread>

namespace quantllm::cli {

void apply_threads(int threads) {
  if (threads < 0) throw CLI::ValidationError("--threads", "must be >= 0");
  set_num_threads(threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency())));
}

void print_json(const nlohmann::json& j) {
  std::fputs(j.dump().c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

}  // namespace quantllm::cli
