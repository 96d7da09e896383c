// safetensors: round trips, exact bytes of the writer, every kind of bad header and bad sharded
// checkpoint (each must throw one Error line naming the file and tensor), and the real sharded
// reference checkpoints in ../shared/models.
#include "io/safetensors.h"

#include "io_test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

using namespace quantllm;
using namespace quantllm::testing;

namespace {

// A safetensors file from a header text and data bytes, exactly as given (no padding added).
std::vector<uint8_t> raw_file(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b;
  put_u64(b, header.size());
  put_str(b, header);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::vector<uint8_t> zeros(size_t n) { return std::vector<uint8_t>(n, 0); }

// Writes a file with `header` and `data_bytes` zero bytes and expects opening it to fail naming `needles`.
void expect_bad(const TempDir& dir, const std::string& header, size_t data_bytes, std::vector<std::string> needles) {
  const fs::path p = dir / "bad.safetensors";
  write_bytes(p, raw_file(header, zeros(data_bytes)));
  needles.push_back(p.string());
  expect_error([&] { SafetensorsFile f(p); }, needles);
}

}  // namespace

TEST(Safetensors, WriterBytesAreExact) {
  // One F32 tensor "a" of shape [2] = {1.0, -2.0}. The header is compact JSON, padded with spaces
  // to a multiple of 8, as the reference implementation writes it.
  const std::string json = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(json.size(), 54u);
  std::vector<uint8_t> expected;
  put_u64(expected, 56);
  put_str(expected, json + "  ");
  for (uint8_t b : {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0}) expected.push_back(b);

  const auto t = TensorData::from_f32("a", Tensor({2}, {1.0f, -2.0f}));
  EXPECT_EQ(safetensors_bytes({t}), expected);

  TempDir dir;
  write_safetensors(dir / "a.safetensors", {t});
  EXPECT_EQ(read_bytes(dir / "a.safetensors"), expected);
}

TEST(Safetensors, RoundTripAllDtypes) {
  TempDir dir;
  std::vector<TensorData> ts;
  ts.push_back(TensorData::from_f32("w.f32", Tensor({2, 3}, {1, 2, 3, 4, 5, -6.5f})));
  ts.push_back(TensorData::from_f32_as("w.f16", Tensor({3}, {0.5f, -1.0f, 65504.0f}), DType::F16));
  ts.push_back(TensorData::from_f32_as("w.bf16", Tensor({1, 2}, {3.0f, -0.25f}), DType::BF16));
  ts.push_back(TensorData::from_values<int32_t>("q.i32", DType::I32, {2, 2}, {1, -2, 3, 1 << 30}));
  ts.push_back(TensorData::from_values<int8_t>("q.i8", DType::I8, {3}, {-128, 0, 127}));
  ts.push_back(TensorData::from_values<uint8_t>("q.u8", DType::U8, {5}, {0, 1, 2, 254, 255}));
  ts.push_back(TensorData::from_values<double>("d.f64", DType::F64, {1}, {0.1}));
  ts.push_back(TensorData::from_values<float>("empty", DType::F32, {0, 4}, {}));
  ts.push_back(TensorData::from_values<float>("scalar", DType::F32, {}, {7.0f}));
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "quoted \" and \n newline"}};
  const fs::path p = dir / "all.safetensors";
  write_safetensors(p, ts, meta);

  const auto bytes = read_bytes(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[size_t(i)];
  EXPECT_EQ(n % 8, 0u) << "data section must start 8-byte aligned";

  SafetensorsFile f(p);
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.tensors().size(), ts.size());
  for (const auto& t : ts) {
    SCOPED_TRACE(t.name);
    const TensorView& v = f.tensors().at(t.name);
    EXPECT_EQ(v.dtype, t.dtype);
    EXPECT_EQ(v.shape, t.shape);
    ASSERT_EQ(v.nbytes, t.bytes.size());
    EXPECT_TRUE(std::equal(t.bytes.begin(), t.bytes.end(), v.data));
  }
  EXPECT_EQ(f.tensors().at("w.f16").to_f32().data, (std::vector<float>{0.5f, -1.0f, 65504.0f}));
  EXPECT_EQ(f.tensors().at("w.bf16").to_f32().data, (std::vector<float>{3.0f, -0.25f}));
  EXPECT_EQ(f.tensors().at("scalar").to_f32().data, (std::vector<float>{7.0f}));
  EXPECT_TRUE(f.tensors().at("empty").to_f32().data.empty());
  EXPECT_FLOAT_EQ(f.tensors().at("d.f64").to_f32().data[0], 0.1f);
  expect_error([&] { (void)f.tensors().at("q.i32").to_f32(); }, {"q.i32", "I32"});

  // A second write over the same path replaces the file and leaves no temporary behind.
  write_safetensors(p, {ts[0]});
  EXPECT_EQ(SafetensorsFile(p).tensors().size(), 1u);
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1u);
}

