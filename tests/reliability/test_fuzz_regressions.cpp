// Inputs the fuzzers (fuzz/) found to break Tapegrad, kept as unit tests. The UB cases only
// fail under UBSan (scripts/test.sh --sanitize); the values are checked in every build.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include <tapegrad/error.h>
#include <tapegrad/nn/checkpoint.h>
#include <tapegrad/nn/optim.h>
#include <tapegrad/ops.h>
#include <tapegrad/tape.h>

#include "../support/file_bytes.h"
#include "../support/test_names.h"

using M = tg::Matrix<double>;
using V = tg::Var<double>;

namespace {

// sum(x, axis) of a tensor with no elements ran Eigen's partial reduction on a null pointer.
TEST(FuzzRegression, SumOverAxisOfEmptyTensorIsZeros) {
  tg::Tape<double> tape;
  const V x = tape.variable(M::Zero(0, 3));
  const V rows = tg::sum(x, tg::Axis::Rows);
  EXPECT_EQ(rows.shape(), (tg::Shape{1, 3}));
  EXPECT_TRUE(rows.value().isZero());
  const V cols = tg::sum(tape.variable(M::Zero(4, 0)), tg::Axis::Cols);
  EXPECT_EQ(cols.shape(), (tg::Shape{4, 1}));
  EXPECT_TRUE(cols.value().isZero());
  tape.backward(tg::sum(rows));
  EXPECT_EQ(x.grad().size(), 0);
}

// concat and slice of tensors with no rows took blocks of a null pointer.
TEST(FuzzRegression, ConcatAndSliceOfEmptyTensors) {
  tg::Tape<double> tape;
  const V a = tape.variable(M::Zero(0, 3));
  const V b = tape.variable(M::Zero(0, 2));
  const V c = tg::concat_cols<double>({a, b});
  EXPECT_EQ(c.shape(), (tg::Shape{0, 5}));
  const V r = tg::concat_rows<double>({a, a});
  EXPECT_EQ(r.shape(), (tg::Shape{0, 3}));
  const V s = tg::slice_cols(a, 1, 2);
  EXPECT_EQ(s.shape(), (tg::Shape{0, 2}));
  const V t = tg::slice_rows(tape.variable(M::Zero(2, 0)), 1, 1);
  EXPECT_EQ(t.shape(), (tg::Shape{1, 0}));
  const V loss = tg::add(tg::add(tg::sum(c), tg::sum(r)), tg::sum(s));
  tape.backward(loss);
  EXPECT_EQ(loss.item(), 0.0);
}

// A broadcast with an empty output ([0 x 3] + [1 x 3]) summed the gradient back to the [1 x 3]
// input with Eigen's partial reduction of an empty array (null pointer offset).
TEST(FuzzRegression, BroadcastToEmptyOutputSendsZeroGradient) {
  tg::Tape<double> tape;
  const V a = tape.variable(M::Zero(0, 3));
  const V b = tape.variable(M::Ones(1, 3));
  const V y = tg::add(a, b);
  EXPECT_EQ(y.shape(), (tg::Shape{0, 3}));
  tape.backward(y, M::Zero(0, 3));
  EXPECT_TRUE(b.grad().isZero());
  const V z = tg::mul(tape.variable(M::Ones(2, 1)), tape.variable(M::Zero(2, 0)));
  EXPECT_EQ(z.shape(), (tg::Shape{2, 0}));
}

// affine over an empty batch ([0 x k] x [k x m] + [1 x m]) summed the empty gradient's columns
// into db with Eigen's partial sum (a null pointer offset, UB). db must come back zero, dW too.
TEST(FuzzRegression, AffineOfEmptyBatchSendsZeroBiasGradient) {
  tg::Tape<double> tape;
  const V x = tape.variable(M::Zero(0, 2));
  const V w = tape.variable(M::Ones(2, 3));
  const V b = tape.variable(M::Ones(1, 3));
  const V y = tg::affine(x, w, b);
  EXPECT_EQ(y.shape(), (tg::Shape{0, 3}));
  tape.backward(y, M::Zero(0, 3));
  EXPECT_TRUE(b.grad().isZero());
  EXPECT_TRUE(w.grad().isZero());
}

// reshape and slice with absurd sizes overflowed int64 in their checks (signed overflow is UB).
TEST(FuzzRegression, HugeSizesAreRefusedWithoutOverflow) {
  tg::Tape<double> tape;
  const V x = tape.variable(M::Ones(2, 3));
  constexpr tg::Index kMax = std::numeric_limits<tg::Index>::max();
  EXPECT_THROW(tg::reshape(x, kMax, 6), tg::ShapeError);
  EXPECT_THROW(tg::reshape(x, tg::Index{1} << 62, 4), tg::ShapeError);
  EXPECT_THROW(tg::slice_cols(x, kMax, 2), tg::ShapeError);
  EXPECT_THROW(tg::slice_rows(x, 1, kMax), tg::ShapeError);
  EXPECT_EQ(tg::reshape(x, 3, 2).shape(), (tg::Shape{3, 2}));
  EXPECT_EQ(tg::reshape(tape.variable(M::Zero(0, 4)), 0, 7).shape(), (tg::Shape{0, 7}));
}

// A mark taken before a rewind that cut the tape below it pointed into a different tape; rewinding
// to it left entries reading slots that no longer existed (Eigen assertion / heap overflow).
TEST(FuzzRegression, StaleMarkIsRefused) {
  tg::Tape<double> tape;
  tape.variable(M::Ones(1, 2));
  const tg::Mark early = tape.mark();
  const V y = tg::tanh(tape.variable(M::Ones(1, 2)));
  const tg::Mark late = tape.mark();
  tape.rewind(early);
  tape.variable(M::Ones(3, 3));
  tape.variable(M::Ones(3, 3));
  tg::sum(tg::exp(tape.variable(M::Ones(3, 3))));
  EXPECT_THROW(tape.rewind(late), tg::TapeError);
  // The early mark is still a prefix: rewinding to it twice is fine, and so is clear().
  tape.rewind(early);
  tape.rewind(early);
  // A mark of another tape whose entries would read dropped slots is refused too.
  tg::Tape<double> other;
  tg::tanh(other.variable(M::Ones(1, 1)));
  const tg::Mark foreign = other.mark();  // entries 1, values 2
  tg::Tape<double> small;
  for (int i = 0; i < 5; ++i) small.constant(M::Ones(1, 1));
  tg::tanh(small.variable(M::Ones(1, 1)));  // entry 0 writes slot 6
  EXPECT_THROW(small.rewind(foreign), tg::TapeError);
  // Still working after the refusals.
  const V z = tape.variable(M::Constant(1, 1, 0.5));
  tape.backward(tg::sum(tg::square(z)));
  EXPECT_DOUBLE_EQ(z.grad()(0, 0), 1.0);
  (void)y;
}

// ---- fuzz_checkpoint, run against the loader and saver before they were rewritten

/// A scratch directory for one test's checkpoint files.
struct ScratchDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("tapegrad_fuzz_regression_" + std::to_string(::getpid()));
  ScratchDir() { std::filesystem::create_directories(path); }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

// A tensor name or metadata that is not UTF-8 made the JSON encoder throw
// nlohmann::json::type_error out of save_checkpoint (std::terminate in the fuzzer).
TEST(FuzzRegression, CheckpointSaveOfNonUtf8NamesIsAValueError) {
  ScratchDir dir;
  const auto path = dir.path / "c.safetensors";
  tg::Parameter<double> w(M::Ones(1, 2), "w");
  EXPECT_THROW(tg::nn::save_checkpoint<double>(path, {{"W\x85", &w}}), tg::ValueError);
  EXPECT_THROW(tg::nn::save_checkpoint<double>(path, {{"w", &w}}, nullptr, 0, {{"k\xe5", "v"}}), tg::ValueError);
  EXPECT_THROW(tg::nn::save_checkpoint<double>(path, {{"w", &w}}, nullptr, 0, {{"k", "\xff"}}), tg::ValueError);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path)) << "a refused save left a temp file";
}

