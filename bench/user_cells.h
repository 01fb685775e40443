// Recurrent cells as a user writes them on the public cell API (nn::Cell, split step
// project_input + recur), for bench_train_step's `cell` and `cell_ops` paths: LSTM and GRU with
// the equations of nn::LstmCell / nn::GruCell, the tanh RNN, and the IndRNN of examples/indrnn
// (h' = relu(x W + b + u * h), u a [1 x H] weight per unit). Each cell's recur step is written
// two ways: kPointwise = true puts its elementwise math in one pointwise call (one tape entry, its
// backward derived), false writes it op by op. The IndRNN op by op is the example's cell itself.
// No backward is written by hand in either.
#pragma once

#include <array>
#include <random>

#include <tapegrad/nn/nn.h>
#include <tapegrad/tapegrad.h>

#include "indrnn_cell.h"  // examples/indrnn

namespace tapegrad_bench {

using tapegrad::Index;
using tapegrad::Matrix;
using tapegrad::Parameter;
using tapegrad::Var;
namespace nn = tapegrad::nn;

// The parameters of one cell, shaped like the benchmark model's; the bench binds the model's
// leaves (Cell::bind), so these values are never read.
inline Parameter<float> unused_parameter(Index rows, Index cols, const char* name) {
  return Parameter<float>(Matrix<float>::Zero(rows, cols), name);
}

// What the tanh RNN (kGates = 1) and the LSTM (4) share: W_ih [in x G], W_hh [H x G] and
// b [1 x G] with G = kGates * H, and the input projection x W_ih + b.
template <class Derived, Index kGates>
struct GatedCell : nn::Cell<Derived, float> {
  struct Weights {
    Var<float> W_ih, W_hh, b;
  };
  Parameter<float> W_ih, W_hh, b;
  static constexpr std::array kParameters{&GatedCell::W_ih, &GatedCell::W_hh, &GatedCell::b};
  GatedCell(const nn::CellOptions& o, std::mt19937_64&)
      : GatedCell::Cell(o),
        W_ih(unused_parameter(o.input_size, kGates * o.hidden_size, "W_ih")),
        W_hh(unused_parameter(o.hidden_size, kGates * o.hidden_size, "W_hh")),
        b(unused_parameter(1, kGates * o.hidden_size, "b")) {}
  Var<float> project_input(const Weights& w, const Var<float>& x) const { return affine(x, w.W_ih, w.b); }
};

template <bool kPointwise>
struct UserRnn : GatedCell<UserRnn<kPointwise>, 1> {
  static constexpr const char* kName = "UserRnn";
  using Base = GatedCell<UserRnn, 1>;
  using Base::Base;
  nn::State<float> recur(const typename Base::Weights& w, const Var<float>& xp, const nn::State<float>& s) const {
    const Var<float> hw = matmul(s.h(), w.W_hh);
    if constexpr (kPointwise) {
      return {{tapegrad::pointwise([](auto x, auto r) { return tanh(x + r); }, xp, hw)}};
    } else {
      return {{tanh(xp + hw)}};
    }
  }
};

template <bool kPointwise>
struct UserLstm : GatedCell<UserLstm<kPointwise>, 4> {
  static constexpr const char* kName = "UserLstm";
  static constexpr std::array<const char*, 2> kStateNames{"h", "c"};
  using Base = GatedCell<UserLstm, 4>;
  using Base::Base;
  nn::State<float> recur(const typename Base::Weights& w, const Var<float>& xp, const nn::State<float>& s) const {
    const Var<float> a = xp + matmul(s.h(), w.W_hh);  // gates i, f, g, o in column blocks
    if constexpr (kPointwise) {
      const auto [h, c] = tapegrad::pointwise(
          [](auto i, auto f, auto g, auto o, auto c0) {
            auto c_next = sigmoid(f) * c0 + sigmoid(i) * tanh(g);
            return std::array{sigmoid(o) * tanh(c_next), c_next};
          },
          tapegrad::columns<4>(a), s.c());
      return {{h, c}};
    } else {  // as nn::LstmCell: one sigmoid over all four blocks
      const Index n = this->hidden_size();
      const Var<float> gates = sigmoid(a);
      const Var<float> c = slice_cols(gates, n, n) * s.c() + slice_cols(gates, 0, n) * tanh(slice_cols(a, 2 * n, n));
      return {{slice_cols(gates, 3 * n, n) * tanh(c), c}};
    }
  }
};

template <bool kPointwise>
struct UserGru : nn::Cell<UserGru<kPointwise>, float> {
  static constexpr const char* kName = "UserGru";
  struct Weights {
    Var<float> W_ih, W_hh, b_ih, b_hh;
  };
  Parameter<float> W_ih, W_hh, b_ih, b_hh;
  static constexpr std::array kParameters{&UserGru::W_ih, &UserGru::W_hh, &UserGru::b_ih, &UserGru::b_hh};
  UserGru(const nn::CellOptions& o, std::mt19937_64&)
      : UserGru::Cell(o),
        W_ih(unused_parameter(o.input_size, 3 * o.hidden_size, "W_ih")),
        W_hh(unused_parameter(o.hidden_size, 3 * o.hidden_size, "W_hh")),
        b_ih(unused_parameter(1, 3 * o.hidden_size, "b_ih")),
        b_hh(unused_parameter(1, 3 * o.hidden_size, "b_hh")) {}
  Var<float> project_input(const Weights& w, const Var<float>& x) const { return affine(x, w.W_ih, w.b_ih); }
  nn::State<float> recur(const Weights& w, const Var<float>& xp, const nn::State<float>& s) const {
    const Var<float> gh = affine(s.h(), w.W_hh, w.b_hh);  // blocks r, z, n
    if constexpr (kPointwise) {
      return {{tapegrad::pointwise(
          [](auto xr, auto xz, auto xn, auto hr, auto hz, auto hn, auto h) {
            auto r = sigmoid(xr + hr);
            auto z = sigmoid(xz + hz);
            return (1 - z) * tanh(xn + r * hn) + z * h;
          },
          tapegrad::columns<3>(xp), tapegrad::columns<3>(gh), s.h())}};
    } else {  // as nn::GruCell
      const Index n = this->hidden_size();
      const Var<float> rz = sigmoid(slice_cols(xp, 0, 2 * n) + slice_cols(gh, 0, 2 * n));
      const Var<float> z = slice_cols(rz, n, n);
      const Var<float> cand = tanh(slice_cols(xp, 2 * n, n) + slice_cols(rz, 0, n) * slice_cols(gh, 2 * n, n));
      return {{(1.0F - z) * cand + z * s.h()}};
    }
  }
};

// The IndRNN of examples/indrnn with its recur step in one pointwise call (u [1 x H] broadcast
// over the batch rows); op by op it is example::IndRnnCell<float>.
struct PointwiseIndRnn : nn::Cell<PointwiseIndRnn, float> {
  static constexpr const char* kName = "PointwiseIndRnn";
  struct Weights {
    Var<float> W, u, b;
  };
  Parameter<float> W, u, b;
  static constexpr std::array kParameters{&PointwiseIndRnn::W, &PointwiseIndRnn::u, &PointwiseIndRnn::b};
  PointwiseIndRnn(const nn::CellOptions& o, std::mt19937_64&)
      : PointwiseIndRnn::Cell(o),
        W(unused_parameter(o.input_size, o.hidden_size, "W")),
        u(unused_parameter(1, o.hidden_size, "u")),
        b(unused_parameter(1, o.hidden_size, "b")) {}
  Var<float> project_input(const Weights& w, const Var<float>& x) const { return affine(x, w.W, w.b); }
  nn::State<float> recur(const Weights& w, const Var<float>& xp, const nn::State<float>& s) const {
    return {{tapegrad::pointwise([](auto x, auto weight, auto h) { return relu(x + weight * h); }, xp, w.u, s.h())}};
  }
};

}  // namespace tapegrad_bench
