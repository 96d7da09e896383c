// quantllm::AWQQuantizer (include/quantllm/awq.h): texts and file calibration, save, read back.
#include "formats/open.h"
#include "formats/quantized_model.h"
#include "quantllm/awq.h"
#include "support/reference.h"
#include "support/run.h"

#include <gtest/gtest.h>

using namespace quantllm;
using namespace quantllm::test;

TEST(AwqApi, QuantizeTextsAndSave) {
  const std::string text = read_all(data_file("gutenberg-calib.txt")).substr(0, 200000);
  AWQQuantizer q(model_dir("gutenberg-opt-28m"),
                 {.bits = 4, .group_size = 128, .zero_point = true, .version = "gemm", .seqlen = 128});
  const AWQQuantizedModel qm = q.quantize(std::vector<std::string>{text.substr(0, 100000), text.substr(100000)}, 2);
  EXPECT_EQ(qm.result().layers.size(), 6u * 6u);  // 6 blocks × q, k, v, out_proj, fc1, fc2
  TempDir dir;
  qm.save(dir / "awq");
  const LoadedModel back = open_model(dir / "awq");
  EXPECT_EQ(back.kind, "awq");
  const Model view = qm.as_model();
  const std::string name = "model.decoder.layers.0.fc1.weight";
  EXPECT_EQ(back.weights->load(name).data, view.loaded().weights->load(name).data);
}

TEST(AwqApi, BadConfigThrows) {
  const Model m(model_dir("gutenberg-opt-28m"));
  EXPECT_THROW(AWQQuantizer(m, {.bits = 9}), Error);
  EXPECT_THROW(AWQQuantizer(m, {.version = "gemv"}), Error);
  AWQQuantizer q(m, {.group_size = 100, .seqlen = 64});
  EXPECT_THROW(q.quantize(std::vector<std::string>{"far too short"}, 1), Error);
  EXPECT_THROW(q.quantize(data_file("gutenberg-calib.txt"), 1), Error);  // group size 100 does not divide 512
}
