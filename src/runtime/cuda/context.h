// The CUDA backend's context: one device, one stream, cuBLAS and cuSOLVER handles, checked calls,
// row-major GEMM wrappers, and device arrays that count the bytes they hold (so a run can report
// its peak GPU memory and refuse, with one clear line, a run that does not fit).
//
// Plain C++ (compiled by the host compiler): only the kernels live in .cu files (kernels.h).
// Everything runs on one stream, in order; host code synchronizes only where it reads results.
#pragma once

#include "core/error.h"
#include "runtime/cuda/check.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace quantllm::cuda {


// Device memory, counted. Allocation failure throws Error (one line: what was asked, what is in use).
void* device_alloc(size_t bytes, const char* what);
void device_free(void* p, size_t bytes);
size_t device_bytes_in_use();
size_t device_peak_bytes();
void reset_device_peak();

class Context;
// QUANTLLM_GPU_PROFILE=1: wall time of named steps, for finding where a run's GPU phases go.
// profile_start synchronizes and starts the clock; profile_mark synchronizes and adds the time since the
// last start or mark to `step`; both do nothing (no synchronization) unless profiling.
bool profiling();
void profile_start(const Context& ctx);
void profile_mark(const Context& ctx, const char* step);
void profile_add(const char* step, double seconds);
std::string profile_report();  // "step 1.234s/count, …"

template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(int64_t n, const char* what = "buffer") : n_(n) {
    QL_ASSERT(n >= 0);
    if (n > 0) p_ = static_cast<T*>(device_alloc(size_t(n) * sizeof(T), what));
  }
  ~DeviceArray() { release(); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  int64_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  // Grows (never shrinks) to at least n elements; contents are not kept.
  void reserve(int64_t n, const char* what = "buffer") {
    if (n > n_) *this = DeviceArray(n, what);
  }
  void release() {
    if (p_) device_free(p_, size_t(n_) * sizeof(T));
    p_ = nullptr;
    n_ = 0;
  }

 private:
  T* p_ = nullptr;
  int64_t n_ = 0;
};

// Plain fp32 FMA units; tensor cores on tf32-rounded operands; or tensor cores on operands rounded to
// bf16 (converted into the context's scratch on each call), fp32 accumulation and output.
enum class Math { FP32, TF32, BF16 };

class Context {
 public:
  // Opens device `device`; Error (one line) when there is no usable CUDA device.
  explicit Context(int device = 0);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  cudaStream_t stream() const { return stream_; }
  cublasHandle_t blas() const { return blas_; }
  cusolverDnHandle_t solver() const { return solver_; }
  const std::string& device_name() const { return name_; }
  size_t total_memory() const { return total_mem_; }
  size_t free_memory() const;  // as the driver reports it now
  int multiprocessors() const { return sms_; }
  void sync() const;

  // Row-major C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C (leading dimensions in elements).
  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
            const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Math math) const;
  // The same with operands already in bf16 (as uint16_t bits): tensor cores, fp32 accumulation and output.
  void gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
                 int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc) const;
  // The same over `batch` problems whose matrices start at the given device pointer arrays.
  void gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* const* a,
                    int64_t lda, const float* const* b, int64_t ldb, float beta, float* const* c, int64_t ldc,
                    int64_t batch, Math math) const;

  // The same over `batch` problems whose matrices lie stride_a / stride_b / stride_c elements apart.
  void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                            int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta,
                            float* c, int64_t ldc, int64_t stride_c, int64_t batch, Math math) const;

  // Host ↔ device copies on the context's stream. upload returns once src may be reused (a pageable
  // source is staged by the driver; a page-locked one must stay untouched until the stream gets there);
  // download waits for the data.
  void upload(void* dst, const void* src, size_t bytes) const;
  void download(void* dst, const void* src, size_t bytes) const;

 private:
  int device_ = 0, sms_ = 0;
  std::string name_;
  size_t total_mem_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cusolverDnHandle_t solver_ = nullptr;
  mutable DeviceArray<uint16_t> bf16_a_, bf16_b_;  // Math::BF16's operands
};

// Uploads a host vector into a new device array.
template <typename T>
DeviceArray<T> to_device(const Context& ctx, const std::vector<T>& v, const char* what = "buffer") {
  DeviceArray<T> d(int64_t(v.size()), what);
  if (!v.empty()) ctx.upload(d.data(), v.data(), v.size() * sizeof(T));
  return d;
}
template <typename T>
std::vector<T> to_host(const Context& ctx, const T* p, int64_t n) {
  std::vector<T> v(static_cast<size_t>(n));
  if (n > 0) ctx.download(v.data(), p, size_t(n) * sizeof(T));
  return v;
}

// True when a CUDA device can be opened (for tests that skip without one); `why` says why not.
bool device_available(std::string* why = nullptr);

}  // namespace quantllm::cuda
