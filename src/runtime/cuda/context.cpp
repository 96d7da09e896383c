// CUDA context, counted device memory and the row-major GEMM wrappers (see context.h).
#include "runtime/cuda/context.h"

#include "runtime/cuda/kernels.h"
#include "runtime/cuda/libs.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>

namespace quantllm::cuda {

namespace {
std::atomic<size_t> g_in_use{0}, g_peak{0};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// QUANTLLM_GPU_PROFILE=1: named steps' wall times (each step's end synchronizes the stream).
struct Profile {
  std::mutex m;
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> totals;  // name → (seconds, count)
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
};
Profile& the_profile() {
  static Profile p;
  return p;
}

constexpr double kMiB = 1024.0 * 1024.0;

cublasOperation_t op(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }
// (the batched products take fp32 operands only: BF16 runs them on tf32 tensor cores)
cublasComputeType_t compute(Math m) { return m != Math::FP32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F; }
int as_int(int64_t v, const char* what) {
  QL_ASSERT(v >= 0 && v <= INT32_MAX, "GEMM {} = {} exceeds cuBLAS's 32-bit sizes", what, v);
  return int(v);
}
}  // namespace

void cuda_failed(const char* what, const char* call, const char* file, int line) {
  // A failing CUDA call is either a broken device (reported as an Error the CLI prints) or our bug;
  // both end the run, and the message names the call.
  throw Error(fmt::format("CUDA: {} ({} at {}:{})", what, call, file, line));
}

void cublas_failed(cublasStatus_t status, const char* call, const char* file, int line) {
  cuda_failed(cuda_libs().blas_status_string(status), call, file, line);
}

// Device memory comes from the device's stream-ordered pool (cudaMallocAsync), which keeps freed blocks
// for the next request instead of returning them to the driver: a run allocates and frees the same few
// large buffers (a Hessian's factor, a layer's weights) for every block, and cudaMalloc/cudaFree of
// hundreds of MB each cost milliseconds and a device-wide synchronization. Blocks are allocated and
// freed in the legacy default stream's order; every kernel, copy and library call runs on a context's
// one stream, in submission order, so a block reused by a later allocation is only touched by work
// queued after the earlier owner's. QUANTLLM_GPU_POOL=0 falls back to cudaMalloc/cudaFree.
bool use_pool() {
  static const bool on = [] {
    const char* e = std::getenv("QUANTLLM_GPU_POOL");
    if (e && std::string(e) == "0") return false;
    int dev = 0, supported = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, dev) != cudaSuccess || !supported) {
      (void)cudaGetLastError();
      return false;
    }
    cudaMemPool_t pool = nullptr;
    if (cudaDeviceGetDefaultMemPool(&pool, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    uint64_t keep = UINT64_MAX;  // never hand memory back at synchronizations; trim_pool does when asked
    (void)cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    return true;
  }();
  return on;
}

// Returns the pool's unused blocks to the driver (after the device is idle).
void trim_pool() {
  if (!use_pool()) return;
  int dev = 0;
  cudaMemPool_t pool = nullptr;
  if (cudaDeviceSynchronize() != cudaSuccess || cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetDefaultMemPool(&pool, dev) != cudaSuccess || cudaMemPoolTrimTo(pool, 0) != cudaSuccess)
    (void)cudaGetLastError();
}

void* device_alloc(size_t bytes, const char* what) {
  const auto t0 = std::chrono::steady_clock::now();
  void* p = nullptr;
  cudaError_t e = use_pool() ? cudaMallocAsync(&p, bytes, nullptr) : cudaMalloc(&p, bytes);
  if (e != cudaSuccess && use_pool()) {  // the pool's spare blocks may be what is missing: hand them back, once
    (void)cudaGetLastError();
    trim_pool();
    e = cudaMallocAsync(&p, bytes, nullptr);
  }
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error state of a failed allocation
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    throw Error(fmt::format("GPU out of memory: {} needs {:.1f} MiB, {:.1f} MiB held by this run, {:.1f} of {:.1f} MiB free "
                            "(fewer --nsamples or a shorter --seqlen need less)",
                            what, double(bytes) / kMiB, double(g_in_use.load()) / kMiB, double(free_b) / kMiB,
                            double(total_b) / kMiB));
  }
  if (profiling()) profile_add("device_alloc", seconds_since(t0));
  const size_t now = g_in_use.fetch_add(bytes) + bytes;
  size_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void device_free(void* p, size_t bytes) {
  if (!p) return;
  const auto t0 = std::chrono::steady_clock::now();
  // Errors here would only come from a broken context: nothing left to do about them.
  if (use_pool())
    (void)cudaFreeAsync(p, nullptr);
  else
    cudaFree(p);
  if (profiling()) profile_add("device_free", seconds_since(t0));
  g_in_use.fetch_sub(bytes);
}

bool profiling() {
  static const bool on = [] {
    const char* e = std::getenv("QUANTLLM_GPU_PROFILE");
    return e && *e && std::string(e) != "0";
  }();
  return on;
}

void profile_add(const char* step, double seconds) {
  Profile& p = the_profile();
  std::lock_guard<std::mutex> lock(p.m);
  for (auto& [name, v] : p.totals)
    if (name == step) {
      v.first += seconds, ++v.second;
      return;
    }
  p.totals.push_back({step, {seconds, 1}});
}

void profile_start(const Context& ctx) {
  if (!profiling()) return;
  ctx.sync();
  Profile& p = the_profile();
  std::lock_guard<std::mutex> lock(p.m);
  p.last = std::chrono::steady_clock::now();
}

void profile_mark(const Context& ctx, const char* step) {
  if (!profiling()) return;
  ctx.sync();
  const auto now = std::chrono::steady_clock::now();
  double s = 0.0;
  {
    Profile& p = the_profile();
    std::lock_guard<std::mutex> lock(p.m);
    s = std::chrono::duration<double>(now - p.last).count();
    p.last = now;
  }
  profile_add(step, s);
}

std::string profile_report() {
  Profile& p = the_profile();
  std::lock_guard<std::mutex> lock(p.m);
  std::string r;
  for (const auto& [name, v] : p.totals) r += fmt::format("{}{} {:.3f}s/{}", r.empty() ? "" : ", ", name, v.first, v.second);
  return r;
}

size_t device_bytes_in_use() { return g_in_use.load(); }
size_t device_peak_bytes() { return g_peak.load(); }
void reset_device_peak() { g_peak.store(g_in_use.load()); }

bool device_available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    if (why) *why = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device found";
    (void)cudaGetLastError();
    return false;
  }
  return true;
}

