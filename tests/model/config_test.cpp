// config.json parsing: both transformers layouts, and inputs found by fuzz/fuzz_config.cpp.
#include "core/error.h"
#include "model/config.h"

#include <gtest/gtest.h>

using namespace quantllm;

TEST(Config, NumberOutOfRangeIsAUserError) {
  // fuzz_config found this: nlohmann reports a number that overflows a double as out_of_range,
  // not as a parse error; it used to escape as an uncaught exception.
  EXPECT_THROW(parse_config_json(R"({"_remove_final_layer_norm": 9.9999e4444})", "x/config.json"), Error);
}

TEST(Config, RopeThetaFromEitherLayout) {
  const char* v4 = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 1,
    "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100, "rope_theta": 500000.0,
    "rope_scaling": {"type": "linear", "factor": 2.0}})";
  const char* v5 = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 1,
    "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100,
    "rope_parameters": {"rope_theta": 500000.0, "rope_type": "linear", "factor": 2.0}})";
  for (const char* j : {v4, v5}) {
    const ModelConfig c = parse_config_json(j);
    EXPECT_EQ(c.rope_theta, 500000.0);
    EXPECT_EQ(c.rope_scaling, RopeScaling::Linear);
    EXPECT_EQ(c.rope_factor, 2.0);
    EXPECT_EQ(c.head_dim, 16);
  }
}
