// The chat-template families `generate --chat` recognizes, each against the text its Hub template renders
// for one user message with the generation prompt (written out by hand from the templates: Qwen's ChatML as
// in the Qwen3-MoE reference model's tokenizer_config.json, Gemma 3's turns, Llama 3's headers, Phi-3's).
#include "eval/generate.h"
#include "support/reference.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace quantllm;

TEST(ChatTemplate, ChatMLOfTheQwen3MoeReferenceModel) {
  std::ifstream f(test::model_dir("gutenberg-qwen3moe-21m") / "tokenizer_config.json");
  const auto cfg = nlohmann::json::parse(f);
  EXPECT_EQ(apply_chat_template(cfg["chat_template"].get<std::string>(), "Hi", ""),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, GemmaTurns) {
  // Gemma 3's template: bos_token, then "<start_of_turn>" + role ("model" for the assistant) + "\n" + text +
  // "<end_of_turn>\n", and "<start_of_turn>model\n" as the generation prompt.
  const std::string tmpl = "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ role }}\n{{ message['content'] "
                           "| trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";
  EXPECT_EQ(apply_chat_template(tmpl, "Hi", "<bos>"), "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, Llama3AndPhi3AndUnknown) {
  EXPECT_EQ(apply_chat_template("<|start_header_id|>", "Hi", "<|begin_of_text|>"),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(apply_chat_template("{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n'}}", "Hi", "<s>"),
            "<|user|>\nHi<|end|>\n<|assistant|>\n");
  EXPECT_THROW(apply_chat_template("{{ messages }}", "Hi", ""), Error);
}
