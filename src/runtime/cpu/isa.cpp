// Run-time CPU feature detection (see isa.h).
#include "runtime/cpu/isa.h"

#include "core/error.h"

#include <atomic>
#include <cstdlib>
#include <string>

namespace quantllm::cpu {

namespace {

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vnni");
  return avx512 ? Isa::Avx512 : avx2 ? Isa::Avx2 : Isa::Scalar;
#else
  return Isa::Scalar;
#endif
}

Isa from_env(Isa best) {
  const char* e = std::getenv("QUANTLLM_ISA");
  if (!e || !*e) return best;
  const std::string s(e);
  Isa want;
  if (s == "scalar") want = Isa::Scalar;
  else if (s == "avx2") want = Isa::Avx2;
  else if (s == "avx512" || s == "avx512-vnni") want = Isa::Avx512;
  else fail("QUANTLLM_ISA='{}' is not one of scalar, avx2, avx512", s);
  if (int(want) > int(best)) fail("QUANTLLM_ISA={}: this CPU supports at most {}", s, isa_name(best));
  return want;
}

std::atomic<int> g_active{-1};

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512-vnni";
  }
  return "?";
}

Isa detected_isa() {
  static const Isa best = detect();
  return best;
}

Isa active_isa() {
  int v = g_active.load(std::memory_order_relaxed);
  if (v < 0) {
    v = int(from_env(detected_isa()));
    g_active.store(v, std::memory_order_relaxed);
  }
  return Isa(v);
}

void set_isa(Isa isa) {
  if (int(isa) > int(detected_isa()))
    fail("{} kernels requested, this CPU supports at most {}", isa_name(isa), isa_name(detected_isa()));
  g_active.store(int(isa), std::memory_order_relaxed);
}

}  // namespace quantllm::cpu
