// What a group-wise run (RTN, GPTQ, AWQ) will need before it starts: resident memory at its peak,
// itemized, and the arithmetic it will do, turned into seconds with the matrix-product rate this
// machine reaches right now. quantize --dry-run prints it; quantize checks the memory against what
// the system has available before any work (../shared/docs/design.md: check up front).
//
// The memory model follows the code: the calibration runner holds every window's hidden state at
// the current block's input ([tokens, hidden] fp32); one forward chunk (chunk_tokens tokens) holds
// its activations (q, k, v, attention output, the feed-forward intermediates); one block's weights
// in fp32 (plus the copy the method works on); the Hessians of the current true-sequential group
// (fp64) and GPTQ's workspace; AWQ's search sample (the first awq_search_tokens tokens of all four
// linear inputs). The checkpoint's pages count too: mapped files are resident once touched.
#pragma once

#include "methods/group_methods.h"

#include <string>
#include <utility>
#include <vector>

namespace quantllm {

struct RunEstimate {
  std::vector<std::pair<std::string, double>> memory;  // what the peak is made of, bytes
  double peak_bytes = 0;
  double flops = 0;  // floating-point operations of the whole run
};

RunEstimate estimate_group_method(const LoadedModel& model, const QuantizeRequest& opt);

// fp32 matrix-product rate of this machine with the current thread count (FLOP/s), from a probe
// of about a tenth of a second shaped like the runs' products.
double measure_matmul_rate();

// MemAvailable of /proc/meminfo in bytes (0 when unknown).
double available_memory_bytes();

}  // namespace quantllm
