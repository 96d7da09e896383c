// The "fp8" method: float8 e4m3fn weights with per-channel scales, written as compressed-tensors
// float-quantized (W8A16) — what vLLM serves with its FP8 kernels. Round to nearest, no calibration.
#include "core/error.h"
#include "core/fs.h"
#include "formats/quantized_model.h"
#include "methods/registry.h"

#include <fmt/format.h>

#include <chrono>

namespace quantllm {

void validate_fp8(const QuantizeRequest& r) {
  if (r.bits || r.group_size || r.sym)
    fail("--bits, --group-size and --sym do not apply to --method fp8 (8-bit e4m3 with one scale per output channel)");
  if (!r.format.empty() && r.format != "compressed-tensors")
    fail("--method fp8 writes compressed-tensors (float-quantized); --format {} does not apply", r.format);
  if (r.awq.scale_first || r.gptq.act_order || r.mse || !r.calib.source.empty())
    fail("--method fp8 rounds to nearest: --awq-scale, --act-order, --mse and --calib do not apply");
  if (r.device.device != "cpu") fail("--device applies to the calibrated methods; --method fp8 runs on the CPU");
  if (!r.gguf.imatrix.empty()) fail("--imatrix applies to --method gguf");
}

QuantizeResult run_fp8(const LoadedModel& m, const QuantizeRequest& r, const ProgressCallback& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const Fp8Summary s = save_fp8(m, r.out, r.overwrite, [&](int done, int total) {
    if (progress) progress(done, total, fmt::format("{}/{} layers", done, total));
  });
  QuantizeResult res;
  res.out = r.out;
  res.method = "fp8";
  res.bits_per_weight = s.params ? 8.0 : 0;  // one byte a weight (plus one fp32 scale a row)
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(r.out, ec))
    if (e.is_regular_file(ec)) res.bytes += e.file_size(ec);
  LayerReport total;
  total.relative_error = s.squared_norm > 0 ? s.squared_error / s.squared_norm : 0;
  res.layers["all"] = total;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

QuantizePlan plan_fp8(const LoadedModel& m, const QuantizeRequest& r) {
  QuantizePlan plan;
  plan.method = r.method;
  double params = 0, bytes = 0;
  for (int64_t i = 0; i < m.config.n_layers; ++i) {
    const BlockSpec& spec = m.config.block(i);
    for (size_t l = 0; l < spec.linears.size(); ++l) {
      if (!spec.linears[l].quantized) continue;
      const int64_t in = spec.linears[l].in, out = spec.linears[l].out;
      const double b = double(in * out + 4 * out);  // e4m3 codes + one fp32 scale a row
      params += double(in * out), bytes += b;
      plan.layers.push_back({spec.linear_tensor(int(l)), {out, in}, "fp8 e4m3", 8, out, uint64_t(b), "per channel"});
    }
  }
  plan.bytes = uint64_t(bytes);
  plan.bits_per_weight = params > 0 ? 8 * bytes / params : 0;
  return plan;
}

}  // namespace quantllm
