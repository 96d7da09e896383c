// Calibration activations on the device or in pinned host memory (see activations.h).
#include "runtime/cuda/activations.h"

#include <algorithm>

namespace quantllm::cuda {

ActivationStore::ActivationStore(const Context& ctx, int64_t rows, int64_t width, bool on_device,
                                 int64_t max_chunk_rows, const char* what)
    : ctx_(ctx), rows_(rows), width_(width), max_chunk_(max_chunk_rows), on_device_(on_device) {
  QL_ASSERT(rows > 0 && width > 0 && max_chunk_rows > 0);
  if (on_device_) {
    dev_ = DeviceArray<float>(rows * width, what);
  } else {
    dev_ = DeviceArray<float>(std::min(rows, max_chunk_rows) * width, what);
    const size_t bytes = size_t(rows * width) * sizeof(float);
    if (cudaMallocHost(reinterpret_cast<void**>(&host_), bytes) != cudaSuccess) {
      (void)cudaGetLastError();
      fail("cannot pin {:.1f} MiB of host memory for the {}", double(bytes) / (1 << 20), what);
    }
  }
}

ActivationStore::~ActivationStore() {
  if (host_) cudaFreeHost(host_);
}

float* ActivationStore::chunk(int64_t r0, int64_t n, bool load) {
  QL_ASSERT(r0 >= 0 && n > 0 && r0 + n <= rows_);
  if (on_device_) return dev_.data() + r0 * width_;
  QL_ASSERT(n <= max_chunk_, "chunk of {} rows exceeds the staging buffer's {}", n, max_chunk_);
  if (load)
    QL_CUDA(cudaMemcpyAsync(dev_.data(), host_ + r0 * width_, size_t(n * width_) * sizeof(float),
                            cudaMemcpyHostToDevice, ctx_.stream()));
  return dev_.data();
}

void ActivationStore::commit(int64_t r0, int64_t n) {
  if (on_device_) return;
  QL_CUDA(cudaMemcpyAsync(host_ + r0 * width_, dev_.data(), size_t(n * width_) * sizeof(float), cudaMemcpyDeviceToHost,
                          ctx_.stream()));
  // The staging buffer is reused by the next chunk() on the same stream: stream order keeps it safe.
}

}  // namespace quantllm::cuda
