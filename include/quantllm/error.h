// quantllm::Error: what every call of the API throws for a problem the caller can cause — a bad path, a
// corrupt file, an option out of range — with one line naming the file, tensor or option. The CLI prints
// it and exits with status 1; Python raises quantllm.QuantLLMError with the same text.
#pragma once

#include <stdexcept>
#include <string>

namespace quantllm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace quantllm
