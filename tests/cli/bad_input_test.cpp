// Bad input through the CLI, as a user meets it: every corrupt or unsupported checkpoint, config,
// tokenizer or data file, and every bad flag, must end with exit status 1 and exactly one line on
// stderr ("quantllm: error: ...") that names the file (and the tensor where there is one), never a
// crash or a second line of noise. The checkpoints are small synthetic Llama models (two bf16 shards
// with an index) damaged in one way each; every case runs through both `eval ppl` and `inspect`
// where both read the damaged file.
#include "support/run.h"
#include "support/safetensors_edit.h"
#include "support/synthetic.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace quantllm;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

using test::read_st;
using test::StFile;
using test::write_st;

class BadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir;
    spec_.family = test::Family::Llama;
    spec_.hidden = 64, spec_.heads = 4, spec_.kv_heads = 2, spec_.ffn = 96, spec_.layers = 2;
    spec_.shards = 2;
    tensors_ = new test::TensorMap(test::random_tensors(spec_));
    std::string text;
    for (int i = 0; i < 20; ++i) text += "A small text for a small model, line " + std::to_string(i) + ".\n";
    std::ofstream(*tmp_ / "data.txt") << text;
  }
  static void TearDownTestSuite() {
    delete tensors_;
    delete tmp_;
  }

  // A fresh, intact copy of the checkpoint (optionally with other tensors) to damage.
  fs::path fresh(const std::string& name, const test::TensorMap* tensors = nullptr) {
    const fs::path dir = *tmp_ / name;
    fs::remove_all(dir);
    test::write_model(dir, spec_, tensors ? *tensors : *tensors_);
    return dir;
  }
  // The shard file that holds `tensor`, by the index.
  static fs::path shard_of(const fs::path& dir, const std::string& tensor) {
    const auto index = json::parse(test::read_all(dir / "model.safetensors.index.json"));
    return dir / index["weight_map"][tensor].get<std::string>();
  }
  static test::RunResult eval(const fs::path& model, const fs::path& data = data_path()) {
    return test::run_quantllm("eval ppl --model '" + model.string() + "' --data '" + data.string() + "' --ctx 16");
  }
  static test::RunResult inspect(const fs::path& model) { return test::run_quantllm("inspect '" + model.string() + "'"); }
  static fs::path data_path() { return *tmp_ / "data.txt"; }

  // Exit 1, nothing on stdout, one "quantllm: error: " line on stderr that contains every `mention`.
  static void expect_user_error(const test::RunResult& r, const std::vector<std::string>& mentions) {
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("quantllm: error: ", 0), 0u) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    for (const auto& m : mentions) EXPECT_NE(r.err.find(m), std::string::npos) << "'" << m << "' not in: " << r.err;
  }
  // Both commands that read a checkpoint fail the same way.
  static void expect_both_fail(const fs::path& dir, const std::vector<std::string>& mentions) {
    {
      SCOPED_TRACE("eval ppl");
      expect_user_error(eval(dir), mentions);
    }
    {
      SCOPED_TRACE("inspect");
      expect_user_error(inspect(dir), mentions);
    }
  }

  static inline test::TempDir* tmp_ = nullptr;
  static inline test::SyntheticSpec spec_;
  static inline test::TensorMap* tensors_ = nullptr;
};

const std::string kUp = "model.layers.1.mlp.up_proj.weight";

TEST_F(BadInput, IntactCheckpointWorks) {
  // The baseline every damaged copy starts from runs cleanly.
  const auto dir = fresh("intact");
  const auto r = eval(dir);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(inspect(dir).status, 0);
}

TEST_F(BadInput, TruncatedShard) {
  const auto dir = fresh("truncated");
  const auto shard = shard_of(dir, kUp);
  fs::resize_file(shard, fs::file_size(shard) - 100);  // the last tensor's data is cut short
  expect_both_fail(dir, {shard.filename().string(), "truncated"});
}

TEST_F(BadInput, ShardTruncatedInsideItsHeader) {
  const auto dir = fresh("truncated-header");
  const auto shard = shard_of(dir, kUp);
  fs::resize_file(shard, 40);
  expect_both_fail(dir, {shard.filename().string()});
  fs::resize_file(shard, 3);  // not even the 8-byte length
  expect_both_fail(dir, {shard.filename().string()});
}

TEST_F(BadInput, HeaderOffsetsOutsideTheFile) {
  const auto dir = fresh("offsets");
  const auto shard = shard_of(dir, kUp);
  auto f = read_st(shard);
  // Same length, moved past the end of the data section.
  auto& off = f.header[kUp]["data_offsets"];
  const uint64_t len = off[1].get<uint64_t>() - off[0].get<uint64_t>();
  off = json::array({f.data.size() + 64, f.data.size() + 64 + len});
  write_st(shard, f);
  expect_both_fail(dir, {shard.filename().string(), kUp});
}

