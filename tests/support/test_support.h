// Helpers shared by the test folders: checking an error's type and message, comparing matrices,
// and seeded random matrices. Header-only so every test binary stays independent of the others.
#pragma once

#include <array>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <tapegrad/error.h>
#include <tapegrad/tensor.h>

namespace tapegrad::testing {

/// fn() must throw E, and E's message must contain every one of words (the op, the argument,
/// the shapes: what a user needs to find the mistake).
template <class E, class F>
void expect_error(F fn, const std::vector<std::string>& words) {
  try {
    fn();
    ADD_FAILURE() << "no exception thrown";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const std::string& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
  }
}

/// An r x c matrix of independent N(0, scale^2) draws from rng.
inline Matrix<double> random_matrix(Index r, Index c, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> n(0.0, scale);
  Matrix<double> m(r, c);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

/// The tapegrad::Error subtypes a bad-input table row may expect.
enum class ErrorKind { Shape, Value, Tape, Numeric, Checkpoint };

inline const char* kind_name(ErrorKind k) {
  static constexpr std::array<const char*, 5> kNames{"ShapeError", "ValueError", "TapeError", "NumericError",
                                                     "CheckpointError"};
  return kNames.at(static_cast<std::size_t>(k));
}

/// Whether e is of the subtype k names.
inline bool is_kind(const Error& e, ErrorKind k) {
  switch (k) {
    case ErrorKind::Shape:
      return dynamic_cast<const ShapeError*>(&e) != nullptr;
    case ErrorKind::Value:
      return dynamic_cast<const ValueError*>(&e) != nullptr;
    case ErrorKind::Tape:
      return dynamic_cast<const TapeError*>(&e) != nullptr;
    case ErrorKind::Numeric:
      return dynamic_cast<const NumericError*>(&e) != nullptr;
    case ErrorKind::Checkpoint:
      return dynamic_cast<const CheckpointError*>(&e) != nullptr;
  }
  return false;
}

/// got has want's shape and is within tol of it in every element; want must not be (nearly) all
/// zero, since a comparison with a zero reference passes for the wrong reasons.
inline void expect_near(const Matrix<double>& got, const Matrix<double>& want, const std::string& what,
                        double tol = 1e-10) {
  ASSERT_EQ(got.rows(), want.rows()) << what;
  ASSERT_EQ(got.cols(), want.cols()) << what;
  const double err = (got - want).cwiseAbs().maxCoeff();
  EXPECT_LE(err, tol) << what << ": max abs error " << err;
  EXPECT_GT(want.cwiseAbs().maxCoeff(), 1e-8) << what << ": reference is trivially zero";
}

}  // namespace tapegrad::testing
