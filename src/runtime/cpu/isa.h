// Which SIMD kernels the CPU can run, decided once at run time.
//
// The build's baseline is x86-64-v2 (-msse4.2) unless QUANTLLM_NATIVE; the kernels for wider vector
// units live in files compiled with their own target flags (kernels_avx2.cpp, kernels_avx512.cpp)
// and are only called when the CPU reports the features they were compiled for:
//   Avx512: AVX-512 F/BW/VL/DQ + AVX-512 VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later)
//   Avx2:   AVX2 + FMA + F16C (Haswell, Zen 1 and later; also AVX-512 CPUs without VNNI)
//   Scalar: the portable reference, and the fallback everywhere else.
// QUANTLLM_ISA=scalar|avx2|avx512 in the environment (or set_isa) selects a lower level for tests and
// benchmarks; asking for more than the CPU has is refused.
#pragma once

#include <string_view>

namespace quantllm::cpu {

enum class Isa { Scalar, Avx2, Avx512 };

std::string_view isa_name(Isa isa);  // "scalar", "avx2", "avx512-vnni"
// The best level this CPU supports.
Isa detected_isa();
// The level the kernels use now: QUANTLLM_ISA or set_isa if given, else detected_isa().
Isa active_isa();
// Selects a level (tests compare levels); Error when the CPU lacks it.
void set_isa(Isa isa);

}  // namespace quantllm::cpu
