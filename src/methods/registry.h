// The quantization methods by name, each a combination of parts:
//
//   name   collects (calibration)          transforms                  rounds with                 writes
//   rtn    —                               AWQ scaling (optional)      int-N groups, nearest       GPTQ/AWQ directory
//   gptq   Hessians XᵀX (backend)          AWQ scaling (optional)      int-N groups, GPTQ          GPTQ directory
//   awq    Σ|x| + a search sample          AWQ scaling                 int-N groups, clipped       AWQ directory
//   gguf   — (an importance matrix file)   AWQ scaling (optional)      GGML blocks (llama.cpp's)   GGUF file
//   fp8    —                               —                           fp8 e4m3, per channel       compressed-tensors
//
// The parts live in their own places: collectors in the calibration backends (methods/backend.h), the
// AWQ transform in methods/awq.h (model → model: an overlay of folded weights), the rounders in quant/
// (group_quant.h, gptq.h, ggml/types.h), the writers in formats/ (save_quantized, write_gguf — the GGUF
// writer takes a rounder that encodes each planned tensor). quantize() (src/api/quantize.cpp) checks a
// request, looks its method up here and runs it.
#pragma once

#include "model/weights.h"
#include "quantllm/quantize.h"

#include <string_view>
#include <vector>

namespace quantllm {

struct MethodEntry {
  std::string_view name, summary;
  std::string_view collects, transforms, rounds, writes;  // the parts, for --help and the docs
  // Whether it needs calibration data: always, or only when AWQ's scaling goes first.
  bool always_calibrated;
  // Checks the method's options (no model needed); Error names the option.
  void (*validate)(const QuantizeRequest& r);
  // Runs the method on an opened model and writes r.out.
  QuantizeResult (*run)(const LoadedModel& model, const QuantizeRequest& r, const ProgressCallback& progress);
  // The --dry-run plan.
  QuantizePlan (*plan)(const LoadedModel& model, const QuantizeRequest& r);
};

const std::vector<MethodEntry>& method_registry();
// The entry named `name`; Error listing the known ones.
const MethodEntry& find_method(std::string_view name);
// Whether a request needs calibration data.
bool needs_calibration(const QuantizeRequest& r);

// The GGUF method's pieces (methods/gguf_method.cpp), registered as "gguf".
void validate_gguf(const QuantizeRequest& r);
QuantizeResult run_gguf(const LoadedModel& model, const QuantizeRequest& r, const ProgressCallback& progress);
QuantizePlan plan_gguf_method(const LoadedModel& model, const QuantizeRequest& r);
// The FP8 method's pieces (methods/fp8_method.cpp), registered as "fp8".
void validate_fp8(const QuantizeRequest& r);
QuantizeResult run_fp8(const LoadedModel& model, const QuantizeRequest& r, const ProgressCallback& progress);
QuantizePlan plan_fp8(const LoadedModel& model, const QuantizeRequest& r);

}  // namespace quantllm
