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
    // Touch what the loader derives from a parsed config: every block's spec and its tensor list.
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const quantllm::BlockSpec& b = c.block(int(l));
      for (const auto& [name, shape] : b.tensors()) (void)(name.size() + shape.size());
      for (const auto& s : b.linears) (void)(s.in + s.out);
    }
  } catch (const quantllm::Error&) {
  }
  return 0;
}
