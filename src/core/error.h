// Errors and invariants.
//
// A problem the user can cause (a bad path, a corrupt file, a bad flag) throws quantllm::Error with
// one line of context naming the file / tensor / flag; the CLI prints it and exits 1. A broken
// invariant of our own code is a bug: QL_ASSERT aborts in every build type, because a silently
// corrupt checkpoint is worse than a crash.
#pragma once

#include "quantllm/error.h"

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace quantllm {

// Throws Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

[[noreturn]] void assertion_failed(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace quantllm

// Always-on assertion (not compiled out in Release).
#define QL_ASSERT(cond, ...)                                                                \
  do {                                                                                      \
    if (!(cond)) [[unlikely]]                                                               \
      ::quantllm::assertion_failed(#cond, __FILE__, __LINE__, ::fmt::format("" __VA_ARGS__)); \
  } while (0)
