// Quantization throughput of every ggml format: MB of f32 input per second, 2 threads, on a
// 4096 x 4096 matrix, without and with an importance matrix.
//
// Validates before it times: the bytes of the whole matrix must hash (FNV-1a) to what llama.cpp's
// ggml_quantize_chunk produced for the same matrix (tests/golden/gen_ggml_goldens.cpp --bench prints
// those hashes and llama.cpp's own throughput on the same input), and rows quantized one at a time on
// one thread must equal the parallel result.
#include "core/threads.h"
#include "quant/ggml/types.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

using namespace quantllm;
using namespace quantllm::ggml;

namespace {

constexpr int64_t kRows = 4096, kCols = 4096;
constexpr int kThreads = 2, kRepeats = 3;

// Bit-identical to bench_value() in tests/golden/gen_ggml_goldens.cpp: splitmix64 per index, an
// Irwin-Hall sum of four uniforms, times 0.02 (weights of a trained layer are of that order).
float bench_value(uint64_t i) {
  float sum = 0;
  for (int k = 0; k < 4; ++k) {
    uint64_t z = (i * 4 + k + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    sum += float(z >> 40) * (1.0f / 16777216.0f);
  }
  return 0.02f * (sum - 2.0f);
}

uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : bytes) h = (h ^ b) * 1099511628211ull;
  return h;
}

// llama.cpp's bytes for this matrix (without, with imatrix), from gen_ggml_goldens --bench.
struct Expected {
  GgmlType type;
  uint64_t hash[2];
};
// clang-format off
constexpr Expected kExpected[] = {
  {GgmlType::F32, {0x182c6ab7b947b1a0ull, 0x182c6ab7b947b1a0ull}},
  {GgmlType::F16, {0xb83d2414b1456b96ull, 0xb83d2414b1456b96ull}},
  {GgmlType::BF16, {0xfea1ffabefc6eb87ull, 0xfea1ffabefc6eb87ull}},
  {GgmlType::Q8_0, {0xfc46f30146ae0decull, 0xfc46f30146ae0decull}},
  {GgmlType::Q4_0, {0x31ff879e8b781e77ull, 0x2b537d1bc0bf30caull}},
  {GgmlType::Q4_1, {0x3eadf04fe32d5df9ull, 0x211d293cc66edd81ull}},
  {GgmlType::Q5_0, {0x2baa131741a4fbbcull, 0x1be02075c469ee2aull}},
  {GgmlType::Q5_1, {0x523e60fcb759d26full, 0xffb1c9ec307c8150ull}},
  {GgmlType::Q2_K, {0xb01d379cbc6b7b74ull, 0xead7231e2761fa4cull}},
  {GgmlType::Q3_K, {0x8765b656bd3fa58cull, 0xd72ea9ecdd6e312eull}},
  {GgmlType::Q4_K, {0xee72143813a460ddull, 0x6ff6c2a14e1186e1ull}},
  {GgmlType::Q5_K, {0x59f8336dcfef0956ull, 0x38e9ea41ca9f907full}},
  {GgmlType::Q6_K, {0x7c15b5cf32da841cull, 0x9cf3deb2c5e71985ull}},
  {GgmlType::IQ4_NL, {0xe2508673532d1e3dull, 0x557dd93d7a6d42afull}},
  {GgmlType::IQ4_XS, {0x94d6b129ac2cf9e1ull, 0x6d03b3710f65ac4eull}},
};
// clang-format on

}  // namespace

int main() {
  set_num_threads(kThreads);
  std::vector<float> x(size_t(kRows * kCols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = bench_value(i);
  std::vector<float> imatrix(kCols);
  for (int64_t j = 0; j < kCols; ++j) imatrix[size_t(j)] = 1.0f + 0.5f * std::sin(0.1f * float(j));
  const double mb = double(x.size()) * 4 / 1e6;

  fmt::print("quantllm ggml quantize_rows, {} threads, {} x {} f32 ({:.1f} MB)\n", kThreads, kRows, kCols, mb);
  fmt::print("{:<8} {:>14} {:>14}\n", "type", "MB/s", "MB/s imatrix");
  int failures = 0;
  for (const QuantTraits& t : all_types()) {
    std::vector<uint8_t> out(t.row_size(kCols) * kRows), row(t.row_size(kCols));
    double mbs[2];
    for (int with_im = 0; with_im < 2; ++with_im) {
      const float* im = with_im ? imatrix.data() : nullptr;
      // Validate: llama.cpp's bytes, and one-row-at-a-time equals the parallel result.
      quantize_rows(t.type, x.data(), out.data(), kRows, kCols, im);
      const uint64_t h = fnv1a(out);
      bool known = false;
      for (const auto& e : kExpected) {
        if (e.type != t.type) continue;
        known = true;
        if (e.hash[with_im] != h) {
          fmt::print(stderr, "{}{}: bytes differ from llama.cpp's (fnv1a {:016x}, expected {:016x})\n", t.name,
                     with_im ? " (imatrix)" : "", h, e.hash[with_im]);
          ++failures;
        }
      }
      if (!known) fmt::print(stderr, "{}: no llama.cpp hash to validate against\n", t.name);
      for (int64_t r : {int64_t(0), kRows / 2 + 1, kRows - 1}) {
        t.quantize(x.data() + r * kCols, row.data(), kCols, im);
        if (std::memcmp(row.data(), out.data() + size_t(r) * row.size(), row.size()) != 0) {
          fmt::print(stderr, "{}: row {} differs between serial and parallel quantization\n", t.name, r);
          ++failures;
        }
      }
      double best = 1e30;
      for (int rep = 0; rep < kRepeats; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        quantize_rows(t.type, x.data(), out.data(), kRows, kCols, im);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      mbs[with_im] = mb / best;
    }
    fmt::print("{:<8} {:>14.1f} {:>14.1f}\n", t.name, mbs[0], mbs[1]);
  }
  if (failures) fmt::print(stderr, "{} validation failures: the timings above measure wrong results\n", failures);
  return failures ? 1 : 0;
}
