// libFuzzer target: config.json parsing (model/config.cpp). Any input must either parse into a
// config or throw quantllm::Error — never crash, hang or read out of bounds.
#include "core/error.h"
#include "model/config.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto c = quantllm::parse_config_json(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    // Touch what the loader derives from a parsed config.
    for (int l = 0; l < quantllm::kNumLinear; ++l) {
      const auto lin = quantllm::Linear(l);
      if (c.has_linear(lin)) (void)(c.linear_in(lin) + c.linear_out(lin));
    }
  } catch (const quantllm::Error&) {
  }
  return 0;
}