TEST(Safetensors, UnalignedDataConvertsCorrectly) {
  // A header of odd length puts the BF16 data at an odd address in the (page-aligned) mapping.
  std::string h = R"({"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})";
  if (h.size() % 2 == 0) h += ' ';
  ASSERT_EQ((8 + h.size()) % 2, 1u);
  TempDir dir;
  write_bytes(dir / "u.safetensors", raw_file(h, {0x80, 0x3f, 0x00, 0xc0}));  // 1.0, -2.0
  SafetensorsFile f(dir / "u.safetensors");
  EXPECT_EQ(f.tensors().at("x").to_f32().data, (std::vector<float>{1.0f, -2.0f}));
}

TEST(Safetensors, WriterRejectsBadTensors) {
  TempDir dir;
  TensorData bad{"w", DType::F32, {2, 2}, std::vector<uint8_t>(12)};
  expect_error([&] { write_safetensors(dir / "o.safetensors", {bad}); }, {"o.safetensors", "'w'", "16", "12"});
  const auto t = TensorData::from_f32("w", Tensor({1}, {1.0f}));
  expect_error([&] { write_safetensors(dir / "o.safetensors", {t, t}); }, {"'w'", "twice"});
  EXPECT_FALSE(fs::exists(dir / "o.safetensors"));
  expect_error([&] { write_safetensors(dir / "no_such_dir" / "o.safetensors", {t}); }, {"o.safetensors"});
}

// ---------------------------------------------------------------------------------------------
// Bad single files

TEST(SafetensorsBad, TooShortAndEmpty) {
  TempDir dir;
  write_bytes(dir / "e.safetensors", {});
  expect_error([&] { SafetensorsFile f(dir / "e.safetensors"); }, {(dir / "e.safetensors").string(), "too short"});
  write_bytes(dir / "s.safetensors", {1, 2, 3});
  expect_error([&] { SafetensorsFile f(dir / "s.safetensors"); }, {(dir / "s.safetensors").string()});
  expect_error([&] { SafetensorsFile f(dir / "missing.safetensors"); }, {"missing.safetensors", "cannot open"});
  expect_error([&] { SafetensorsFile f(dir.path()); }, {dir.path().string(), "not a regular file"});
}

TEST(SafetensorsBad, HeaderLengthBeyondFile) {
  TempDir dir;
  std::vector<uint8_t> b;
  put_u64(b, 1000);
  put_str(b, "{}");
  write_bytes(dir / "h.safetensors", b);
  expect_error([&] { SafetensorsFile f(dir / "h.safetensors"); }, {"h.safetensors", "header length 1000"});
  b.clear();
  put_u64(b, ~uint64_t{0});  // would overflow 8 + N
  put_str(b, "{}");
  write_bytes(dir / "h.safetensors", b);
  expect_error([&] { SafetensorsFile f(dir / "h.safetensors"); }, {"h.safetensors", "header length"});
}

TEST(SafetensorsBad, MalformedJson) {
  TempDir dir;
  expect_bad(dir, R"({"a":{"dtype":"F32",)", 0, {"malformed JSON"});
  expect_bad(dir, R"([1,2,3])", 0, {"not an object"});
  expect_bad(dir, "{\"a\xff\":1}", 0, {"malformed JSON"});  // invalid UTF-8
  expect_bad(dir, R"({"a":[1]})", 0, {"'a'", "not a JSON object"});
  expect_bad(dir, R"({"a":{"dtype":"F32","shape":[1]}})", 4, {"'a'", "data_offsets"});
  expect_bad(dir, R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", 4, {"'a'", "dtype"});
  expect_bad(dir, R"({"a":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", 4, {"'a'", "shape"});
  expect_bad(dir, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4, {"'a'", "data_offsets"});
  expect_bad(dir, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}})", 4, {"'a'", "data_offsets"});
  expect_bad(dir, R"({"__metadata__":{"k":1}})", 0, {"__metadata__", "'k'"});
  expect_bad(dir, R"({"__metadata__":[]})", 0, {"__metadata__"});
}

TEST(SafetensorsBad, UnknownDtype) {
  TempDir dir;
  expect_bad(dir, R"({"w":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}})", 1, {"'w'", "unknown dtype 'F7'"});
}

