// A size target instead of a type name (--target-bpw): each quantizable tensor's ggml type chosen to
// lose least at the size, beyond llama.cpp's fixed per-name rules.
//
// The loss of giving tensor t type T is estimated by the importance-weighted squared rounding error
//   E_t(T) = Σ_rows Σ_j im_j · (w_rj − ŵ_rj)²,   im_j = mean of x_j² over calibration tokens,
// which is E‖X·ΔWᵀ‖² per token under the importance matrix's diagonal approximation — the squared error
// the tensor adds to its output, in the same units for every linear layer. It is measured, not
// modelled: a sample of each tensor's rows (up to kSampleRows, spread evenly; every expert of a stacked
// MoE tensor, each with its own importance row scaled by its share of the routed tokens) is quantized
// with llama.cpp's quantizer at every candidate type. The token embedding enters the residual stream
// one row per token, so its error is Σ Δ² / vocab (unit importance, uniform token frequency).
// Then a greedy fill of the budget: every tensor starts at its cheapest candidate, and the upgrade with
// the largest error decrease per extra byte — along each tensor's lower convex hull of (bytes, error),
// so the greedy choice is optimal for the relaxed problem — is taken while it fits.
// E alone is not one currency across tensors: an error in the embedding or a value projection costs the
// model more than the same error in a key projection (measured: with E alone, 2× the KL divergence of
// llama.cpp's named mixes at equal size on gutenberg-llama-33m). So each tensor's E is scaled by its
// measured gain (TargetOptions::probe): the KL divergence of the model with that tensor alone rounded to
// a probe type (Q3_K where it fits), over E at that type.
#pragma once

#include "formats/gguf_plan.h"
#include "io/imatrix.h"

#include <functional>
#include <string>
#include <vector>

namespace quantllm {

inline constexpr int64_t kSampleRows = 256;

struct TargetOptions {
  double bpw = 0;                          // bits a weight over the whole file (llama.cpp's measure)
  const ImportanceMatrix* imatrix = nullptr;  // none: unit importance (and no type that needs one)
  bool grid_types_only = false;            // gguf --gptq: only the types GPTQ rounds into (codes.h)
  // The measured sensitivity: the model's KL divergence with only tensor p rounded to `type`
  // (methods/gguf_target_probe.h). Each tensor's errors are scaled by KL(probe type) / E(probe type),
  // so the fill minimizes the predicted KL divergence; the head and the embedding then take part too.
  // Null: E itself, with the head on llama.cpp's rule and the embedding's error divided by the vocabulary.
  std::function<double(const PlannedTensor& p, ggml::GgmlType type)> probe;
};

// Candidate types for a tensor with rows of n weights, ascending in size.
std::vector<ggml::GgmlType> target_candidates(int64_t n, const TargetOptions& opt);

// Rewrites the types of `plan` (made by plan_gguf) to meet opt.bpw; notes each choice ("target: Δerr …").
// Error (one line) when the target is below what the cheapest candidates reach; above what the largest
// reach, every tensor gets its largest. Returns the bits a weight of the plan.
double assign_target_types(const ModelConfig& c, const WeightSource& w, std::vector<PlannedTensor>& plan,
                           const TargetOptions& opt);

// The mix a target plan is labelled with (general.file_type): the one whose default type holds the
// most bytes of the plan.
const GGUFMix& target_label(const std::vector<PlannedTensor>& plan);

}  // namespace quantllm
