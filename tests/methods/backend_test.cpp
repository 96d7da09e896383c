// One test suite, run on every calibration backend (methods/backend.h): the CPU's two ways of running
// windows (chunks through threaded ops; one window per task) and the CUDA GPU (skipped on a machine
// without one). Each backend is checked against the naive double-precision forward pass
// (support/naive_forward.h, written from transformers' modeling code), not against another backend:
//  - Σx² and Σ|x| at every activation point of every block, read through the block spec's slots (the
//    point a slot reads must hold what that linear reads in transformers), block after block (advance);
//  - GPTQ of each point's readers from the backend's own Hessian against quant/gptq.h on the naive
//    Hessian Σxᵀx;
//  - round-to-nearest of a slot equal to quant/group_quant.h's on the same weights, and the slot then
//    holding the dequantized weights.
// On Llama (GQA), Qwen3 (per-head q/k norms) and OPT (LayerNorm, biases, ReLU): tiny random checkpoints.
//
// Tolerances. Each backend computes in fp32 (the GPU here with fp32 products, not tf32): a sum over
// n terms of unit-size products moves by ≈ √n·2⁻²⁴ relative, and two blocks chain a few such sums,
// so a per-channel statistic (a sum over 256 tokens of such values) is compared at 1e-4 of its value.
// GPTQ feeds a flipped code's error forward, so its codes are compared by the fraction that agree
// (≥ 99%) and its objective at 1% (as tests/cuda does).
#include "formats/open.h"
#include "methods/backend.h"
#include "quant/gptq.h"
#include "quant/group_quant.h"
#include "quantllm/util.h"
#include "support/naive_forward.h"
#include "support/run.h"
#include "support/synthetic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <tuple>

namespace quantllm {
namespace {

enum class Where { Cpu, CpuPerWindow, Cuda };

test::SyntheticSpec family_spec(const std::string& family) {
  test::SyntheticSpec s;
  s.layers = 2, s.dtype = "float32", s.seed = 77;
  if (family == "llama") {
    s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.ffn = 96;
  } else if (family == "qwen3") {
    s.family = test::Family::Qwen3;
    s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 32, s.ffn = 96, s.tied = true, s.rope_theta = 1e6;
  } else {
    s.family = test::Family::Opt;
    s.hidden = 64, s.heads = 4, s.kv_heads = 4, s.ffn = 128;
  }
  return s;
}

Tensor tensor_of(const test::HostTensor& h) {
  Tensor t(Shape(h.shape));
  t.data = h.v;
  return t;
}

class Backend : public ::testing::TestWithParam<std::tuple<Where, std::string>> {
 protected:
  static constexpr int64_t kWindows = 8, kSeqlen = 32;  // 256 tokens: every Hessian (in ≤ 128) of full rank

  void SetUp() override {
    const auto [where, family] = GetParam();
    if (where == Where::Cuda && !cuda_device_usable()) GTEST_SKIP() << "no usable CUDA device";
    spec_ = family_spec(family);
    tensors_ = test::random_tensors(spec_);
    test::write_model(tmp_ / "m", spec_, tensors_);
    model_ = open_model(tmp_ / "m");
    windows_.n = kWindows, windows_.seqlen = kSeqlen;
    for (int64_t i = 0; i < kWindows * kSeqlen; ++i) windows_.tokens.push_back(int32_t((i * 7919 + 11) % 4000));
    // The naive forward of each window, keeping every block linear's input: inputs_[layer][linear] = [tokens, in].
    for (int64_t w = 0; w < kWindows; ++w) {
      const std::vector<int32_t> tok(windows_.tokens.begin() + w * kSeqlen, windows_.tokens.begin() + (w + 1) * kSeqlen);
      test::reference_logits(spec_, tensors_, tok, [&](int64_t layer, const std::string& linear, const test::Rows& x) {
        test::Rows& all = inputs_[layer][linear];
        all.insert(all.end(), x.begin(), x.end());
      });
    }
    options_.device = where == Where::Cuda ? Device::CUDA : Device::CPU;
    options_.per_window = where == Where::CpuPerWindow;
    options_.gpu_tf32 = false;
  }

  std::unique_ptr<CalibrationBackend> backend() const { return make_calibration_backend(model_, windows_, options_); }

  // Σ f(x) per channel of the naive input of `linear` in `layer`.
  std::vector<double> naive_sums(int64_t layer, const std::string& linear, bool squares) const {
    const test::Rows& x = inputs_.at(layer).at(linear);
    const int64_t T = kWindows * kSeqlen, in = int64_t(x.size()) / T;
    std::vector<double> s(size_t(in), 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < in; ++j) {
        const double v = x[size_t(t * in + j)];
        s[size_t(j)] += squares ? v * v : std::fabs(v);
      }
    return s;
  }

  std::vector<double> naive_hessian(int64_t layer, const std::string& linear) const {
    const test::Rows& x = inputs_.at(layer).at(linear);
    const int64_t T = kWindows * kSeqlen, in = int64_t(x.size()) / T;
    std::vector<double> h(size_t(in * in), 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < in; ++i)
        for (int64_t j = 0; j < in; ++j) h[size_t(i * in + j)] += x[size_t(t * in + i)] * x[size_t(t * in + j)];
    return h;
  }

