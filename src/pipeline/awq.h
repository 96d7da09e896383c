// AWQ (Lin et al. 2024) over a whole model, block by block: activation-aware scale search per
// scaling group, scales folded into the preceding operation, then a clipping search, then
// group-wise quantization with the searched ranges.
#pragma once

#include "pipeline/group_methods.h"

namespace quantllm {

QuantizedModel quantize_awq(const Model& model, const GroupMethodOptions& opt, const BlockProgress& progress);

}  // namespace quantllm
