// dlopen of cuBLAS and cuSOLVER (see libs.h).
#include "runtime/cuda/libs.h"

#include "core/error.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace quantllm::cuda {

namespace {

void* open_first(std::initializer_list<const char*> names, std::string& tried) {
  for (const char* n : names) {
    if (void* h = dlopen(n, RTLD_NOW | RTLD_LOCAL)) return h;
    tried += std::string(tried.empty() ? "" : ", ") + n + " (" + dlerror() + ")";
  }
  return nullptr;
}

template <typename F>
void bind(void* lib, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn) fail("--device cuda: {} lacks {} (an older CUDA than this build's {}?)", "the CUDA library", name, CUDART_VERSION);
}

CudaLibs load() {
  std::string tried;
  void* blas = open_first({"libcublas.so.13", "libcublas.so"}, tried);
  if (!blas) fail("--device cuda: cannot load cuBLAS: {}", tried);
  tried.clear();
  void* solver = open_first({"libcusolver.so.12", "libcusolver.so"}, tried);
  if (!solver) fail("--device cuda: cannot load cuSOLVER: {}", tried);
  CudaLibs l{};
  bind(blas, "cublasCreate_v2", l.blas_create);
  bind(blas, "cublasDestroy_v2", l.blas_destroy);
  bind(blas, "cublasSetStream_v2", l.blas_set_stream);
  bind(blas, "cublasGetStatusString", l.blas_status_string);
  bind(blas, "cublasDtrsm_v2", l.trsm);
  bind(blas, "cublasGemmEx", l.gemm);
  bind(blas, "cublasGemmBatchedEx", l.gemm_batched);
  bind(blas, "cublasGemmStridedBatchedEx", l.gemm_strided_batched);
  bind(solver, "cusolverDnCreate", l.solver_create);
  bind(solver, "cusolverDnDestroy", l.solver_destroy);
  bind(solver, "cusolverDnSetStream", l.solver_set_stream);
  bind(solver, "cusolverDnDpotrf_bufferSize", l.potrf_buffer_size);
  bind(solver, "cusolverDnDpotrf", l.potrf);
  bind(solver, "cusolverDnXtrtri_bufferSize", l.trtri_buffer_size);
  bind(solver, "cusolverDnXtrtri", l.trtri);
  return l;  // the libraries stay open for the life of the process
}

}  // namespace

const CudaLibs& cuda_libs() {
  static std::once_flag once;
  static CudaLibs libs;
  std::call_once(once, [] { libs = load(); });
  return libs;
}

}  // namespace quantllm::cuda
