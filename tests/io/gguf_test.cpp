// GGUF container: a file whose bytes are computed by hand from the spec, write → read round trips
// of every value type and several tensor types, and corrupt files (each must throw one Error line
// naming the file and the key or tensor, never crash).
#include "io/gguf.h"

#include "io_test_util.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace quantllm;
using namespace quantllm::testing;

namespace {

// ggml type ids used below (llama.cpp ggml.h).
constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kQ4_K = 12, kQ6_K = 14, kBF16 = 30;

using Bytes = std::vector<uint8_t>;

// Test-side serializer pieces, written from the spec independently of the writer.
void put_gstr(Bytes& b, const std::string& s) {
  put_u64(b, s.size());
  put_str(b, s);
}
Bytes header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
  Bytes b;
  put_str(b, "GGUF");
  put_u32(b, version);
  put_u64(b, n_tensors);
  put_u64(b, n_kv);
  return b;
}
void kv_u32(Bytes& b, const std::string& key, uint32_t v) {
  put_gstr(b, key);
  put_u32(b, 4);  // UINT32
  put_u32(b, v);
}
void tensor_info(Bytes& b, const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
  put_gstr(b, name);
  put_u32(b, uint32_t(ne.size()));
  for (uint64_t d : ne) put_u64(b, d);
  put_u32(b, type);
  put_u64(b, offset);
}
void pad_to(Bytes& b, size_t align) {
  while (b.size() % align) b.push_back(0);
}

GGUFFile parse(const Bytes& b) { return GGUFFile(b.data(), b.size(), "mem.gguf"); }

void expect_corrupt(const Bytes& b, std::vector<std::string> needles) {
  needles.push_back("mem.gguf");
  expect_error([&] { parse(b); }, needles);
}

}  // namespace

