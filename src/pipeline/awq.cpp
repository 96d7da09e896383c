// AWQ over a whole model (see awq.h). Not written yet.
#include "pipeline/awq.h"

#include "core/error.h"

namespace quantllm {

QuantizedModel quantize_awq(const Model&, const GroupMethodOptions&, const BlockProgress&) {
  fail("--method awq is not available yet");
}

}  // namespace quantllm