TEST_F(BadInput, OverlappingTensors) {
  const auto dir = fresh("overlap");
  const auto shard = shard_of(dir, kUp);
  auto f = read_st(shard);
  const auto& up = f.header[kUp]["data_offsets"];
  // Point another tensor of the same byte size in this shard at the same bytes.
  for (auto& [name, entry] : f.header.items()) {
    if (name == kUp || name == "__metadata__" || entry["shape"] != f.header[kUp]["shape"]) continue;
    entry["data_offsets"] = up;
    break;
  }
  write_st(shard, f);
  expect_both_fail(dir, {shard.filename().string(), "overlap"});
}

TEST_F(BadInput, DtypeDisagreesWithByteCount) {
  const auto dir = fresh("dtype");
  const auto shard = shard_of(dir, kUp);
  auto f = read_st(shard);
  f.header[kUp]["dtype"] = "F32";  // BF16 bytes described as F32: half the bytes it would need
  write_st(shard, f);
  expect_both_fail(dir, {shard.filename().string(), kUp});
}

TEST_F(BadInput, UnknownDtype) {
  const auto dir = fresh("dtype-unknown");
  const auto shard = shard_of(dir, kUp);
  auto f = read_st(shard);
  f.header[kUp]["dtype"] = "Q9";
  write_st(shard, f);
  expect_both_fail(dir, {shard.filename().string(), kUp, "Q9"});
}

TEST_F(BadInput, ShapeDisagreesWithByteCount) {
  const auto dir = fresh("shape-bytes");
  const auto shard = shard_of(dir, kUp);
  auto f = read_st(shard);
  f.header[kUp]["shape"] = json::array({96, 65});
  write_st(shard, f);
  expect_both_fail(dir, {shard.filename().string(), kUp});
}

TEST_F(BadInput, ShapeDisagreesWithConfig) {
  // A well-formed file whose tensor does not fit config.json (intermediate_size 96).
  auto t = *tensors_;
  t[kUp] = {{95, 64}, std::vector<float>(95 * 64, 0.0f)};
  const auto dir = fresh("shape-config", &t);
  expect_both_fail(dir, {dir.filename().string(), kUp, "[95, 64]", "[96, 64]"});
}

TEST_F(BadInput, IntegerTensorWhereWeightsBelong) {
  // Right shape and byte count, but stored as I16: cannot be widened to fp32 weights.
  const auto dir = fresh("int-dtype");
  const auto shard = shard_of(dir, kUp);
  auto f = read_st(shard);
  f.header[kUp]["dtype"] = "I16";
  write_st(shard, f);
  SCOPED_TRACE("eval ppl");
  expect_user_error(eval(dir), {dir.filename().string(), kUp, "I16"});
}

TEST_F(BadInput, TensorMissing) {
  auto t = *tensors_;
  t.erase(kUp);
  const auto dir = fresh("missing", &t);
  expect_both_fail(dir, {dir.filename().string(), kUp, "missing"});
}

TEST_F(BadInput, TensorLeftOver) {
  auto t = *tensors_;
  const std::string extra = "model.layers.0.self_attn.rotary_scale.weight";
  t[extra] = {{4}, {1, 2, 3, 4}};
  const auto dir = fresh("leftover", &t);
  expect_both_fail(dir, {dir.filename().string(), extra});
}