TEST(GGUF, HandComputedBytes) {
  // Expected file, byte by byte from the GGUF spec:
  Bytes expected = {'G', 'G', 'U', 'F', 3, 0, 0, 0,  // magic, version 3 (u32)
                    1, 0, 0, 0, 0, 0, 0, 0,          // n_tensors = 1 (u64)
                    3, 0, 0, 0, 0, 0, 0, 0};         // n_kv = 3 (u64)
  // kv "a": UINT8 (type 0) = 7
  for (uint8_t x : std::initializer_list<uint8_t>{1, 0, 0, 0, 0, 0, 0, 0, 'a', 0, 0, 0, 0, 7}) expected.push_back(x);
  // kv "s": STRING (type 8) = "hi"
  for (uint8_t x : std::initializer_list<uint8_t>{1, 0, 0, 0, 0, 0, 0, 0, 's', 8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 'h', 'i'}) expected.push_back(x);
  // kv "arr": ARRAY (9) of INT32 (5), 2 items: 1, -1
  for (uint8_t x : std::initializer_list<uint8_t>{3, 0, 0, 0, 0, 0, 0, 0, 'a', 'r', 'r', 9, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
                    1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
    expected.push_back(x);
  // tensor info "t": n_dims 1, ne[0] = 2, type F32 (0), offset 0
  for (uint8_t x : std::initializer_list<uint8_t>{1, 0, 0, 0, 0, 0, 0, 0, 't', 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    0, 0, 0, 0, 0, 0, 0, 0})
    expected.push_back(x);
  ASSERT_EQ(expected.size(), 129u);
  expected.resize(160, 0);  // zero padding to the default alignment of 32
  for (uint8_t x : std::initializer_list<uint8_t>{0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40}) expected.push_back(x);  // 1.0f, 2.0f
  expected.resize(192, 0);  // the data of every tensor is padded to the alignment too

  GGUFWriter w;
  w.add_u8("a", 7);
  w.add_string("s", "hi");
  w.add_array<int32_t>("arr", {1, -1});
  const float vals[2] = {1.0f, 2.0f};
  w.add_tensor_view("t", kF32, {2}, reinterpret_cast<const uint8_t*>(vals), sizeof vals);
  EXPECT_EQ(w.to_bytes(), expected);

  const GGUFFile f = parse(expected);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset(), 160u);
  ASSERT_EQ(f.kvs().size(), 3u);
  EXPECT_EQ(f.kvs()[0].first, "a");
  EXPECT_EQ(f.get_as<uint8_t>("a"), 7);
  EXPECT_EQ(f.get_as<std::string>("s"), "hi");
  EXPECT_EQ(f.get_array<int32_t>("arr"), (std::vector<int32_t>{1, -1}));
  const GGUFTensorInfo& t = f.tensor("t");
  EXPECT_EQ(t.ne, (std::vector<int64_t>{2}));
  EXPECT_EQ(t.data, expected.data() + 160);
  EXPECT_EQ(t.to_f32().data, (std::vector<float>{1.0f, 2.0f}));

  // Version 2 has the same layout and is read too.
  Bytes v2 = expected;
  v2[4] = 2;
  EXPECT_EQ(parse(v2).version(), 2u);
}

TEST(GGUF, RoundTripAllValueTypes) {
  GGUFWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u8("u8", 255);
  w.add_i8("i8", -128);
  w.add_u16("u16", 65535);
  w.add_i16("i16", -32768);
  w.add_u32("u32", 4000000000u);
  w.add_i32("i32", -2000000000);
  w.add_f32("f32", 3.5f);
  w.add_bool("bool", true);
  w.add_string("str", std::string("nul\0inside", 10));
  w.add_u64("u64", ~uint64_t{0});
  w.add_i64("i64", std::numeric_limits<int64_t>::min());
  w.add_f64("f64", -1e300);
  w.add_array<uint8_t>("a.u8", {0, 1, 255});
  w.add_array<int8_t>("a.i8", {-1, 2});
  w.add_array<uint16_t>("a.u16", {7});
  w.add_array<int16_t>("a.i16", {-7, 7});
  w.add_array<uint32_t>("a.u32", {1, 2, 3});
  w.add_array<int32_t>("a.i32", {});
  w.add_array<float>("a.f32", {0.5f, -0.0f, INFINITY});
  w.add_array<bool>("a.bool", {true, false, true});
  w.add_array<std::string>("a.str", {"", "tok", "▁the", std::string(1000, 'x')});
  w.add_array<uint64_t>("a.u64", {1ull << 63});
  w.add_array<int64_t>("a.i64", {-5});
  w.add_array<double>("a.f64", {1.0 / 3});
  w.add_u32("general.alignment", 64);

  // Tensors of several types; ne in ggml order ([in, out]).
  std::vector<float> f32(6 * 4);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = float(i) - 3.5f;
  Bytes f32_bytes(f32.size() * 4);
  std::memcpy(f32_bytes.data(), f32.data(), f32_bytes.size());
  Bytes q8(2 * 34 * 2, 0x11);   // Q8_0: [64, 2] → 2 blocks a row × 34 bytes
  Bytes q4k(3 * 144, 0x22);     // Q4_K: [256, 3]
  Bytes q6k(210 * 2 * 2, 0x33); // Q6_K: [256, 2, 2]
  Bytes f16(2 * 5, 0x44);       // F16: [5]
  Bytes bf16(2 * 3, 0x55);      // BF16: [3, 1]
  w.add_tensor("w.f32", kF32, {6, 4}, f32_bytes);
  w.add_tensor("w.q8", kQ8_0, {64, 2}, q8);
  w.add_tensor("w.q4k", kQ4_K, {256, 3}, q4k);
  w.add_tensor("w.q6k", kQ6_K, {256, 2, 2}, q6k);
  w.add_tensor("w.f16", kF16, {5}, f16);
  w.add_tensor("w.bf16", kBF16, {3, 1}, bf16);
  w.add_tensor("w.empty", kQ4_0, {32, 0}, {});

  TempDir dir;
  const fs::path p = dir / "all.gguf";
  w.write(p);
  EXPECT_EQ(read_bytes(p), w.to_bytes());

  const GGUFFile f(p);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  ASSERT_EQ(f.kvs().size(), w.n_kv());
  // Same values, in the order added.
  EXPECT_EQ(f.kvs()[0].first, "general.architecture");
  EXPECT_EQ(f.kvs().back().first, "general.alignment");
  EXPECT_EQ(f.get_as<uint8_t>("u8"), 255);
  EXPECT_EQ(f.get_as<int8_t>("i8"), -128);
  EXPECT_EQ(f.get_as<uint16_t>("u16"), 65535);
  EXPECT_EQ(f.get_as<int16_t>("i16"), -32768);
  EXPECT_EQ(f.get_as<uint32_t>("u32"), 4000000000u);
  EXPECT_EQ(f.get_as<int32_t>("i32"), -2000000000);
  EXPECT_EQ(f.get_as<float>("f32"), 3.5f);
  EXPECT_EQ(f.get_as<bool>("bool"), true);
  EXPECT_EQ(f.get_as<std::string>("str"), std::string("nul\0inside", 10));
  EXPECT_EQ(f.get_as<uint64_t>("u64"), ~uint64_t{0});
  EXPECT_EQ(f.get_as<int64_t>("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f.get_as<double>("f64"), -1e300);
  EXPECT_EQ(f.get_array<bool>("a.bool"), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(f.get_array<std::string>("a.str")[2], "▁the");
  EXPECT_EQ(f.get_array<std::string>("a.str")[3].size(), 1000u);
  EXPECT_TRUE(f.get_array<int32_t>("a.i32").empty());
  EXPECT_EQ(f.get("a.i32").type(), GGUFType::ARRAY);
  EXPECT_EQ(f.get("a.i32").elem_type(), GGUFType::INT32);
  EXPECT_TRUE(std::isinf(f.get_array<float>("a.f32")[2]));
  EXPECT_TRUE(std::signbit(f.get_array<float>("a.f32")[1]));

  // Same tensors: dims, types, bytes, alignment of the data in the file.
  ASSERT_EQ(f.tensors().size(), 7u);
  const auto file_bytes = read_bytes(p);
  const std::vector<std::pair<std::string, const Bytes*>> want = {
      {"w.f32", &f32_bytes}, {"w.q8", &q8}, {"w.q4k", &q4k}, {"w.q6k", &q6k}, {"w.f16", &f16}, {"w.bf16", &bf16}};
  for (const auto& [name, bytes] : want) {
    SCOPED_TRACE(name);
    const GGUFTensorInfo& t = f.tensor(name);
    ASSERT_EQ(t.nbytes, bytes->size());
    EXPECT_EQ(std::memcmp(t.data, bytes->data(), t.nbytes), 0);
    EXPECT_EQ(t.offset % 64, 0u);
    EXPECT_EQ((f.data_offset() + t.offset) % 64, 0u);
  }
  EXPECT_EQ(f.tensor("w.q6k").ne, (std::vector<int64_t>{256, 2, 2}));
  EXPECT_EQ(f.tensor("w.q6k").shape(), (Shape{2, 2, 256}));
  EXPECT_EQ(f.tensor("w.q4k").type, kQ4_K);
  EXPECT_EQ(f.tensor("w.empty").nbytes, 0u);
  EXPECT_EQ(f.tensor("w.empty").ne, (std::vector<int64_t>{32, 0}));
  EXPECT_EQ(f.tensor("w.bf16").ne, (std::vector<int64_t>{3}));  // trailing 1 dropped, as llama.cpp writes it
  EXPECT_EQ(f.tensor("w.f32").to_f32().data, f32);
  EXPECT_EQ(f.tensor("w.f32").to_f32().shape, (Shape{4, 6}));
  expect_error([&] { (void)f.tensor("w.q8").to_f32(); }, {"w.q8", "Q8_0"});
  expect_error([&] { (void)f.tensor("nope"); }, {p.string(), "'nope'"});

  // Rebuilding a writer from what was read reproduces the file byte for byte: every value and
  // tensor survived the round trip exactly, in order.
  GGUFWriter again;
  for (const auto& [k, v] : f.kvs()) again.add(k, v);
  for (const auto& t : f.tensors()) again.add_tensor_view(t.name, t.type, t.ne, t.data, t.nbytes);
  EXPECT_EQ(again.to_bytes(), file_bytes);
}

TEST(GGUF, TypedAccessErrors) {
  GGUFWriter w;
  w.add_u32("n", 5);
  w.add_array<std::string>("toks", {"a"});
  const Bytes b = w.to_bytes();
  const GGUFFile f = parse(b);
  EXPECT_EQ(f.get("n").to_string(), "5");
  EXPECT_EQ(f.get("toks").to_string(), "[\"a\"]");
  EXPECT_EQ(f.find("missing"), nullptr);
  expect_error([&] { (void)f.get_as<uint64_t>("n"); }, {"mem.gguf", "'n'", "UINT32", "UINT64"});
  expect_error([&] { (void)f.get_array<int32_t>("toks"); }, {"mem.gguf", "'toks'", "ARRAY of STRING"});
  expect_error([&] { (void)f.get("missing"); }, {"mem.gguf", "'missing'"});
  EXPECT_TRUE(f.tensors().empty());
}

TEST(GGUF, WriterRejectsBadInput) {
  GGUFWriter w;
  w.add_u32("k", 1);
  expect_error([&] { w.add_u32("k", 2); }, {"'k'", "twice"});
  expect_error([&] { w.add_u64("general.alignment", 32); }, {"general.alignment", "UINT32"});
  expect_error([&] { w.add_u32("general.alignment", 48); }, {"general.alignment", "power of two"});
  expect_error([&] { w.add_tensor("q", kQ8_0, {33, 2}, Bytes(68)); }, {"'q'", "block size 32"});
  expect_error([&] { w.add_tensor("q", kQ8_0, {32, 2}, Bytes(67)); }, {"'q'", "68", "67"});
  expect_error([&] { w.add_tensor("q", 4, {32}, Bytes(18)); }, {"'q'", "unknown ggml type 4"});
  expect_error([&] { w.add_tensor("q", kF32, {1, 1, 1, 1, 1}, Bytes(4)); }, {"'q'", "dimensions"});
  expect_error([&] { w.add_tensor(std::string(64, 'n'), kF32, {1}, Bytes(4)); }, {"too long"});
  w.add_tensor("q", kF32, {1}, Bytes(4));
  expect_error([&] { w.add_tensor("q", kF32, {1}, Bytes(4)); }, {"'q'", "twice"});

  // An unwritable path: Error naming it, and nothing left behind.
  TempDir dir;
  expect_error([&] { w.write(dir / "no" / "x.gguf"); }, {"x.gguf"});
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(GGUF, TypeTableMatchesGgml) {
  // Block geometry from llama.cpp's ggml-common.h (QK_K = 256).
  struct Row { uint32_t id; int64_t block; size_t bytes; const char* name; };
  for (const Row& r : {Row{0, 1, 4, "F32"}, Row{1, 1, 2, "F16"}, Row{2, 32, 18, "Q4_0"}, Row{3, 32, 20, "Q4_1"},
                       Row{6, 32, 22, "Q5_0"}, Row{7, 32, 24, "Q5_1"}, Row{8, 32, 34, "Q8_0"}, Row{10, 256, 84, "Q2_K"},
                       Row{11, 256, 110, "Q3_K"}, Row{12, 256, 144, "Q4_K"}, Row{13, 256, 176, "Q5_K"},
                       Row{14, 256, 210, "Q6_K"}, Row{15, 256, 292, "Q8_K"}, Row{20, 32, 18, "IQ4_NL"},
                       Row{23, 256, 136, "IQ4_XS"}, Row{30, 1, 2, "BF16"}}) {
    const GGMLTypeSize* t = ggml_type_size(r.id);
    ASSERT_NE(t, nullptr) << r.name;
    EXPECT_EQ(t->name, r.name);
    EXPECT_EQ(t->block_size, r.block) << r.name;
    EXPECT_EQ(t->type_size, r.bytes) << r.name;
  }
  EXPECT_EQ(ggml_type_size(4), nullptr);  // Q4_2: removed from ggml
  const int64_t ne[2] = {512, 3};
  EXPECT_EQ(ggml_nbytes(kQ4_K, ne), std::optional<uint64_t>(2 * 144 * 3));
  const int64_t bad[2] = {100, 3};
  EXPECT_EQ(ggml_nbytes(kQ4_K, bad), std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// Corrupt files

TEST(GGUFBad, EveryTruncationFails) {
  GGUFWriter w;
  w.add_string("general.name", "tiny");
  w.add_array<std::string>("tokens", {"a", "bc"});
  w.add_array<float>("scores", {1, 2});
  Bytes data(34, 7);
  w.add_tensor("t0", kQ8_0, {32}, data);
  w.add_tensor("t1", kF32, {3}, Bytes(12, 1));
  const Bytes full = w.to_bytes();
  const GGUFFile ok = parse(full);
  const size_t needed = ok.data_offset() + ok.tensor("t1").offset + 12;  // end of the last tensor's data
  for (size_t n = 0; n < needed; ++n) {
    SCOPED_TRACE(n);
    expect_corrupt(Bytes(full.begin(), full.begin() + long(n)), {});
  }
  // Cutting only the padding after the last tensor leaves a valid file.
  EXPECT_NO_THROW(parse(Bytes(full.begin(), full.begin() + long(needed))));
}

TEST(GGUFBad, HeaderProblems) {
  expect_corrupt({'G', 'G', 'U'}, {"magic"});
  expect_corrupt({'G', 'G', 'M', 'L', 3, 0, 0, 0}, {"magic"});
  expect_corrupt(header(1, 0, 0), {"version 1"});
  expect_corrupt(header(4, 0, 0), {"version 4"});
  expect_corrupt(header(0x03000000, 0, 0), {"big-endian"});
  expect_corrupt(header(3, 0, 1ull << 40), {"key/value count"});
  expect_corrupt(header(3, ~0ull, 0), {"tensor count"});
  EXPECT_NO_THROW(parse(header(3, 0, 0)));  // an empty file is valid
}

TEST(GGUFBad, KeyValueProblems) {
  Bytes b = header(3, 0, 1);
  put_gstr(b, "k");
  put_u32(b, 13);  // no such type
  put_u32(b, 0);
  expect_corrupt(b, {"'k'", "unknown value type 13"});

  b = header(3, 0, 1);
  put_gstr(b, "k");
  put_u32(b, 9);  // ARRAY of ARRAY
  put_u32(b, 9);
  put_u64(b, 0);
  expect_corrupt(b, {"'k'", "arrays of arrays"});

  b = header(3, 0, 1);
  put_gstr(b, "k");
  put_u32(b, 9);  // ARRAY of STRING with an absurd count
  put_u32(b, 8);
  put_u64(b, 1ull << 60);
  put_u64(b, 0);
  expect_corrupt(b, {"'k'", "cannot fit"});

  b = header(3, 0, 1);
  put_gstr(b, "k");
  put_u32(b, 8);  // STRING longer than the file
  put_u64(b, 1ull << 62);
  put_str(b, "abc");
  expect_corrupt(b, {"'k'", "truncated"});

  b = header(3, 0, 1);
  put_u64(b, ~0ull);  // key length beyond the file
  put_str(b, "0123456789abcdef");
  expect_corrupt(b, {"key", "truncated"});

  b = header(3, 0, 2);
  kv_u32(b, "dup", 1);
  kv_u32(b, "dup", 2);
  expect_corrupt(b, {"'dup'", "twice"});

  b = header(3, 0, 1);
  kv_u32(b, "", 1);
  expect_corrupt(b, {"empty key"});

  b = header(3, 0, 1);
  kv_u32(b, "general.alignment", 24);
  expect_corrupt(b, {"general.alignment", "power of two"});

  b = header(3, 0, 1);
  put_gstr(b, "general.alignment");
  put_u32(b, 10);  // UINT64 instead of UINT32
  put_u64(b, 32);
  expect_corrupt(b, {"general.alignment", "UINT64", "UINT32"});
}

TEST(GGUFBad, TensorInfoProblems) {
  auto one = [](const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data) {
    Bytes b = header(3, 1, 0);
    tensor_info(b, name, std::move(ne), type, offset);
    pad_to(b, 32);
    b.resize(b.size() + data, 0);
    return b;
  };
  EXPECT_NO_THROW(parse(one("w", {32, 2}, kQ8_0, 0, 68)));
  expect_corrupt(one("w", {32, 2}, 5, 0, 68), {"'w'", "unknown ggml type 5"});
  expect_corrupt(one("w", {33, 2}, kQ8_0, 0, 68), {"'w'", "not a multiple of the block size"});
  expect_corrupt(one("w", {32, 2}, kQ8_0, 0, 67), {"'w'", "outside"});           // data truncated
  expect_corrupt(one("w", {32, 2}, kQ8_0, 32, 68), {"'w'", "outside"});          // offset past the data
  expect_corrupt(one("w", {32, 2}, kQ8_0, ~0ull - 31, 68), {"'w'", "outside"});  // offset + size overflows
  expect_corrupt(one("w", {32, 2}, kQ8_0, 4, 100), {"'w'", "alignment"});
  expect_corrupt(one("w", {1, 1, 1, 1, 1}, kF32, 0, 4), {"'w'", "5 dimensions"});
  expect_corrupt(one("w", {1ull << 63, 1}, kF32, 0, 4), {"'w'", "dimension 0"});
  expect_corrupt(one("w", {1ull << 32, 1ull << 32, 4}, kF32, 0, 4), {"'w'", "too large"});
  expect_corrupt(one(std::string(64, 'n'), {1}, kF32, 0, 4), {"too long"});

  Bytes b = header(3, 2, 0);
  tensor_info(b, "a", {8}, kF32, 0);
  tensor_info(b, "a", {8}, kF32, 32);
  pad_to(b, 32);
  b.resize(b.size() + 64);
  expect_corrupt(b, {"'a'", "twice"});

  b = header(3, 2, 0);
  tensor_info(b, "a", {16}, kF32, 0);   // bytes [0, 64)
  tensor_info(b, "b", {8}, kF32, 32);   // bytes [32, 64): overlaps a
  pad_to(b, 32);
  b.resize(b.size() + 64);
  expect_corrupt(b, {"'b'", "overlaps", "'a'"});

  // Data section start beyond the end of the file.
  b = header(3, 1, 0);
  tensor_info(b, "a", {0}, kF32, 0);
  expect_corrupt(b, {"data section"});
}

TEST(GGUFBad, FileErrorsNameThePath) {
  TempDir dir;
  write_bytes(dir / "bad.gguf", {'G', 'G', 'U', 'F', 9, 0, 0, 0});
  expect_error([&] { GGUFFile f(dir / "bad.gguf"); }, {(dir / "bad.gguf").string(), "version 9"});
  expect_error([&] { GGUFFile f(dir / "none.gguf"); }, {(dir / "none.gguf").string()});
  write_bytes(dir / "empty.gguf", {});
  expect_error([&] { GGUFFile f(dir / "empty.gguf"); }, {(dir / "empty.gguf").string(), "magic"});
}

// ---------------------------------------------------------------------------------------------
// Against llama.cpp's own writer: tests/io/data/llama_cpp_writer.gguf was written by llama.cpp's
// gguf API (gguf_set_val_* / gguf_set_arr_* / gguf_add_tensor / gguf_write_to_file) with the content
// below; data/gen_llama_cpp_goldens.cpp is the generator. Our writer must produce the same bytes.

namespace {
std::vector<uint8_t> pattern(size_t n, int k) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 7 + size_t(k));
  return v;
}
}  // namespace

TEST(GGUF, LlamaCppGolden) {
  const fs::path golden = fs::path(QUANTLLM_SOURCE_DIR) / "tests/io/data/llama_cpp_writer.gguf";
  ASSERT_TRUE(fs::exists(golden)) << golden;
  struct T {
    const char* name;
    uint32_t type;
    std::vector<int64_t> ne;
  };
  // F32, Q8_0, Q4_K, BF16 [3, 1] (written by llama.cpp as [3]), F16, Q6_K, IQ4_XS (23), Q2_K with 4 dims
  const std::vector<T> ts = {{"w.f32", kF32, {6, 4}},     {"w.q8", kQ8_0, {64, 2}},       {"w.q4k", kQ4_K, {256, 3}},
                             {"w.bf16", kBF16, {3, 1}},   {"w.f16", kF16, {5}},           {"w.q6k", kQ6_K, {256, 2, 2}},
                             {"w.iq4xs", 23, {512}},      {"w.q2k", 10, {256, 1, 1, 2}}};
  GGUFWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u8("u8", 200);
  w.add_i8("i8", -3);
  w.add_u16("u16", 60000);
  w.add_i16("i16", -300);
  w.add_u32("u32", 4000000000u);
  w.add_i32("i32", -7);
  w.add_f32("f32", 0.1f);
  w.add_bool("bool", true);
  w.add_u64("u64", 1ull << 40);
  w.add_i64("i64", -(1ll << 40));
  w.add_f64("f64", 0.3);
  w.add_array<int32_t>("a.i32", {1, 2, 3});
  w.add_array<float>("a.f32", {0.5f, 1.5f});
  w.add_array<std::string>("a.str", {"a", "", "▁b"});
  w.add_array<bool>("a.bool", {true, false});
  for (size_t i = 0; i < ts.size(); ++i)
    w.add_tensor(ts[i].name, ts[i].type, ts[i].ne, pattern(*ggml_nbytes(ts[i].type, ts[i].ne), int(i)));
  EXPECT_EQ(w.to_bytes(), read_bytes(golden));

  const GGUFFile f(golden);
  EXPECT_EQ(f.get_as<float>("f32"), 0.1f);
  EXPECT_EQ(f.get_array<std::string>("a.str")[2], "▁b");
  EXPECT_EQ(f.tensor("w.q2k").ne, (std::vector<int64_t>{256, 1, 1, 2}));
  EXPECT_EQ(f.tensor("w.bf16").ne, (std::vector<int64_t>{3}));
  for (size_t i = 0; i < ts.size(); ++i) {
    const GGUFTensorInfo& t = f.tensor(ts[i].name);
    const auto want = pattern(*ggml_nbytes(ts[i].type, ts[i].ne), int(i));
    ASSERT_EQ(t.nbytes, want.size()) << ts[i].name;
    EXPECT_EQ(std::memcmp(t.data, want.data(), want.size()), 0) << ts[i].name;
  }
}
