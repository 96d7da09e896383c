// Reporting of broken invariants (QL_ASSERT): print where and why, then abort.
#include "core/error.h"

#include <cstdio>
#include <cstdlib>

namespace quantllm {

void assertion_failed(const char* expr, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "quantllm: internal error: assertion '%s' failed at %s:%d%s%s\n", expr, file, line,
               msg.empty() ? "" : ": ", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace quantllm
