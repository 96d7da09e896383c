// Writes tests/model/qwen3_test.cpp's random-weight Qwen3 checkpoint to a directory, for computing the
// transformers reference logits of tests/data/qwen3/ (see its README.md). Not built by CMake:
//   g++ -std=c++20 -O2 -Itests -Isrc -Iinclude -DQUANTLLM_SHARED_DIR='"../shared"' \
//       tests/golden/write_qwen3_checkpoint.cpp build/libquantllm_io.a build/libquantllm_core.a -lfmt -o /tmp/wq3
//   /tmp/wq3 OUT_DIR
#include "support/synthetic.h"

#include <cstdio>

namespace quantllm::test {
// The same spec as tests/model/qwen3_test.cpp's qwen3_spec().
SyntheticSpec qwen3_spec() {
  SyntheticSpec s;
  s.family = Family::Qwen3;
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 32, s.ffn = 96, s.layers = 2, s.tied = true;
  s.rope_theta = 1e6;
  s.dtype = "float32";
  s.seed = 316;
  return s;
}
}  // namespace quantllm::test

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const auto s = quantllm::test::qwen3_spec();
  quantllm::test::write_model(argv[1], s, quantllm::test::random_tensors(s));
  return 0;
}