TEST(SafetensorsBad, ShapeNotNonNegativeIntegers) {
  TempDir dir;
  expect_bad(dir, R"({"w":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}})", 8, {"'w'", "shape"});
  expect_bad(dir, R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}})", 8, {"'w'", "shape"});
  // numel overflows 64 bits: must be refused, not wrapped round to a small byte count
  expect_bad(dir, R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}})", 0,
             {"'w'", "too large"});
  expect_bad(dir, R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})", 0,
             {"'w'", "too large"});
}

TEST(SafetensorsBad, ByteCountMismatch) {
  TempDir dir;
  expect_bad(dir, R"({"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}})", 8,
             {"'w'", "BF16 [2, 3] needs 12 bytes", "hold 8"});
}

TEST(SafetensorsBad, OffsetsOutsideDataSection) {
  TempDir dir;
  expect_bad(dir, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8, {"'w'", "outside the data section"});
  expect_bad(dir, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]}})",
             8, {"'w'"});
  expect_bad(dir, R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8, {"'w'", "begin > end"});
  expect_bad(dir, R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[9,9]}})", 8, {"'w'", "outside"});
}

TEST(SafetensorsBad, OverlappingTensors) {
  TempDir dir;
  expect_bad(dir,
             R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
             12, {"'b'", "overlap", "'a'"});
  // A tensor wholly inside another.
  expect_bad(dir,
             R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
             R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
             16, {"overlap"});
  // Zero-byte tensors occupy nothing: sharing an offset is fine, as are gaps.
  const fs::path p = dir / "ok.safetensors";
  write_bytes(p, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                          R"("b":{"dtype":"U8","shape":[2],"data_offsets":[10,12]}})",
                          zeros(12)));
  EXPECT_EQ(SafetensorsFile(p).tensors().size(), 3u);
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints

namespace {

// Two shards: s1 holds a [2] F32, s2 holds b [3] BF16 and c [1] F32.
void make_sharded(const TempDir& dir) {
  write_safetensors(dir / "s1.safetensors", {TensorData::from_f32("a", Tensor({2}, {1, 2}))});
  write_safetensors(dir / "s2.safetensors", {TensorData::from_f32_as("b", Tensor({3}, {1, 2, 3}), DType::BF16),
                                             TensorData::from_f32("c", Tensor({1}, {4}))});
  write_text(dir / "model.safetensors.index.json",
             R"({"metadata":{"total_size":18},"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","c":"s2.safetensors"}})");
}

}  // namespace

TEST(Checkpoint, ShardedAndSingle) {
  TempDir dir;
  make_sharded(dir);
  Checkpoint ck(dir.path());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ck.total_bytes(), 8u + 6u + 4u);
  EXPECT_EQ(ck.get("b").to_f32().data, (std::vector<float>{1, 2, 3}));
  EXPECT_TRUE(ck.has("c"));
  EXPECT_FALSE(ck.has("d"));
  expect_error([&] { ck.get("d"); }, {"'d'", dir.path().string()});

  Checkpoint one(dir / "s2.safetensors");  // a single file given directly
  EXPECT_EQ(one.names(), (std::vector<std::string>{"b", "c"}));

  TempDir single;
  write_safetensors(single / "model.safetensors", {TensorData::from_f32("x", Tensor({1}, {1}))});
  EXPECT_EQ(Checkpoint(single.path()).names(), (std::vector<std::string>{"x"}));

  TempDir empty;
  expect_error([&] { Checkpoint c(empty.path()); }, {empty.path().string(), "model.safetensors"});
  expect_error([&] { Checkpoint c(empty / "nope"); }, {"nope"});
}

TEST(CheckpointBad, TruncatedShard) {
  TempDir dir;
  make_sharded(dir);
  fs::resize_file(dir / "s2.safetensors", fs::file_size(dir / "s2.safetensors") - 3);
  expect_error([&] { Checkpoint c(dir.path()); }, {(dir / "s2.safetensors").string(), "'c'", "truncated"});
  // Truncated inside the header itself.
  fs::resize_file(dir / "s2.safetensors", 20);
  expect_error([&] { Checkpoint c(dir.path()); }, {(dir / "s2.safetensors").string(), "header length"});
}

TEST(CheckpointBad, IndexNamesMissingShard) {
  TempDir dir;
  make_sharded(dir);
  fs::remove(dir / "s2.safetensors");
  expect_error([&] { Checkpoint c(dir.path()); }, {(dir / "s2.safetensors").string(), "does not exist"});
}

TEST(CheckpointBad, TensorInIndexButNotInShard) {
  TempDir dir;
  make_sharded(dir);
  write_text(dir / "model.safetensors.index.json",
             R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","c":"s2.safetensors","d":"s1.safetensors"}})");
  expect_error([&] { Checkpoint c(dir.path()); }, {(dir / "s1.safetensors").string(), "'d'", "does not contain"});
}

