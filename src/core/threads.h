// The process-wide thread pool and parallel_for.
//
// Work is split into contiguous chunks, one per thread, and every index is computed by exactly the
// same code whatever the thread count; code that reduces across indices must do so in a fixed order
// afterwards. That is what makes outputs byte-identical for 1 and N threads.
#pragma once

#include "quantllm/util.h"

#include <cstdint>
#include <functional>

namespace quantllm {

// set_num_threads / num_threads (include/quantllm/util.h): the threads parallel_for uses (default:
// hardware concurrency); setting it also sets BLAS's count.

// Calls fn(begin, end) on disjoint sub-ranges covering [0, n), in parallel. Ranges are at least
// min_chunk long (to keep tiny loops on one thread). Blocks until all are done. Re-entrant calls
// (parallel_for inside parallel_for) run serially.
// A parallel_for called from another thread while one is running runs serially on its own thread.
void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn, int64_t min_chunk = 1);

// From here on, every parallel_for on the calling thread runs serially on it: for background work (a
// shard written while blocks compute) that must never take the pool from the thread doing the main work.
void run_serially_on_this_thread();

}  // namespace quantllm
