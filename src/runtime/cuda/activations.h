// Calibration activations of all windows ([rows, width] fp32) for the GPU drivers: held in device
// memory when they fit, else in pinned host memory and moved through a device staging buffer one
// chunk of rows at a time. Callers see device pointers to row ranges either way.
#pragma once

#include "runtime/cuda/context.h"

namespace quantllm::cuda {

class ActivationStore {
 public:
  // max_chunk_rows: the most rows one chunk() call asks for (the staging buffer's size on the host path).
  ActivationStore(const Context& ctx, int64_t rows, int64_t width, bool on_device, int64_t max_chunk_rows,
                  const char* what);
  ~ActivationStore();
  ActivationStore(const ActivationStore&) = delete;
  ActivationStore& operator=(const ActivationStore&) = delete;

  bool on_device() const { return on_device_; }
  int64_t rows() const { return rows_; }
  int64_t width() const { return width_; }
  // Device pointer to rows [r0, r0 + n); on the host path the rows are copied into the staging
  // buffer (load = false skips the copy for rows about to be overwritten).
  float* chunk(int64_t r0, int64_t n, bool load = true);
  // Host path: writes the staging buffer back to rows [r0, r0 + n) (a no-op on the device path).
  void commit(int64_t r0, int64_t n);

 private:
  const Context& ctx_;
  int64_t rows_, width_, max_chunk_;
  bool on_device_;
  DeviceArray<float> dev_;      // all rows (device path) or the staging buffer (host path)
  float* host_ = nullptr;       // pinned, host path
};

}  // namespace quantllm::cuda