TEST(CheckpointBad, ShardTensorNotInIndex) {
  TempDir dir;
  make_sharded(dir);
  write_text(dir / "model.safetensors.index.json", R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  expect_error([&] { Checkpoint c(dir.path()); }, {(dir / "s2.safetensors").string(), "'c'", "not listed"});
}

TEST(CheckpointBad, TensorInWrongShard) {
  TempDir dir;
  make_sharded(dir);
  write_text(dir / "model.safetensors.index.json",
             R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","c":"s1.safetensors"}})");
  expect_error([&] { Checkpoint c(dir.path()); }, {"'c'"});
}

TEST(CheckpointBad, MalformedIndex) {
  TempDir dir;
  make_sharded(dir);
  const std::string idx = (dir / "model.safetensors.index.json").string();
  write_text(dir / "model.safetensors.index.json", R"({"weight_map":{"a":"s1.safe)");
  expect_error([&] { Checkpoint c(dir.path()); }, {idx, "malformed JSON"});
  write_text(dir / "model.safetensors.index.json", R"({"metadata":{}})");
  expect_error([&] { Checkpoint c(dir.path()); }, {idx, "weight_map"});
  write_text(dir / "model.safetensors.index.json", R"({"weight_map":{"a":3}})");
  expect_error([&] { Checkpoint c(dir.path()); }, {idx, "'a'"});
  write_text(dir / "model.safetensors.index.json", R"({"weight_map":{"a":"../s1.safetensors"}})");
  expect_error([&] { Checkpoint c(dir.path()); }, {idx, "'a'", "../s1.safetensors"});
}

// ---------------------------------------------------------------------------------------------
// The real reference checkpoints

TEST(CheckpointReal, GutenbergLlama) {
  const fs::path dir = fs::path(QUANTLLM_SHARED_DIR) / "models" / "gutenberg-llama-33m";
  if (!fs::exists(dir)) GTEST_SKIP() << dir << " not present";
  Checkpoint ck(dir);
  EXPECT_EQ(ck.names().size(), 75u);
  EXPECT_EQ(ck.total_bytes(), 66733056u);  // index.json's metadata.total_size
  const TensorView& q = ck.get("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.dtype, DType::BF16);
  EXPECT_EQ(q.shape, (Shape{512, 512}));
  EXPECT_EQ(ck.get("model.embed_tokens.weight").shape, (Shape{8000, 512}));
  EXPECT_EQ(ck.get("lm_head.weight").shape, (Shape{8000, 512}));
  const Tensor qf = q.to_f32();
  double sumsq = 0;
  for (float v : qf.data) {
    ASSERT_TRUE(std::isfinite(v));
    sumsq += double(v) * v;
  }
  EXPECT_GT(sumsq, 0.0);

  // Round trip: copy some tensors (raw BF16 and widened F32) and read them back bit-exact.
  TempDir tmp;
  std::vector<TensorData> out;
  for (const char* name : {"model.layers.0.self_attn.q_proj.weight", "model.norm.weight", "model.layers.3.mlp.down_proj.weight"}) {
    const TensorView& v = ck.get(name);
    out.push_back(TensorData{v.name, v.dtype, v.shape, std::vector<uint8_t>(v.data, v.data + v.nbytes)});
  }
  out.push_back(TensorData::from_f32("q_f32", qf));
  write_safetensors(tmp / "copy.safetensors", out, {{"format", "pt"}});
  SafetensorsFile back(tmp / "copy.safetensors");
  for (const auto& t : out) {
    const TensorView& v = back.tensors().at(t.name);
    EXPECT_EQ(v.dtype, t.dtype);
    EXPECT_EQ(v.shape, t.shape);
    ASSERT_EQ(v.nbytes, t.bytes.size());
    EXPECT_EQ(std::memcmp(v.data, t.bytes.data(), v.nbytes), 0) << t.name;
  }
  EXPECT_EQ(back.tensors().at("q_f32").to_f32().data, qf.data);
}

TEST(CheckpointReal, GutenbergOpt) {
  const fs::path dir = fs::path(QUANTLLM_SHARED_DIR) / "models" / "gutenberg-opt-28m";
  if (!fs::exists(dir)) GTEST_SKIP() << dir << " not present";
  Checkpoint ck(dir);
  EXPECT_EQ(ck.names().size(), 100u);
  EXPECT_EQ(ck.total_bytes(), 56707072u);
  const TensorView& e = ck.get("model.decoder.embed_positions.weight");
  EXPECT_EQ(e.dtype, DType::F16);
  EXPECT_EQ(e.shape, (Shape{2050, 512}));
}
