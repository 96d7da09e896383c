// AWQ's clipping search on the GPU: quant/awq_search.h's awq_search_clip with the candidates, their
// output errors on the sampled tokens (one batched product per batch of groups) and the selection on
// the device. Same candidates (absmax · (1 − i/n_grid), i < max_shrink·n_grid), same error (mean over
// the sampled tokens of (x_g·(Q − W)_g)²), same tie rule (the first strictly smaller error, from 1e9).
#pragma once

#include "quant/group_quant.h"
#include "runtime/cuda/context.h"

namespace quantllm::cuda {

// w: [out, in], x: [n_tokens, in], both on the device → max_val: [out, n_groups] on the device.
DeviceArray<float> awq_search_clip_device(const Context& ctx, const float* w, int64_t out, int64_t in, const float* x,
                                          int64_t n_tokens, const QuantParams& p, int n_grid = 20,
                                          double max_shrink = 0.5, int64_t n_sample_tokens = 512);

}  // namespace quantllm::cuda
