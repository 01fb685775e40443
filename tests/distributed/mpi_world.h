// What the MPI tests share: the world communicator, a small LSTM + linear head, a fixed data set
// every rank generates identically, and the relative difference the tests bound.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include <tapegrad/distributed/distributed.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/module.h>

#include "support/test_support.h"

namespace tapegrad::distributed::testing {

const Communicator& world();

constexpr Index kIn = 3;
constexpr Index kHidden = 4;
constexpr Index kOut = 2;

template <class S>
struct TinyModel : nn::Module<S> {
  nn::LstmCell<S> cell;
  nn::Linear<S> head;

  explicit TinyModel(std::uint64_t seed, Index hidden = kHidden) : TinyModel(std::mt19937_64(seed), hidden) {}
  TinyModel(std::mt19937_64&& rng, Index hidden)
      : cell(nn::LstmCellOptions{kIn, hidden}, rng), head({hidden, kOut}, rng) {
    this->name_parameters();
  }
  void visit_parameters(const nn::ParameterVisitor<S>& v) override {
    v.child("cell", cell);
    v.child("head", head);
  }
};

// T steps of a global batch of `rows` sequences: inputs x_t and targets y_t, the same on every rank.
struct Dataset {
  std::vector<Matrix<double>> x, y;
  Dataset(int steps, Index rows, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (int t = 0; t < steps; ++t) {
      x.push_back(tapegrad::testing::random_matrix(rows, kIn, rng));
      y.push_back(tapegrad::testing::random_matrix(rows, kOut, rng, 0.5));
    }
  }
};

// The given rows of m, as S.
template <class S>
Matrix<S> take_rows(const Matrix<double>& m, const std::vector<Index>& rows) {
  Matrix<S> out(static_cast<Index>(rows.size()), m.cols());
  for (std::size_t i = 0; i < rows.size(); ++i) out.row(static_cast<Index>(i)) = m.row(rows[i]).cast<S>();
  return out;
}

inline std::vector<Index> all_rows(Index n) {
  std::vector<Index> rows;
  for (Index i = 0; i < n; ++i) rows.push_back(i);
  return rows;
}

// ||a - b|| / ||b|| (0 when both are zero).
template <class S>
double relative_difference(const Matrix<S>& a, const Matrix<S>& b) {
  const double scale = b.template cast<double>().norm();
  const double diff = (a - b).template cast<double>().norm();
  return scale == 0 ? diff : diff / scale;
}

}  // namespace tapegrad::distributed::testing
