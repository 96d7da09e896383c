// Prompt and generation speed of quantllm's CPU engine, measured the way llama.cpp's llama-bench
// measures them, so bench/cpu_speed.sh can put both in one table:
//   pp<P>: one batch of P tokens into an empty KV cache (tokens/s = P / seconds);
//   tg<N>: N tokens decoded one at a time, each fed back, from an empty cache (N / seconds).
// Token ids are drawn at random from the tokenizer's vocabulary (llama-bench does the same); model
// loading is not timed; one untimed warm-up run of each precedes the timed repetitions.
// Validates before it times: the logits of a short prompt must be finite, and with --check-fp32 the
// engine's logits must agree with the fp32 reference engine's (relative L2 error below 5%: the
// activation rounding of kernels.h costs ~0.5%).
//
//   bench_cpu_engine --model PATH [--engine quant|fp32] [--threads 2] [-p 512] [-n 128] [--reps 3]
//                    [--check-fp32]
// Prints one JSON object: model, engine, isa, threads, load_seconds, rss_mib (peak), file_mib,
// pp / tg: [tokens/s per repetition]; pp_per_cpu_second / tg_per_cpu_second: tokens per CPU second of
// this process (threads × seconds when nothing else runs).
#include "core/error.h"
#include "formats/open.h"
#include "core/threads.h"
#include "formats/gguf_model.h"
#include "formats/quantized_model.h"
#include "model/weights.h"
#include "runtime/cpu/isa.h"
#include "runtime/forward.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

using namespace quantllm;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU seconds of this process (all threads): on a machine shared with other work, tokens per CPU
// second tell kernel speed apart from time spent waiting for a core.
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

uint64_t path_bytes(const std::filesystem::path& p) {
  if (std::filesystem::is_regular_file(p)) return std::filesystem::file_size(p);
  uint64_t s = 0;
  for (const auto& e : std::filesystem::directory_iterator(p))
    if (e.path().extension() == ".safetensors") s += e.file_size();
  return s;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string model_path, engine = "quant";
  int threads = 2, reps = 3;
  int64_t n_prompt = 512, n_gen = 128;
  bool check_fp32 = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) fail("{} needs a value", a);
      return argv[++i];
    };
    if (a == "--model") model_path = next();
    else if (a == "--engine") engine = next();
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "-p") n_prompt = std::stoll(next());
    else if (a == "-n") n_gen = std::stoll(next());
    else if (a == "--reps") reps = std::stoi(next());
    else if (a == "--check-fp32") check_fp32 = true;
    else fail("unknown argument '{}'", a);
  }
  if (model_path.empty()) fail("--model is required");
  set_num_threads(threads);
  const LoadedModel m = open_model(model_path);
  const auto t_load = std::chrono::steady_clock::now();
  const FullModel fm(m, parse_engine(engine));
  const double load_seconds = seconds_since(t_load);
  const ModelConfig& c = fm.config();

  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> tok(0, m.tokenizer->vocab_size() - 1);
  auto random_tokens = [&](int64_t n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& v : t) v = tok(rng);
    return t;
  };

  // Validation: finite logits, and agreement with the fp32 engine when asked.
  const std::vector<int32_t> probe = random_tokens(16);
  std::vector<float> logits;
  {
    KVCache cache(c, int64_t(probe.size()));
    logits = fm.step(probe, cache);
  }
  for (float v : logits)
    if (!std::isfinite(v)) fail("{}: non-finite logits: the engine is broken, nothing timed", model_path);
  double rel_err = -1;
  if (check_fp32) {
    const FullModel ref(m, Engine::Fp32);
    KVCache cache(c, int64_t(probe.size()));
    const std::vector<float> want = ref.step(probe, cache);
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) num += std::pow(double(logits[i]) - want[i], 2), den += double(want[i]) * want[i];
    rel_err = std::sqrt(num / std::max(den, 1e-30));
    if (rel_err > 0.05) fail("{}: logits differ from the fp32 engine's by {:.3f} (relative L2): nothing timed", model_path, rel_err);
  }

  double cpu = 0;  // CPU seconds of the last run
  auto prompt_run = [&] {
    const std::vector<int32_t> t = random_tokens(n_prompt);
    KVCache cache(c, n_prompt);
    const double c0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    fm.step(t, cache);
    const double s = seconds_since(t0);
    cpu = cpu_seconds() - c0;
    return double(n_prompt) / s;
  };
  auto gen_run = [&] {
    KVCache cache(c, n_gen);
    std::vector<int32_t> t = random_tokens(1);
    const double c0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n_gen; ++i) {
      const std::vector<float> l = fm.step(t, cache);
      t = {int32_t(std::max_element(l.begin(), l.end() - (l.size() - size_t(m.tokenizer->vocab_size()))) - l.begin())};
    }
    const double s = seconds_since(t0);
    cpu = cpu_seconds() - c0;
    return double(n_gen) / s;
  };
  nlohmann::json pp = nlohmann::json::array(), tg = nlohmann::json::array();
  nlohmann::json pp_cpu = nlohmann::json::array(), tg_cpu = nlohmann::json::array();
  if (n_prompt > 0) {
    prompt_run();  // warm-up
    for (int r = 0; r < reps; ++r) pp.push_back(prompt_run()), pp_cpu.push_back(double(n_prompt) / cpu);
  }
  if (n_gen > 0) {
    gen_run();
    for (int r = 0; r < reps; ++r) tg.push_back(gen_run()), tg_cpu.push_back(double(n_gen) / cpu);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  nlohmann::json out = {{"model", model_path},
                        {"engine", engine},
                        {"isa", std::string(cpu::isa_name(cpu::active_isa()))},
                        {"threads", threads},
                        {"load_seconds", load_seconds},
                        {"rss_mib", double(ru.ru_maxrss) / 1024.0},
                        {"file_mib", double(path_bytes(model_path)) / (1024.0 * 1024.0)},
                        {"n_prompt", n_prompt},
                        {"n_gen", n_gen},
                        {"pp", pp},
                        {"tg", tg},
                        {"pp_per_cpu_second", pp_cpu},
                        {"tg_per_cpu_second", tg_cpu}};
  if (rel_err >= 0) out["rel_err_vs_fp32"] = rel_err;
  std::puts(out.dump().c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_cpu_engine: %s\n", e.what());
  return 1;
}
