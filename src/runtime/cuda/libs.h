// cuBLAS and cuSOLVER, opened with dlopen when the first GPU context is created. The binary does not
// link them: a CPU-only run never maps their ~700 MB (the CUDA runtime is linked statically and opens
// the driver itself), and a machine without them fails with one clear line only when --device cuda
// is asked for. The entry points used are listed in the table below.
#pragma once

#include <cublas_v2.h>
#include <cusolverDn.h>

namespace quantllm::cuda {

struct CudaLibs {
  decltype(&cublasCreate_v2) blas_create;
  decltype(&cublasDestroy_v2) blas_destroy;
  decltype(&cublasSetStream_v2) blas_set_stream;
  decltype(&cublasGetStatusString) blas_status_string;
  decltype(&cublasDtrsm_v2) trsm;
  // The 32-bit-size entry points (C++ sees overloads with 64-bit sizes too, hence the spelled-out types).
  cublasStatus_t (*gemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*, const void*,
                         cudaDataType, int, const void*, cudaDataType, int, const void*, void*, cudaDataType, int,
                         cublasComputeType_t, cublasGemmAlgo_t);
  cublasStatus_t (*gemm_batched)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                                 const void* const[], cudaDataType, int, const void* const[], cudaDataType, int,
                                 const void*, void* const[], cudaDataType, int, int, cublasComputeType_t,
                                 cublasGemmAlgo_t);
  cublasStatus_t (*gemm_strided_batched)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                         const void*, const void*, cudaDataType, int, long long, const void*,
                                         cudaDataType, int, long long, const void*, void*, cudaDataType, int, long long,
                                         int, cublasComputeType_t, cublasGemmAlgo_t);
  decltype(&cusolverDnCreate) solver_create;
  decltype(&cusolverDnDestroy) solver_destroy;
  decltype(&cusolverDnSetStream) solver_set_stream;
  decltype(&cusolverDnDpotrf_bufferSize) potrf_buffer_size;
  decltype(&cusolverDnDpotrf) potrf;
  decltype(&cusolverDnXtrtri_bufferSize) trtri_buffer_size;
  decltype(&cusolverDnXtrtri) trtri;
};

// Loads the libraries on first use (libcublas.so.13 / libcusolver.so.12, then the unversioned names);
// throws Error naming what is missing.
const CudaLibs& cuda_libs();

}  // namespace quantllm::cuda
