// GPTQ and AWQ over a whole model on one CUDA GPU: the drivers of pipeline/group_methods.cpp and
// pipeline/awq.cpp with every block's calibration, Hessians, searches and quantization on the device.
//
// Block by block as on the CPU (design.md): block i's weights are loaded from the mapped checkpoint
// (the next block's on a host thread meanwhile) and uploaded; the calibration activations of all
// windows stay on the device when they fit, in pinned host memory otherwise (runtime/cuda/activations.h).
// With true-sequential GPTQ each stage of a block runs once over all windows, keeping what the next
// stage needs instead of recomputing it:
//   1. h = norm(x)                      → H(q/k/v input)         → quantize q, k, v
//   2. att = attention(h) (quantized qkv), kept → H(o input)     → quantize o
//   3. x ← x + o(att) (kept in place), h = norm(x) → H(gate/up input) → quantize gate, up
//   4. mid = act(gate(h)) ⊙ up(h)       → H(down input)          → quantize down
//   5. x ← x + down(mid)                                          (block i+1's input)
// which computes exactly what the CPU's observe-then-advance passes compute, with one forward pass
// per block instead of four. Results, checkpoints (--resume) and statistics are the CPU driver's.
#pragma once

#include "eval/perplexity.h"
#include "export/quantized_model.h"
#include "pipeline/group_methods.h"

#include <map>
#include <string>

namespace quantllm {

QuantizedModel quantize_gptq_cuda(const Model& model, const GroupMethodOptions& opt, const CalibWindows& windows,
                                  const BlockProgress& progress);

// AWQ (pipeline/awq.h's run_awq) on the GPU, options already validated. scale_only = false fills qm
// (layers, replaced tensors, stats); true fills `scaled` with every tensor the folding changed.
void run_awq_cuda(const Model& model, const GroupMethodOptions& opt, const CalibWindows& windows, bool scale_only,
                  QuantizedModel* qm, std::map<std::string, Tensor>* scaled, const BlockProgress& progress);

// eval/perplexity.h's perplexity with the forward pass on the GPU (fp32 or tf32 products).
PerplexityResult perplexity_cuda(const Model& m, const Windows& w, bool tf32, int64_t batch = 0,
                                 const ProgressFn& progress = {});

}  // namespace quantllm