  test::TempDir tmp_;
  test::SyntheticSpec spec_;
  test::TensorMap tensors_;
  LoadedModel model_;
  CalibWindows windows_;
  BackendOptions options_;
  std::map<int64_t, std::map<std::string, test::Rows>> inputs_;
};

TEST_P(Backend, PointStatisticsMatchTheNaiveForwardBlockAfterBlock) {
  const auto b = backend();
  for (int layer = 0; layer < int(spec_.layers); ++layer) {
    b->load_block(layer, true);
    const BlockSpec& bs = model_.config.block(layer);
    const std::vector<PointSums> sq = b->collect_square_sums();
    const std::vector<PointSums> ab = b->collect_abs_sums(1);
    ASSERT_EQ(sq.size(), bs.points.size());
    ASSERT_EQ(ab.size(), bs.points.size());
    for (const LinearSlot& slot : bs.linears) {
      for (const bool squares : {true, false}) {
        const PointSums& got = (squares ? sq : ab)[size_t(slot.input)];
        const std::vector<double> want = naive_sums(layer, slot.name, squares);
        EXPECT_EQ(got.tokens, kWindows * kSeqlen);
        ASSERT_EQ(got.sum.size(), want.size()) << layer << " " << slot.name;
        for (size_t j = 0; j < want.size(); ++j)
          ASSERT_NEAR(got.sum[j], want[j], 1e-4 * std::fabs(want[j]) + 1e-9)
              << "layer " << layer << " " << slot.name << (squares ? " Σx² " : " Σ|x| ") << "channel " << j;
      }
    }
    b->advance();
  }
}

TEST_P(Backend, GptqFromItsHessianMatchesGptqOnTheNaiveHessian) {
  const auto b = backend();
  const int layer = 1;
  b->load_block(0, true);
  b->advance();
  b->load_block(layer, true);
  const BlockSpec& bs = model_.config.block(layer);
  std::vector<int> points(bs.points.size());
  for (size_t p = 0; p < points.size(); ++p) points[p] = int(p);
  b->collect_hessians(points, false);
  const GPTQOptions o{.quant = {.bits = 4, .group_size = 32}, .act_order = true};
  for (const int p : points) {
    const std::vector<int> readers = bs.readers(p);
    const std::vector<GptqLayerResult> got = b->gptq(p, readers, o);
    ASSERT_EQ(got.size(), readers.size());
    const std::vector<double> h = naive_hessian(layer, bs.linears[size_t(readers[0])].name);
    for (size_t r = 0; r < readers.size(); ++r) {
      const std::string name = bs.linear_tensor(readers[r]);
      EXPECT_EQ(got[r].slot, readers[r]);
      const GPTQResult want = gptq_quantize(tensor_of(tensors_.at(name + ".weight")), h, o, name);
      ASSERT_EQ(got[r].q.qweight.size(), want.q.qweight.size()) << name;
      size_t same = 0;
      for (size_t i = 0; i < want.q.qweight.size(); ++i) same += got[r].q.qweight[i] == want.q.qweight[i];
      EXPECT_GE(double(same), 0.99 * double(want.q.qweight.size())) << name;
      EXPECT_EQ(got[r].q.g_idx, want.q.g_idx) << name;
      EXPECT_NEAR(got[r].stats.objective, want.stats.objective, 0.01 * want.stats.objective) << name;
      // The slot now holds what the checkpoint computes.
      EXPECT_EQ(b->tensor(name + ".weight").data, got[r].q.dequantize().data) << name;
    }
  }
}

TEST_P(Backend, RtnOfASlotEqualsTheRounder) {
  const auto b = backend();
  b->load_block(0, true);
  const BlockSpec& bs = model_.config.block(0);
  const QuantParams p{.bits = 3, .group_size = 16};
  for (int s = 0; s < int(bs.linears.size()); ++s) {
    const std::string name = bs.linear_tensor(s) + ".weight";
    const GroupQuantized want = quantize_rtn(tensor_of(tensors_.at(name)), p, name);
    const GroupQuantized got = b->rtn(s, p);
    EXPECT_EQ(got.qweight, want.qweight) << name;
    EXPECT_EQ(got.scales.data, want.scales.data) << name;
    EXPECT_EQ(got.zeros, want.zeros) << name;
    EXPECT_EQ(b->tensor(name).data, want.dequantize().data) << name;
  }
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<Where, std::string>>& info) {
  const Where w = std::get<0>(info.param);
  return std::string(w == Where::Cpu ? "cpu" : w == Where::CpuPerWindow ? "cpu_per_window" : "cuda") + "_" +
         std::get<1>(info.param);
}

INSTANTIATE_TEST_SUITE_P(Devices, Backend,
                         ::testing::Combine(::testing::Values(Where::Cpu, Where::CpuPerWindow, Where::Cuda),
                                            ::testing::Values("llama", "qwen3", "opt")),
                         case_name);

}  // namespace
}  // namespace quantllm