Context::Context(int device) : device_(device) {
  std::string why;
  if (!device_available(&why)) fail("--device cuda: no usable CUDA device ({})", why);
  QL_CUDA(cudaSetDevice(device));
  cudaDeviceProp prop{};
  QL_CUDA(cudaGetDeviceProperties(&prop, device));
  name_ = prop.name;
  total_mem_ = prop.totalGlobalMem;
  sms_ = prop.multiProcessorCount;
  QL_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  QL_CUBLAS(cuda_libs().blas_create(&blas_));
  QL_CUBLAS(cuda_libs().blas_set_stream(blas_, stream_));
  QL_CUSOLVER(cuda_libs().solver_create(&solver_));
  QL_CUSOLVER(cuda_libs().solver_set_stream(solver_, stream_));
}

Context::~Context() {
  if (solver_) cuda_libs().solver_destroy(solver_);
  if (blas_) cuda_libs().blas_destroy(blas_);
  if (stream_) cudaStreamDestroy(stream_);
}

size_t Context::free_memory() const {
  trim_pool();  // blocks the pool keeps for reuse are free to plan with
  size_t free_b = 0, total_b = 0;
  QL_CUDA(cudaMemGetInfo(&free_b, &total_b));
  return free_b;
}

void Context::sync() const { QL_CUDA(cudaStreamSynchronize(stream_)); }

// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and a row-major matrix read as
// column-major is its transpose: so cuBLAS gets B first, A second, the same op flags, and n, m swapped.
void Context::gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Math math) const {
  if (m == 0 || n == 0) return;
  if (math == Math::BF16 && k > 0) {
    // The operands as stored, rounded to bf16: every row's span up to the last row's last element (a view
    // inside a wider buffer ends there, not at a whole leading dimension).
    const int64_t na = ((trans_a ? k : m) - 1) * lda + (trans_a ? m : k);
    const int64_t nb = ((trans_b ? n : k) - 1) * ldb + (trans_b ? k : n);
    bf16_a_.reserve(na, "bf16 operand");
    bf16_b_.reserve(nb, "bf16 operand");
    k::f32_to_bf16(a, bf16_a_.data(), na, stream_);
    k::f32_to_bf16(b, bf16_b_.data(), nb, stream_);
    gemm_bf16(trans_a, trans_b, m, n, k, alpha, bf16_a_.data(), lda, bf16_b_.data(), ldb, beta, c, ldc);
    return;
  }
  QL_CUBLAS(cuda_libs().gemm(blas_, op(trans_b), op(trans_a), as_int(n, "n"), as_int(m, "m"), as_int(k, "k"), &alpha, b,
                         CUDA_R_32F, as_int(ldb, "ldb"), a, CUDA_R_32F, as_int(lda, "lda"), &beta, c, CUDA_R_32F,
                         as_int(ldc, "ldc"), compute(math), CUBLAS_GEMM_DEFAULT));
}

void Context::gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
                        int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc) const {
  if (m == 0 || n == 0) return;
  QL_CUBLAS(cuda_libs().gemm(blas_, op(trans_b), op(trans_a), as_int(n, "n"), as_int(m, "m"), as_int(k, "k"), &alpha, b,
                         CUDA_R_16BF, as_int(ldb, "ldb"), a, CUDA_R_16BF, as_int(lda, "lda"), &beta, c, CUDA_R_32F,
                         as_int(ldc, "ldc"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void Context::gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* const* a, int64_t lda, const float* const* b, int64_t ldb, float beta,
                           float* const* c, int64_t ldc, int64_t batch, Math math) const {
  if (m == 0 || n == 0 || batch == 0) return;
  QL_CUBLAS(cuda_libs().gemm_batched(blas_, op(trans_b), op(trans_a), as_int(n, "n"), as_int(m, "m"), as_int(k, "k"), &alpha,
                                reinterpret_cast<const void* const*>(b), CUDA_R_32F, as_int(ldb, "ldb"),
                                reinterpret_cast<const void* const*>(a), CUDA_R_32F, as_int(lda, "lda"), &beta,
                                reinterpret_cast<void* const*>(c), CUDA_R_32F, as_int(ldc, "ldc"), as_int(batch, "batch"),
                                compute(math), CUBLAS_GEMM_DEFAULT));
}

void Context::gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                                   const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                                   int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                   Math math) const {
  if (m == 0 || n == 0 || batch == 0) return;
  QL_CUBLAS(cuda_libs().gemm_strided_batched(blas_, op(trans_b), op(trans_a), as_int(n, "n"), as_int(m, "m"), as_int(k, "k"),
                                       &alpha, b, CUDA_R_32F, as_int(ldb, "ldb"), stride_b, a, CUDA_R_32F,
                                       as_int(lda, "lda"), stride_a, &beta, c, CUDA_R_32F, as_int(ldc, "ldc"), stride_c,
                                       as_int(batch, "batch"), compute(math), CUBLAS_GEMM_DEFAULT));
}

void Context::upload(void* dst, const void* src, size_t bytes) const {
  if (bytes == 0) return;
  // From pageable memory the copy is staged by the driver and returns once src may be reused.
  QL_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
}

void Context::download(void* dst, const void* src, size_t bytes) const {
  if (bytes == 0) return;
  QL_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  QL_CUDA(cudaStreamSynchronize(stream_));
}

}  // namespace quantllm::cuda
