// Checked CUDA / cuBLAS / cuSOLVER calls and an always-on assertion for the CUDA backend, without
// fmt: the .cu files include only this (nvcc's front end rejects fmt's compile-time format checks).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include <string>

namespace quantllm {
[[noreturn]] void assertion_failed(const char* expr, const char* file, int line, const std::string& msg);  // core/error.h
}

namespace quantllm::cuda {
// Throws quantllm::Error naming the call (a broken device is reported like any other run failure).
[[noreturn]] void cuda_failed(const char* what, const char* call, const char* file, int line);
[[noreturn]] void cublas_failed(cublasStatus_t status, const char* call, const char* file, int line);
}

#define QL_CUDA(call)                                                                                 \
  do {                                                                                                \
    const cudaError_t ql_e_ = (call);                                                                 \
    if (ql_e_ != cudaSuccess) ::quantllm::cuda::cuda_failed(cudaGetErrorString(ql_e_), #call, __FILE__, __LINE__); \
  } while (0)
#define QL_CUBLAS(call)                                                                               \
  do {                                                                                                \
    const cublasStatus_t ql_s_ = (call);                                                              \
    if (ql_s_ != CUBLAS_STATUS_SUCCESS) ::quantllm::cuda::cublas_failed(ql_s_, #call, __FILE__, __LINE__); \
  } while (0)
#define QL_CUSOLVER(call)                                                                             \
  do {                                                                                                \
    const cusolverStatus_t ql_s_ = (call);                                                            \
    if (ql_s_ != CUSOLVER_STATUS_SUCCESS) ::quantllm::cuda::cuda_failed("cuSOLVER error", #call, __FILE__, __LINE__); \
  } while (0)
// After every kernel launch: a bad launch configuration is our bug, reported where it happened.
#define QL_CUDA_LAUNCHED() QL_CUDA(cudaGetLastError())
// QL_ASSERT without fmt, for the .cu files.
#define QL_CU_ASSERT(cond)                                                                             \
  do {                                                                                                 \
    if (!(cond)) [[unlikely]] ::quantllm::assertion_failed(#cond, __FILE__, __LINE__, std::string()); \
  } while (0)
