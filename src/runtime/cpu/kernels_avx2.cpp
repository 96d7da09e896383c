// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c, called only when isa.h says so).
// Placeholder until the AVX2 versions are written: the reference kernels.
#include "runtime/cpu/kernels.h"

namespace quantllm::cpu {

const Kernels& kernels_avx2() {
  static const Kernels k = [] {
    Kernels t = kernels_scalar();
    t.isa = Isa::Avx2;
    return t;
  }();
  return k;
}

}  // namespace quantllm::cpu
