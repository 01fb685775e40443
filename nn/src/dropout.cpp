// Masks from the keyed generator and the three ops built on them. Nothing here records an op
// of its own: mask_mul, where and the scalar ops carry the gradients.
#include <tapegrad/nn/dropout.h>

#include <string_view>

#include <tapegrad/error.h>

namespace tapegrad::nn {
namespace {

void check_p(std::string_view fn, double p) {
  TAPEGRAD_CHECK(p >= 0.0 && p < 1.0, ValueError, "{}: p (DropoutOptions::p) is {}; it must be in [0, 1)", fn, p);
}

void check_first_row(std::string_view fn, Index first_row) {
  TAPEGRAD_CHECK(first_row >= 0, ValueError, "{}: first_row (DropoutOptions::first_row) is {}; it must be >= 0", fn,
                 first_row);
}

// The mask's step: the one given, else the tape's time step.
template <class S>
std::int64_t step_of(std::string_view fn, const Var<S>& x, const DropoutOptions& o) {
  if (o.step) return *o.step;
  const int t = x.tape().current_time();
  TAPEGRAD_CHECK(t != kNoTime, ValueError,
                 "{}: no time step for the mask: record the step inside tape.time_step(t) (run_tbptt, unroll and "
                 "forward_sequence do) or set DropoutOptions::step",
                 fn);
  return t;
}

// Rows [row0, row0 + rows) of m from draw `key`: element (i, j) of the block is draw
// (first_row + i) * cols + j; value(u) maps the uniform to the mask value.
template <class S, class Value>
void fill_block(Matrix<S>& m, Index row0, Index rows, Index first_row, const Generator& gen, const DrawKey& key,
                Value value) {
  const std::uint64_t state = gen.draw_state(key);
  const Index cols = m.cols();
  for (Index i = 0; i < rows; ++i) {
    for (Index j = 0; j < cols; ++j) {
      const auto k = static_cast<std::uint64_t>((first_row + i) * cols + j);
      m(row0 + i, j) = value(Generator::to_unit(splitmix64(state, k)));
    }
  }
}

template <class S>
auto dropout_value(double p) {
  const S keep = static_cast<S>(1.0 / (1.0 - p));
  return [p, keep](double u) { return u < p ? S(0) : keep; };
}

}  // namespace

template <class S>
Matrix<S> dropout_mask(const Generator& gen, const DrawKey& key, Index rows, Index cols, double p, Index first_row) {
  check_p("dropout_mask", p);
  check_first_row("dropout_mask", first_row);
  Matrix<S> m(rows, cols);
  fill_block<S>(m, 0, rows, first_row, gen, key, dropout_value<S>(p));
  return m;
}

template <class S>
Matrix<S> zoneout_mask(const Generator& gen, const DrawKey& key, Index rows, Index cols, double p, Index first_row) {
  check_p("zoneout_mask", p);
  check_first_row("zoneout_mask", first_row);
  Matrix<S> m(rows, cols);
  fill_block<S>(m, 0, rows, first_row, gen, key, [p](double u) { return u < p ? S(1) : S(0); });
  return m;
}

template <class S>
Var<S> dropout(const Var<S>& x, const Generator& gen, const DropoutOptions& o) {
  check_p("dropout", o.p);
  if (!o.training || o.p == 0.0) return x;
  const DrawKey key{o.stream, step_of("dropout", x, o)};
  return mask_mul(x, dropout_mask<S>(gen, key, x.rows(), x.cols(), o.p, o.first_row));
}

template <class S>
Var<S> dropout_sequence(const Var<S>& x_all, Index batch, const Generator& gen, const DropoutOptions& o) {
  check_p("dropout_sequence", o.p);
  TAPEGRAD_CHECK(batch >= 1 && x_all.rows() % batch == 0, ShapeError,
                 "dropout_sequence: x_all is {}, not [T*B x n] for batch B = {}", x_all.shape(), batch);
  if (!o.training || o.p == 0.0) return x_all;
  check_first_row("dropout_sequence", o.first_row);
  const std::int64_t first = step_of("dropout_sequence", x_all, o);
  Matrix<S> m(x_all.rows(), x_all.cols());
  for (Index t = 0; t * batch < m.rows(); ++t) {
    fill_block<S>(m, t * batch, batch, o.first_row, gen, DrawKey{o.stream, first + t}, dropout_value<S>(o.p));
  }
  return mask_mul(x_all, m);
}

template <class S>
Var<S> variational_dropout(const Var<S>& x, const Generator& gen, const DropoutOptions& o) {
  check_p("variational_dropout", o.p);
  TAPEGRAD_CHECK(!o.step, ValueError,
                 "variational_dropout: DropoutOptions::step is {}, but a variational mask is one per sequence; "
                 "leave step unset (call Generator::next_sequence() for a new mask)",
                 o.step.value_or(0));
  if (!o.training || o.p == 0.0) return x;
  return mask_mul(x, dropout_mask<S>(gen, DrawKey{o.stream, kWholeSequence}, x.rows(), x.cols(), o.p, o.first_row));
}

template <class S>
Var<S> zoneout(const Var<S>& h_prev, const Var<S>& h_new, const Generator& gen, const DropoutOptions& o) {
  check_p("zoneout", o.p);
  TAPEGRAD_CHECK(h_prev.shape() == h_new.shape(), ShapeError, "zoneout: h_prev is {} but h_new is {}", h_prev.shape(),
                 h_new.shape());
  if (o.p == 0.0) return h_new;
  if (!o.training) return h_prev * static_cast<S>(o.p) + h_new * static_cast<S>(1.0 - o.p);
  const DrawKey key{o.stream, step_of("zoneout", h_new, o)};
  return where(zoneout_mask<S>(gen, key, h_new.rows(), h_new.cols(), o.p, o.first_row), h_prev, h_new);
}

#define TAPEGRAD_NN_INSTANTIATE_DROPOUT(S)                                                            \
  template Matrix<S> dropout_mask<S>(const Generator&, const DrawKey&, Index, Index, double, Index);  \
  template Matrix<S> zoneout_mask<S>(const Generator&, const DrawKey&, Index, Index, double, Index);  \
  template Var<S> dropout<S>(const Var<S>&, const Generator&, const DropoutOptions&);                 \
  template Var<S> dropout_sequence<S>(const Var<S>&, Index, const Generator&, const DropoutOptions&); \
  template Var<S> variational_dropout<S>(const Var<S>&, const Generator&, const DropoutOptions&);     \
  template Var<S> zoneout<S>(const Var<S>&, const Var<S>&, const Generator&, const DropoutOptions&);
TAPEGRAD_NN_INSTANTIATE_DROPOUT(float)
TAPEGRAD_NN_INSTANTIATE_DROPOUT(double)

}  // namespace tapegrad::nn
