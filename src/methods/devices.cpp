// The backend registration: which devices this build has and the one place that picks a device's
// calibration backend (methods/backend.h). The CUDA backend (methods/cuda/, runtime/cuda/) exists only
// in a build configured with -DQUANTLLM_CUDA=ON; this file is where that choice is made.
#include "core/error.h"
#include "methods/backend.h"
#ifdef QUANTLLM_HAVE_CUDA
#include "runtime/cuda/context.h"
#include "runtime/cuda/model.h"
#endif

namespace quantllm {

std::unique_ptr<CalibrationBackend> make_cpu_calibration_backend(const LoadedModel& model, const CalibWindows& windows,
                                                                 const BackendOptions& options);
#ifdef QUANTLLM_HAVE_CUDA
std::unique_ptr<CalibrationBackend> make_cuda_calibration_backend(const LoadedModel& model, const CalibWindows& windows,
                                                                  const BackendOptions& options);
#endif

bool cuda_backend_built() {
#ifdef QUANTLLM_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

bool cuda_device_usable() {
#ifdef QUANTLLM_HAVE_CUDA
  return cuda::device_available();
#else
  return false;
#endif
}

namespace {
[[noreturn]] void no_cuda_backend() {
  fail("--device cuda: this build has no CUDA backend (configure with -DQUANTLLM_CUDA=ON; needs nvcc)");
}
}  // namespace

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name != "cuda") fail("--device '{}' is not known (known: cpu, cuda)", name);
  if (!cuda_backend_built()) no_cuda_backend();
  return Device::CUDA;
}

std::unique_ptr<CalibrationBackend> make_calibration_backend(const LoadedModel& model, const CalibWindows& windows,
                                                             const BackendOptions& options) {
  if (options.device == Device::CPU) return make_cpu_calibration_backend(model, windows, options);
#ifdef QUANTLLM_HAVE_CUDA
  return make_cuda_calibration_backend(model, windows, options);
#else
  no_cuda_backend();
#endif
}

std::unique_ptr<ModelRunner> make_model_runner(const LoadedModel& model, Device device, Engine engine, bool gpu_tf32) {
  if (device == Device::CPU) return std::make_unique<FullModel>(model, engine);
#ifdef QUANTLLM_HAVE_CUDA
  return std::make_unique<cuda::DeviceModel>(model, gpu_tf32 ? cuda::Math::TF32 : cuda::Math::FP32);
#else
  no_cuda_backend();
#endif
}

}  // namespace quantllm
