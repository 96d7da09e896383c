// Generator of the llama.cpp golden files in this folder (not built with the tests): writes the same
// content through our GGUFWriter / ImportanceMatrix and through llama.cpp's own gguf API (the calls
// llama-imatrix's save_imatrix makes, for the imatrix), compares the bytes, and has each side read
// the other's file. tests/io/gguf_test.cpp (LlamaCppGolden) rebuilds the same content and compares
// with the kept files, so llama.cpp is not needed to run the tests.
//
// Build against a llama.cpp checkout with ggml built (cmake -B build && cmake --build build --target ggml-base):
//   g++ -std=c++20 gen_llama_cpp_goldens.cpp -I<quantllm>/src -I<llama.cpp>/ggml/include \
//       <build-io>/libquantllm_io.a <build-io>/libquantllm_core.a <llama.cpp>/build/ggml/src/libggml-base.a \
//       -lfmt -lpthread -lm -o gen && ./gen
// Outputs /tmp/xcheck/theirs.gguf (→ llama_cpp_writer.gguf) and /tmp/xcheck/theirs.imatrix.gguf
// (→ llama_cpp_imatrix.gguf). Set ALIGN64=1 to also check that llama.cpp reads a file of ours with
// general.alignment = 64 (llama.cpp's C writer ignores that key when placing tensors, so it cannot
// produce such a file itself).
#include "io/gguf.h"
#include "io/imatrix.h"
#include "ggml.h"
#include "gguf.h"
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

using namespace quantllm;
static std::vector<uint8_t> rd(const char* p) { std::ifstream f(p, std::ios::binary); return {std::istreambuf_iterator<char>(f), {}}; }
static std::vector<uint8_t> pattern(size_t n, int k) { std::vector<uint8_t> v(n); for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 7 + k); return v; }

struct T { const char* name; ggml_type type; std::vector<int64_t> ne; };

