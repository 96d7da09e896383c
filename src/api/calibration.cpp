// CalibrationData of the public API (include/quantllm/calibration.h).
#include "quantllm/calibration.h"

#include "core/error.h"

namespace quantllm {

void CalibrationData::fill(Calibration& c) const {
  if (is_file_) c.source = file_.string();
  else if (!windows_.empty()) c.windows = windows_;
  else if (!texts_.empty()) c.texts = texts_;
  else fail("quantize: no calibration texts");
}

}  // namespace quantllm
