// Eval throughput benchmark: tokens/s of the fp32 forward pass on gutenberg-llama-33m (windows of
// 512, 2 threads), the share of time spent in the linear layers' matrix products and in attention,
// and the machine's BLAS sgemm rate on the same shapes. Validates first: the perplexity of the
// timed windows must match reference.json's first-16 number (so a broken pass is never timed).
//   bench_eval [SHARED_DIR] [THREADS] [WINDOWS]   → one JSON object on stdout
#include "eval/perplexity.h"
#include "formats/open.h"
#include "model/weights.h"
#include "core/fs.h"
#include "core/threads.h"
#include "runtime/forward.h"

#include <cblas.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

using namespace quantllm;

static double sgemm_gflops(int m, int n, int k) {
  std::vector<float> a(size_t(m) * size_t(k)), b(size_t(n) * size_t(k)), c(size_t(m) * size_t(n));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (auto& v : a) v = nd(rng);
  for (auto& v : b) v = nd(rng);
  auto run = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
  };
  run();
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * m * n * k / best / 1e9;
}

int main(int argc, char** argv) {
  const std::string shared = argc > 1 ? argv[1] : "../shared";
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  const int64_t windows = argc > 3 ? std::atoll(argv[3]) : 16;
  set_num_threads(threads);
  const std::string model_dir = shared + "/models/gutenberg-llama-33m";
  LoadedModel m = open_model(model_dir);
  FullModel fm(m);
  const Windows w = make_windows(*m.tokenizer, read_text_file(shared + "/data/wikitext2-test.raw"), 512, windows);
  // Validate: first-16 perplexity against transformers' number.
  std::ifstream rf(model_dir + "/reference.json");
  const auto ref = nlohmann::json::parse(rf);
  set_forward_profiling(true);
  const auto r = perplexity(fm, w);
  const ForwardProfile p = forward_profile();
  set_forward_profiling(false);
  if (windows == 16) {
    const double want = ref["fp32"]["wikitext2_test"]["ppl_first16"].get<double>();
    if (std::abs(r.ppl / want - 1) > 5e-4) {
      std::fprintf(stderr, "bench_eval: perplexity %.4f != reference %.4f: not timing a wrong result\n", r.ppl, want);
      return 1;
    }
  }
  const double attn_g = sgemm_gflops(512, 512, 64);
  nlohmann::json j = {
      {"threads", threads},
      {"windows", w.n_windows},
      {"ppl", r.ppl},
      {"seconds", r.seconds},
      {"tokens_per_second", r.tokens_per_second},
      {"linear_seconds", p.linear_seconds},
      {"linear_share", p.linear_seconds / r.seconds},
      {"linear_gflops", p.linear_flops / p.linear_seconds / 1e9},
      {"attention_seconds", p.attention_seconds},
      {"attention_share", p.attention_seconds / r.seconds},
      {"sgemm_gflops_2048x1536x512", sgemm_gflops(2048, 1536, 512)},
      {"sgemm_gflops_2048x8000x512", sgemm_gflops(2048, 8000, 512)},
      {"sgemm_gflops_512x512x64", attn_g},
  };
  std::puts(j.dump().c_str());
  return 0;
}