int main() {
  std::vector<T> ts = {{"w.f32", GGML_TYPE_F32, {6, 4}}, {"w.q8", GGML_TYPE_Q8_0, {64, 2}}, {"w.q4k", GGML_TYPE_Q4_K, {256, 3}},
                       {"w.bf16", GGML_TYPE_BF16, {3, 1}}, {"w.f16", GGML_TYPE_F16, {5}}, {"w.q6k", GGML_TYPE_Q6_K, {256, 2, 2}},
                       {"w.iq4xs", GGML_TYPE_IQ4_XS, {512}}, {"w.q2k", GGML_TYPE_Q2_K, {256, 1, 1, 2}}};
  // ours
  GGUFWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u8("u8", 200); w.add_i8("i8", -3); w.add_u16("u16", 60000); w.add_i16("i16", -300);
  w.add_u32("u32", 4000000000u); w.add_i32("i32", -7); w.add_f32("f32", 0.1f); w.add_bool("bool", true);
  w.add_u64("u64", 1ull << 40); w.add_i64("i64", -(1ll << 40)); w.add_f64("f64", 0.3);
  w.add_array<int32_t>("a.i32", {1, 2, 3}); w.add_array<float>("a.f32", {0.5f, 1.5f});
  w.add_array<std::string>("a.str", {"a", "", "▁b"}); w.add_array<bool>("a.bool", {true, false});
  if (getenv("ALIGN64")) w.add_u32("general.alignment", 64);
  std::vector<std::vector<uint8_t>> datas;
  for (size_t i = 0; i < ts.size(); ++i) {
    auto nb = *ggml_nbytes(ts[i].type, ts[i].ne);
    datas.push_back(pattern(nb, int(i)));
  }
  for (size_t i = 0; i < ts.size(); ++i) w.add_tensor(ts[i].name, ts[i].type, ts[i].ne, datas[i]);
  w.write("/tmp/xcheck/ours.gguf");

  // theirs
  gguf_context* g = gguf_init_empty();
  gguf_set_val_str(g, "general.architecture", "llama");
  gguf_set_val_u8(g, "u8", 200); gguf_set_val_i8(g, "i8", -3); gguf_set_val_u16(g, "u16", 60000); gguf_set_val_i16(g, "i16", -300);
  gguf_set_val_u32(g, "u32", 4000000000u); gguf_set_val_i32(g, "i32", -7); gguf_set_val_f32(g, "f32", 0.1f); gguf_set_val_bool(g, "bool", true);
  gguf_set_val_u64(g, "u64", 1ull << 40); gguf_set_val_i64(g, "i64", -(1ll << 40)); gguf_set_val_f64(g, "f64", 0.3);
  int32_t ai[3] = {1, 2, 3}; gguf_set_arr_data(g, "a.i32", GGUF_TYPE_INT32, ai, 3);
  float af[2] = {0.5f, 1.5f}; gguf_set_arr_data(g, "a.f32", GGUF_TYPE_FLOAT32, af, 2);
  const char* as[3] = {"a", "", "▁b"}; gguf_set_arr_str(g, "a.str", as, 3);
  int8_t ab[2] = {1, 0}; gguf_set_arr_data(g, "a.bool", GGUF_TYPE_BOOL, ab, 2);

  ggml_init_params ip = {64 << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  for (size_t i = 0; i < ts.size(); ++i) {
    ggml_tensor* t = ggml_new_tensor(ctx, ts[i].type, int(ts[i].ne.size()), ts[i].ne.data());
    ggml_set_name(t, ts[i].name);
    std::memcpy(t->data, datas[i].data(), datas[i].size());
    gguf_add_tensor(g, t);
  }
  gguf_write_to_file(g, "/tmp/xcheck/theirs.gguf", false);
  const bool same = rd("/tmp/xcheck/ours.gguf") == rd("/tmp/xcheck/theirs.gguf");
  std::printf("model-like file: ours %zu bytes, theirs %zu bytes, identical: %s\n", rd("/tmp/xcheck/ours.gguf").size(),
              rd("/tmp/xcheck/theirs.gguf").size(), same ? "yes" : "NO");

  // llama.cpp reads ours
  ggml_context* rctx = nullptr;
  gguf_init_params rp = {false, &rctx};
  gguf_context* r = gguf_init_from_file("/tmp/xcheck/ours.gguf", rp);
  std::printf("llama.cpp reads ours: %s (n_kv %lld, n_tensors %lld)\n", r ? "ok" : "FAILED", r ? (long long)gguf_get_n_kv(r) : -1,
              r ? (long long)gguf_get_n_tensors(r) : -1);
  bool data_ok = true;
  for (size_t i = 0; r && i < ts.size(); ++i) {
    ggml_tensor* t = ggml_get_tensor(rctx, ts[i].name);
    data_ok = data_ok && t && ggml_nbytes(t) == datas[i].size() && std::memcmp(t->data, datas[i].data(), datas[i].size()) == 0;
  }
  std::printf("llama.cpp sees our tensor data: %s\n", data_ok ? "ok" : "MISMATCH");
  // we read theirs
  GGUFFile f("/tmp/xcheck/theirs.gguf");
  bool ours_ok = f.tensors().size() == ts.size() && f.get_as<float>("f32") == 0.1f && f.get_array<std::string>("a.str")[2] == "▁b";
  for (size_t i = 0; i < ts.size(); ++i) ours_ok = ours_ok && std::memcmp(f.tensor(ts[i].name).data, datas[i].data(), datas[i].size()) == 0;
  std::printf("we read theirs: %s\n", ours_ok ? "ok" : "MISMATCH");

  // imatrix: ours vs llama-imatrix's save_imatrix calls
  ImportanceMatrix im;
  im.accumulate("blk.0.attn_k.weight", std::vector<float>{1, 2, 3, 4}, 5);
  im.accumulate("blk.0.attn_q.weight", std::vector<float>{2, 2, 2, 2, 2, 2, 2, 2}, 7);
  im.accumulate("blk.1.ffn_down_exps.weight", std::vector<float>{1, 1}, 3, 1, 2);
  im.datasets = {"wiki.raw"}; im.chunk_count = 4; im.chunk_size = 512;
  im.save("/tmp/xcheck/ours.imatrix.gguf");
  gguf_context* gi = gguf_init_empty();
  gguf_set_val_str(gi, "general.type", "imatrix");
  const char* ds[1] = {"wiki.raw"}; gguf_set_arr_str(gi, "imatrix.datasets", ds, 1);
  gguf_set_val_u32(gi, "imatrix.chunk_count", 4); gguf_set_val_u32(gi, "imatrix.chunk_size", 512);
  for (const auto& [name, e] : im.entries) {
    ggml_tensor* s = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, e.n_per_row(), e.n_mat());
    ggml_tensor* c = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 1, e.n_mat());
    ggml_format_name(s, "%s.in_sum2", name.c_str()); ggml_format_name(c, "%s.counts", name.c_str());
    std::memcpy(s->data, e.in_sum2.data(), e.in_sum2.size() * 4);
    for (int64_t j = 0; j < e.n_mat(); ++j) ((float*)c->data)[j] = float(e.counts[size_t(j)]);
    gguf_add_tensor(gi, s); gguf_add_tensor(gi, c);
  }
  gguf_write_to_file(gi, "/tmp/xcheck/theirs.imatrix.gguf", false);
  std::printf("imatrix file identical to llama-imatrix's layout: %s\n",
              rd("/tmp/xcheck/ours.imatrix.gguf") == rd("/tmp/xcheck/theirs.imatrix.gguf") ? "yes" : "NO");
  auto back = ImportanceMatrix::load("/tmp/xcheck/theirs.imatrix.gguf");
  std::printf("we load theirs: %zu entries, values ok: %s\n", back.entries.size(), back.values("blk.1.ffn_down_exps.weight") == im.values("blk.1.ffn_down_exps.weight") ? "yes" : "NO");
  return 0;
}
