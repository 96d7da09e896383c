// Calibration windows: the Mersenne Twister stream must equal CPython's `random` module (the
// expected numbers below were printed by CPython 3.11: random.seed(s); random.randint(...)), so
// that our windows are the ones the reference GPTQ scripts draw.
#include "calib/calibration.h"
#include "core/error.h"

#include <gtest/gtest.h>

using namespace quantllm;

TEST(PyRandom, MatchesCPython) {
  PyRandom r0(0);
  const int64_t expect0[] = {885440, 403958, 794772, 933488, 441001};
  for (int64_t e : expect0) EXPECT_EQ(r0.randint(0, 1000000), e);
  PyRandom r1(0);  // k > 32 bits: two words per draw
  const int64_t expect1[] = {849735321549, 87705687125, 1067347797602};
  for (int64_t e : expect1) EXPECT_EQ(r1.randint(0, int64_t(1) << 40), e);
  PyRandom r2(12345678901ull);  // a seed wider than 32 bits
  const int64_t expect2[] = {76, 41, 49, 45, 68};
  for (int64_t e : expect2) EXPECT_EQ(r2.randint(0, 100), e);
  EXPECT_DOUBLE_EQ(r2.random(), 0.7056680926281265);
}

TEST(Calibration, WindowsFollowTheRecipe) {
  std::vector<int32_t> ids(1000);
  for (int i = 0; i < 1000; ++i) ids[size_t(i)] = 10 + i;
  const auto w = sample_windows(ids, 1, 3, 8, 0);
  ASSERT_EQ(w.tokens.size(), 24u);
  PyRandom r(0);
  for (int s = 0; s < 3; ++s) {
    const int64_t start = r.randint(0, 1000 - 7 - 1);
    EXPECT_EQ(w.tokens[size_t(s * 8)], 1);  // BOS
    for (int t = 1; t < 8; ++t) EXPECT_EQ(w.tokens[size_t(s * 8 + t)], ids[size_t(start + t - 1)]);
  }
  EXPECT_THROW(sample_windows(std::vector<int32_t>(5, 3), 1, 1, 8, 0), Error);  // shorter than a window
  EXPECT_THROW(sample_windows(ids, 1, 0, 8, 0), Error);
}
