// compare_ggml_quantize (ours; not built by CMake, see README.md): llama.cpp's ggml_quantize_chunk and our quantize_rows in one process, on
// the same 4096 x 4096 matrix with 2 threads, interleaved run by run so that load from other
// processes on a shared machine hits both alike. Prints MB/s (best of N) for each and checks bytes.
// Usage: compare_ggml_quantize [N=3] [TYPE,TYPE,...] (all types by default).
#include "ggml.h"
#include "core/threads.h"
#include "quant/ggml/types.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace quantllm;

static float bench_value(uint64_t i) {
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

int main(int argc, char** argv) {
  const int threads = 2, rows = 4096, cols = 4096, reps = argc > 1 ? std::atoi(argv[1]) : 3;
  set_num_threads(threads);
  std::vector<float> x(size_t(rows) * cols);
  for (size_t i = 0; i < x.size(); ++i) x[i] = bench_value(i);
  std::vector<float> imatrix(cols);
  for (int j = 0; j < cols; ++j) imatrix[j] = 1.0f + 0.5f * std::sin(0.1f * float(j));
  const double mb = double(x.size()) * 4 / 1e6;
  std::printf("%-8s %12s %12s %14s %14s\n", "type", "llama MB/s", "ours MB/s", "llama imatrix", "ours imatrix");
  const std::string only = argc > 2 ? "," + std::string(argv[2]) + "," : "";  // e.g. Q6_K,IQ4_NL
  for (const auto& t : ggml::all_types()) {
    if (!only.empty() && only.find("," + std::string(t.name) + ",") == std::string::npos) continue;
    const ggml_type gt = ggml_type(uint32_t(t.type));
    std::vector<uint8_t> a(t.row_size(cols) * rows), b(a.size());
    double best[2][2] = {{1e30, 1e30}, {1e30, 1e30}};
    for (int im = 0; im < 2; ++im) {
      const float* w = im ? imatrix.data() : nullptr;
      for (int rep = 0; rep < reps; ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int k = 0; k < threads; ++k)
          pool.emplace_back([&, k] {
            const int64_t r0 = int64_t(rows) * k / threads, r1 = int64_t(rows) * (k + 1) / threads;
            ggml_quantize_chunk(gt, x.data(), a.data(), r0 * cols, r1 - r0, cols, w);
          });
        for (auto& th : pool) th.join();
        best[0][im] = std::min(best[0][im], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        t0 = std::chrono::steady_clock::now();
        ggml::quantize_rows(t.type, x.data(), b.data(), rows, cols, w);
        best[1][im] = std::min(best[1][im], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      if (a != b) std::printf("%s: BYTES DIFFER%s\n", std::string(t.name).c_str(), im ? " (imatrix)" : "");
    }
    std::printf("%-8s %12.1f %12.1f %14.1f %14.1f\n", std::string(t.name).c_str(), mb / best[0][0], mb / best[1][0],
                mb / best[0][1], mb / best[1][1]);
    std::fflush(stdout);
  }
}