TEST_F(BadInput, IndexListsATensorTheShardLacks) {
  const auto dir = fresh("index-extra");
  auto index = json::parse(test::read_all(dir / "model.safetensors.index.json"));
  index["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors";
  test::write_json(dir / "model.safetensors.index.json", index);
  expect_both_fail(dir, {"model-00001-of-00002.safetensors", "model.layers.9.mlp.up_proj.weight"});
}

TEST_F(BadInput, IndexNamesAMissingShard) {
  const auto dir = fresh("index-shard");
  fs::remove(shard_of(dir, kUp));
  expect_both_fail(dir, {shard_of(dir, kUp).filename().string()});
}

TEST_F(BadInput, MalformedIndex) {
  const auto dir = fresh("index-json");
  std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map": {"a": )";
  expect_both_fail(dir, {"model.safetensors.index.json"});
}

TEST_F(BadInput, UnknownArchitectureListsTheSupportedOnes) {
  const auto dir = fresh("arch");
  auto cfg = test::config_json(spec_);
  cfg["architectures"] = json::array({"GPTNeoXForCausalLM"});
  cfg["model_type"] = "gpt_neox";
  test::write_json(dir / "config.json", cfg);
  expect_both_fail(dir, {"config.json", "GPTNeoXForCausalLM", "LlamaForCausalLM", "MistralForCausalLM",
                         "Qwen2ForCausalLM", "OPTForCausalLM"});
}

TEST_F(BadInput, MalformedConfigJson) {
  const auto dir = fresh("config-json");
  const std::string text = test::config_json(spec_).dump(2);
  std::ofstream(dir / "config.json") << text.substr(0, text.size() / 2);
  expect_both_fail(dir, {(dir / "config.json").string()});
}

TEST_F(BadInput, ConfigFieldOfTheWrongType) {
  const auto dir = fresh("config-type");
  auto cfg = test::config_json(spec_);
  cfg["hidden_size"] = "64";
  test::write_json(dir / "config.json", cfg);
  expect_both_fail(dir, {"config.json", "hidden_size"});
}

TEST_F(BadInput, ConfigHeadsDoNotDivideIntoKvHeads) {
  const auto dir = fresh("config-gqa");
  auto cfg = test::config_json(spec_);
  cfg["num_key_value_heads"] = 3;
  test::write_json(dir / "config.json", cfg);
  expect_both_fail(dir, {"config.json", "num_key_value_heads"});
}

TEST_F(BadInput, MissingConfigJson) {
  const auto dir = fresh("config-missing");
  fs::remove(dir / "config.json");
  expect_both_fail(dir, {dir.filename().string(), "config.json"});
}

TEST_F(BadInput, MalformedTokenizerJson) {
  const auto dir = fresh("tokenizer-json");
  const std::string text = test::read_all(dir / "tokenizer.json");
  std::ofstream(dir / "tokenizer.json", std::ios::trunc) << text.substr(0, 5000);
  expect_both_fail(dir, {"tokenizer.json"});
}

TEST_F(BadInput, UnsupportedTokenizerModel) {
  const auto dir = fresh("tokenizer-model");
  auto t = json::parse(test::read_all(dir / "tokenizer.json"));
  t["model"] = {{"type", "Unigram"}, {"vocab", json::array()}};
  test::write_json(dir / "tokenizer.json", t);
  expect_both_fail(dir, {"tokenizer.json", "Unigram"});
}

TEST_F(BadInput, MissingTokenizerJson) {
  const auto dir = fresh("tokenizer-missing");
  fs::remove(dir / "tokenizer.json");
  expect_both_fail(dir, {"tokenizer.json"});
}

TEST_F(BadInput, TokenizerLargerThanTheModelVocabulary) {
  // Token ids the embedding matrix has no row for: refused, not read out of bounds.
  auto s = spec_;
  s.vocab = 300;  // nearly every word of the text has a larger id
  auto t = test::random_tensors(s);
  const fs::path dir = *tmp_ / "vocab-small";
  test::write_model(dir, s, t);
  SCOPED_TRACE("eval ppl");
  expect_user_error(eval(dir), {"300"});
}

TEST_F(BadInput, DataFileNotUtf8) {
  const auto dir = fresh("data-utf8");
  const auto data = *tmp_ / "latin1.txt";
  std::ofstream(data, std::ios::binary) << "caf\xe9 au lait, na\xefve\n";  // Latin-1, not UTF-8
  expect_user_error(eval(dir, data), {data.string(), "UTF-8"});
}

TEST_F(BadInput, DataFileMissingOrTooShort) {
  const auto dir = fresh("data-missing");
  expect_user_error(eval(dir, *tmp_ / "no-such.txt"), {(*tmp_ / "no-such.txt").string()});
  const auto tiny = *tmp_ / "tiny.txt";
  std::ofstream(tiny) << "Hi.";
  expect_user_error(eval(dir, tiny), {"window"});
}

TEST_F(BadInput, NonexistentOrNonModelPath) {
  const auto missing = *tmp_ / "no-such-model";
  {
    SCOPED_TRACE("eval missing");
    expect_user_error(eval(missing), {missing.string()});
  }
  {
    SCOPED_TRACE("inspect missing");
    expect_user_error(inspect(missing), {missing.string()});
  }
  {
    SCOPED_TRACE("eval on a text file");
    expect_user_error(eval(data_path()), {data_path().string()});
  }
  const auto empty = *tmp_ / "empty-dir";
  fs::create_directories(empty);
  {
    SCOPED_TRACE("inspect an empty directory");
    expect_user_error(inspect(empty), {empty.string()});
  }
}

TEST_F(BadInput, NoSafetensorsInTheDirectory) {
  const auto dir = fresh("no-weights");
  std::vector<fs::path> weights;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json")
      weights.push_back(e.path());
  for (const auto& p : weights) fs::remove(p);
  expect_both_fail(dir, {dir.filename().string()});
}

TEST(BadFlags, UnknownFlagsAndMissingOptionsExitOne) {
  for (const std::string args : {"eval ppl --model x --data y --no-such-flag", "inspect x --frobnicate",
                                  "eval ppl --data y", "eval ppl --model x --data y --ctx notanumber",
                                  "no-such-command", "eval"}) {
    SCOPED_TRACE(args);
    const auto r = test::run_quantllm(args);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("quantllm: ", 0), 0u) << r.err;
  }
}

}  // namespace
