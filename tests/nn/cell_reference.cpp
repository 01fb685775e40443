// Hand-derived backward passes. Notation: for y = sigmoid(a), dy/da = y (1 - y); for
// y = tanh(a), dy/da = 1 - y^2; for a = x W + b, dx = da W^T, dW = x^T da, db = colsum(da).
#include "cell_reference.h"

namespace tapegrad::test {
namespace {

Mat sigmoid(const Mat& a) { return (1.0 / (1.0 + (-a.array()).exp())).matrix(); }
Mat tanh_of(const Mat& a) { return a.array().tanh().matrix(); }

Mat normal(Index rows, Index cols, std::mt19937_64& rng, double scale) {
  std::normal_distribution<double> n(0.0, scale);
  Mat m(rows, cols);
  for (Index k = 0; k < m.size(); ++k) m.data()[k] = n(rng);
  return m;
}

}  // namespace

ReferenceProblem reference_problem(std::mt19937_64& rng, const std::vector<Shape>& param_shapes, Index batch,
                                   Index input, Index hidden, std::size_t steps) {
  ReferenceProblem p;
  for (const Shape& s : param_shapes) p.params.push_back(normal(s.rows, s.cols, rng, 0.5));
  for (std::size_t t = 0; t < steps; ++t) {
    p.xs.push_back(normal(batch, input, rng, 1.0));
    p.vs.push_back(normal(batch, hidden, rng, 1.0));
  }
  p.h0 = normal(batch, hidden, rng, 0.5);
  p.c0 = normal(batch, hidden, rng, 0.5);
  return p;
}

ReferenceRun lstm_reference(const std::vector<Mat>& params, const std::vector<Mat>& xs, const Mat& h0, const Mat& c0,
                            const std::vector<Mat>& vs) {
  const Mat& W_ih = params[0];
  const Mat& W_hh = params[1];
  const Mat& b = params[2];
  const Index H = h0.cols();
  const std::size_t T = xs.size();
  struct Saved {
    Mat i, f, g, o, c_prev, h_prev, tc;
  };
  std::vector<Saved> saved(T);
  ReferenceRun run;
  Mat h = h0;
  Mat c = c0;
  for (std::size_t t = 0; t < T; ++t) {
    Mat a = xs[t] * W_ih + h * W_hh;
    a.rowwise() += b.row(0);
    Saved& s = saved[t];
    s.i = sigmoid(a.middleCols(0, H));
    s.f = sigmoid(a.middleCols(H, H));
    s.g = tanh_of(a.middleCols(2 * H, H));
    s.o = sigmoid(a.middleCols(3 * H, H));
    s.c_prev = c;
    s.h_prev = h;
    c = (s.f.array() * c.array() + s.i.array() * s.g.array()).matrix();
    s.tc = tanh_of(c);
    h = (s.o.array() * s.tc.array()).matrix();
    run.hs.push_back(h);
    run.cs.push_back(c);
    run.loss += (vs[t].array() * h.array()).sum();
  }
  ReferenceGrads& g = run.grads;
  g.params = {Mat::Zero(W_ih.rows(), W_ih.cols()), Mat::Zero(W_hh.rows(), W_hh.cols()), Mat::Zero(1, b.cols())};
  g.xs.resize(T);
  Mat dh_next = Mat::Zero(h0.rows(), H);
  Mat dc_next = Mat::Zero(h0.rows(), H);
  for (std::size_t t = T; t-- > 0;) {
    const Saved& s = saved[t];
    const Mat dh = vs[t] + dh_next;
    const Mat dc = (dc_next.array() + dh.array() * s.o.array() * (1.0 - s.tc.array().square())).matrix();
    const Mat d_o = (dh.array() * s.tc.array()).matrix();
    const Mat d_i = (dc.array() * s.g.array()).matrix();
    const Mat d_f = (dc.array() * s.c_prev.array()).matrix();
    const Mat d_g = (dc.array() * s.i.array()).matrix();
    Mat da(h0.rows(), 4 * H);
    da.middleCols(0, H) = (d_i.array() * s.i.array() * (1.0 - s.i.array())).matrix();
    da.middleCols(H, H) = (d_f.array() * s.f.array() * (1.0 - s.f.array())).matrix();
    da.middleCols(2 * H, H) = (d_g.array() * (1.0 - s.g.array().square())).matrix();
    da.middleCols(3 * H, H) = (d_o.array() * s.o.array() * (1.0 - s.o.array())).matrix();
    g.params[0] += xs[t].transpose() * da;
    g.params[1] += s.h_prev.transpose() * da;
    g.params[2] += da.colwise().sum();
    g.xs[t] = da * W_ih.transpose();
    dh_next = da * W_hh.transpose();
    dc_next = (dc.array() * s.f.array()).matrix();
  }
  g.h0 = dh_next;
  g.c0 = dc_next;
  return run;
}

ReferenceRun gru_reference(const std::vector<Mat>& params, const std::vector<Mat>& xs, const Mat& h0,
                           const std::vector<Mat>& vs) {
  const Mat& W_ih = params[0];
  const Mat& W_hh = params[1];
  const Mat& b_ih = params[2];
  const Mat& b_hh = params[3];
  const Index H = h0.cols();
  const std::size_t T = xs.size();
  struct Saved {
    Mat r, z, n, hn, h_prev;  // hn = h W_hn + b_hn
  };
  std::vector<Saved> saved(T);
  ReferenceRun run;
  Mat h = h0;
  for (std::size_t t = 0; t < T; ++t) {
    Mat gi = xs[t] * W_ih;
    gi.rowwise() += b_ih.row(0);
    Mat gh = h * W_hh;
    gh.rowwise() += b_hh.row(0);
    Saved& s = saved[t];
    s.r = sigmoid(gi.middleCols(0, H) + gh.middleCols(0, H));
    s.z = sigmoid(gi.middleCols(H, H) + gh.middleCols(H, H));
    s.hn = gh.middleCols(2 * H, H);
    s.n = tanh_of((gi.middleCols(2 * H, H).array() + s.r.array() * s.hn.array()).matrix());
    s.h_prev = h;
    h = ((1.0 - s.z.array()) * s.n.array() + s.z.array() * h.array()).matrix();
    run.hs.push_back(h);
    run.loss += (vs[t].array() * h.array()).sum();
  }
  ReferenceGrads& g = run.grads;
  g.params = {Mat::Zero(W_ih.rows(), W_ih.cols()), Mat::Zero(W_hh.rows(), W_hh.cols()), Mat::Zero(1, b_ih.cols()),
              Mat::Zero(1, b_hh.cols())};
  g.xs.resize(T);
  Mat dh_next = Mat::Zero(h0.rows(), H);
  for (std::size_t t = T; t-- > 0;) {
    const Saved& s = saved[t];
    const Mat dh = vs[t] + dh_next;
    const Mat dn = (dh.array() * (1.0 - s.z.array())).matrix();
    const Mat dz = (dh.array() * (s.h_prev.array() - s.n.array())).matrix();
    const Mat dan = (dn.array() * (1.0 - s.n.array().square())).matrix();
    const Mat dr = (dan.array() * s.hn.array()).matrix();
    const Mat dar = (dr.array() * s.r.array() * (1.0 - s.r.array())).matrix();
    const Mat daz = (dz.array() * s.z.array() * (1.0 - s.z.array())).matrix();
    Mat dgi(h0.rows(), 3 * H);
    Mat dgh(h0.rows(), 3 * H);
    dgi << dar, daz, dan;
    dgh << dar, daz, (dan.array() * s.r.array()).matrix();
    g.params[0] += xs[t].transpose() * dgi;
    g.params[1] += s.h_prev.transpose() * dgh;
    g.params[2] += dgi.colwise().sum();
    g.params[3] += dgh.colwise().sum();
    g.xs[t] = dgi * W_ih.transpose();
    dh_next = (dh.array() * s.z.array()).matrix() + dgh * W_hh.transpose();
  }
  g.h0 = dh_next;
  return run;
}

}  // namespace tapegrad::test