// A path that is a 1 TiB sparse file was read whole into memory (an allocation of 1 TiB:
// std::bad_alloc, or the sanitizer's out-of-memory abort); now the header is checked first.
TEST(FuzzRegression, CheckpointTerabyteSparseFileIsRefusedUnread) {
  ScratchDir dir;
  const auto path = dir.path / "sparse.safetensors";
  tapegrad::testing::write_bytes(path, tapegrad::testing::safetensors_bytes("{}", ""));
  std::filesystem::resize_file(path, std::uint64_t{1} << 40);
  tg::Parameter<double> w(M::Ones(1, 2), "w");
  EXPECT_THROW(tg::nn::load_checkpoint<double>(path, {{"w", &w}}), tg::CheckpointError);
  EXPECT_THROW((void)tg::nn::read_safetensors(path), tg::CheckpointError);
  EXPECT_EQ(w.value, M::Ones(1, 2));
}

// A negative Adagrad accumulator was accepted; the next step took its square root and turned
// the weights into NaN.
TEST(FuzzRegression, CheckpointNegativeAdagradAccumulatorIsRefused) {
  ScratchDir dir;
  const auto path = dir.path / "adagrad.safetensors";
  tg::Parameter<double> w(M::Ones(1, 2), "w");
  tg::nn::Adagrad<double> adagrad({&w});
  tg::nn::save_checkpoint<double>(path, {{"w", &w}}, &adagrad, 1);
  // Data is in name order, so 'optim.adagrad.sum.w' (two zeros) comes first, right after the header.
  std::string bytes = tapegrad::testing::read_bytes(path);
  std::uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  const std::size_t at = 8 + static_cast<std::size_t>(header);
  ASSERT_EQ(bytes.compare(at, 16, std::string(16, '\0')), 0);
  const double minus_one = -1.0;
  std::memcpy(bytes.data() + at + 8, &minus_one, sizeof minus_one);
  tapegrad::testing::write_bytes(path, bytes);
  w.value.setConstant(3.0);
  try {
    tg::nn::load_checkpoint<double>(path, {{"w", &w}}, &adagrad);
    ADD_FAILURE() << "a negative accumulator was accepted";
  } catch (const tg::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("optim.adagrad.sum.w"), std::string::npos) << e.what();
  }
  EXPECT_EQ(w.value, M::Constant(1, 2, 3.0));
}

}  // namespace
