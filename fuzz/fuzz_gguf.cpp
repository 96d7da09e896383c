// libFuzzer target: the GGUF container reader (GGUFFile from memory) on arbitrary bytes. A parse
// must either throw quantllm::Error or yield key/values and tensor views inside the input: every
// byte of every tensor is read (AddressSanitizer catches a view past the buffer), every value is
// formatted, and the parsed file is written back and re-read, which must succeed with the same
// bytes (the writer accepts whatever the reader accepted, within the writer's limits).
#include "io/gguf.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantllm;
  try {
    const GGUFFile f(data, size, "fuzz.gguf");
    uint32_t checksum = 0;
    for (const auto& [key, value] : f.kvs()) checksum += uint32_t(value.to_string().size());
    GGUFWriter w;
    for (const auto& [key, value] : f.kvs()) w.add(key, value);
    bool writable = true;
    for (const GGUFTensorInfo& t : f.tensors()) {
      for (size_t i = 0; i < t.nbytes; ++i) checksum += t.data[i];
      // The writer wants 1..4 dims; a 0-dim tensor is legal to read but is not re-written.
      if (t.ne.empty()) {
        writable = false;
        continue;
      }
      w.add_tensor_view(t.name, t.type, t.ne, t.data, t.nbytes);
    }
    if (writable) {
      const std::vector<uint8_t> again = w.to_bytes();
      const GGUFFile g(again.data(), again.size(), "rewritten.gguf");
      // Writing what was re-read must reproduce the same bytes (compared as bytes, not values,
      // because NaN floats never compare equal).
      GGUFWriter w2;
      for (const auto& [key, value] : g.kvs()) w2.add(key, value);
      for (const GGUFTensorInfo& t : g.tensors()) w2.add_tensor_view(t.name, t.type, t.ne, t.data, t.nbytes);
      if (w2.to_bytes() != again || g.tensors().size() != f.tensors().size()) std::abort();
    }
    volatile uint32_t sink = checksum;
    (void)sink;
  } catch (const Error&) {
    // expected for malformed input
  }
  return 0;
}
