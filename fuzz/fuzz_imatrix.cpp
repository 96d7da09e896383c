// libFuzzer target: importance matrix files (GGUF imatrix and the legacy .dat format) from memory.
// A parse must either throw quantllm::Error or give entries whose means can be computed and which
// save and load back unchanged.
#include "io/imatrix.h"

#include "core/error.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantllm;
  try {
    const ImportanceMatrix im = ImportanceMatrix::parse(data, size, "fuzz.imatrix");
    for (const auto& [name, e] : im.entries) (void)im.values(name);
    std::vector<uint8_t> bytes;
    try {
      bytes = im.to_gguf_bytes();  // may refuse names too long for GGUF (legacy files allow them)
    } catch (const Error&) {
      return 0;
    }
    const ImportanceMatrix back = ImportanceMatrix::parse(bytes.data(), bytes.size(), "resaved.gguf");
    if (back.entries.size() != im.entries.size()) std::abort();
  } catch (const Error&) {
    // expected for malformed input
  }
  return 0;
}
