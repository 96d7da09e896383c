// libFuzzer target: the safetensors header parser (parse_safetensors) on arbitrary bytes, from
// memory. A parse must either throw quantllm::Error or return views that lie wholly inside the
// input: every byte of every view is read (AddressSanitizer catches a view past the buffer) and
// float tensors are widened (UBSan catches misaligned or overflowing arithmetic).
#include "io/safetensors.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const quantllm::SafetensorsHeader h = quantllm::parse_safetensors(data, size, "fuzz.safetensors");
    uint32_t checksum = 0;
    for (const auto& [name, view] : h.tensors) {
      for (size_t i = 0; i < view.nbytes; ++i) checksum += view.data[i];
      // Widening allocates numel floats; keep it to small tensors so the fuzzer stays fast.
      if (view.nbytes <= (1u << 16) &&
          (view.dtype == quantllm::DType::F32 || view.dtype == quantllm::DType::F16 ||
           view.dtype == quantllm::DType::BF16 || view.dtype == quantllm::DType::F64))
        checksum += uint32_t(view.to_f32().numel());
    }
    volatile uint32_t sink = checksum;
    (void)sink;
  } catch (const quantllm::Error&) {
    // expected for malformed input
  }
  return 0;
}
