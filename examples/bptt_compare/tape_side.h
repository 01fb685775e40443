// The autodiff side of every comparison: an nn cell (its Parameters overwritten with the hand
// derivation's weights), an nn::Linear read-out and nn::cross_entropy, recorded on a tape
// step by step. Nothing here knows a derivative: the tape's reverse sweep is the BPTT.
#pragma once

#include <cmath>
#include <cstddef>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/loss.h>
#include <tapegrad/nn/state.h>
#include <tapegrad/tapegrad.h>
#include <tapegrad/window.h>

#include "common.h"

namespace bptt {

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using M = tg::Matrix<double>;
using Param = tg::Parameter<double>;

/// Overwrites a module's parameters, in parameters() order, with the hand derivation's weights.
template <class Module>
void set_weights(Module& module, const std::vector<const MatrixXd*>& weights) {
  const auto params = module.parameters();
  if (params.size() != weights.size()) throw std::logic_error("set_weights: parameter count differs");
  for (std::size_t k = 0; k < params.size(); ++k) {
    if (params[k]->value.rows() != weights[k]->rows() || params[k]->value.cols() != weights[k]->cols())
      throw std::logic_error("set_weights: shape of parameter '" + params[k]->full_name() + "' differs");
    params[k]->value = *weights[k];
  }
}

/// The read-out as an nn::Linear holding the head's V and c.
inline nn::Linear<double> make_linear(const Head& head, std::mt19937_64& rng) {
  nn::Linear<double> lin({head.V.rows(), head.V.cols()}, rng);
  set_weights(lin, {&head.V, &head.c});
  return lin;
}

/// Everything the autodiff side differentiates, named, in the hand derivation's order: the
/// model's parameters, the read-out's as "readout.<name>", then the initial state tensors.
template <class Model>
std::vector<std::pair<std::string, Param*>> autodiff_parameters(Model& model, nn::Linear<double>& lin,
                                                                std::vector<Param>& init) {
  auto got = model.named_parameters();
  for (const auto& p : lin.named_parameters()) got.emplace_back("readout." + p.first, p.second);
  for (Param& p : init) got.emplace_back(p.name, &p);
  return got;
}

/// One step of cell + read-out + summed cross-entropy; updates s, returns L_t.
template <class Cell>
tg::Var<double> record_step(tg::Tape<double>& tape, Cell& cell, nn::Linear<double>& head, const Sequence& seq, int t,
                            nn::State<double>& s) {
  const auto ti = static_cast<std::size_t>(t);
  s = cell.step(tape.constant(M(seq.xs[ti])), s);
  const auto logits = head.forward(cell.output(s));
  return nn::cross_entropy(logits, std::span<const std::int32_t>(seq.targets[ti]), {tg::Reduction::Sum});
}

/// The initial state as leaves of Parameters (so its gradient accumulates across sweeps).
inline nn::State<double> initial_state(tg::Tape<double>& tape, std::vector<Param>& init) {
  nn::State<double> s;
  for (Param& p : init) s.tensors.push_back(tape.leaf(p));
  return s;
}

/// Full BPTT: one backward of sum_t L_t. Returns the state after every step (for dL/dh_t) and L.
template <class Cell>
std::pair<std::vector<nn::State<double>>, double> full_bptt(tg::Tape<double>& tape, Cell& cell,
                                                            nn::Linear<double>& head, const Sequence& seq,
                                                            std::vector<Param>& init) {
  nn::State<double> s = initial_state(tape, init);
  std::vector<nn::State<double>> states;
  tg::Var<double> loss;
  for (int t = 0; t < seq.steps(); ++t) {
    auto scope = tape.time_step(t);
    const auto lt = record_step(tape, cell, head, seq, t, s);
    loss = t == 0 ? lt : tg::add(loss, lt);
    states.push_back(s);
  }
  tape.backward(loss);
  return {states, loss.item()};
}

/// Per-output window: L_t reaches steps t..t-tau only (tapegrad/window.h).
template <class Cell>
void window_bptt(tg::Tape<double>& tape, Cell& cell, nn::Linear<double>& head, const Sequence& seq,
                 std::vector<Param>& init, int tau) {
  nn::State<double> s;
  tg::backward_per_output_window(tape, seq.steps(), tau, [&](int t) {
    if (t == 0) s = initial_state(tape, init);
    return record_step(tape, cell, head, seq, t, s);
  });
}

/// Named parameter gradients (autodiff) against the hand derivation's, in the same order.
inline std::vector<ParamDiff> param_diffs(const std::vector<std::pair<std::string, Param*>>& got,
                                          const std::vector<const MatrixXd*>& expected) {
  std::vector<ParamDiff> out;
  for (std::size_t k = 0; k < got.size(); ++k) {
    const double d = k < expected.size() ? max_abs_diff(MatrixXd(got[k].second->grad), *expected[k]) : std::nan("");
    out.push_back({got[k].first, d});
  }
  return out;
}

/// Per step t: max |Var::grad() - hand| of state tensor k (index picks, hand[k][t]).
inline std::vector<StepDiff> step_diffs(const std::vector<nn::State<double>>& states,
                                        const std::vector<std::size_t>& index,
                                        const std::vector<const std::vector<MatrixXd>*>& hand) {
  std::vector<StepDiff> out;
  for (std::size_t t = 0; t < states.size(); ++t) {
    StepDiff row{static_cast<int>(t), {}};
    for (std::size_t k = 0; k < index.size(); ++k) {
      row.diff.push_back(max_abs_diff(MatrixXd(states[t].tensors.at(index[k]).grad()), (*hand[k])[t]));
    }
    out.push_back(row);
  }
  return out;
}

/// Full BPTT of model + read-out (the head) from the initial state init, compared with the hand
/// derivation: expected holds its parameter gradients in autodiff_parameters order, hand[k] its
/// per-step gradients of state tensor k, named by state_names. Fills loss, the "full" mode and
/// the steps; the caller names the model.
template <class Model>
ModelResult compare_full_bptt(Model& model, const Head& head, std::mt19937_64& rng, const Sequence& seq,
                              std::vector<Param> init, const std::vector<const MatrixXd*>& expected,
                              std::vector<std::string> state_names,
                              const std::vector<const std::vector<MatrixXd>*>& hand) {
  auto lin = make_linear(head, rng);
  tg::Tape<double> tape;
  const auto [states, loss] = full_bptt(tape, model, lin, seq, init);
  std::vector<std::size_t> index;
  for (std::size_t k = 0; k < hand.size(); ++k) index.push_back(k);
  ModelResult r;
  r.loss = loss;
  r.modes.push_back({"full", param_diffs(autodiff_parameters(model, lin, init), expected)});
  r.state_names = std::move(state_names);
  r.steps = step_diffs(states, index, hand);
  return r;
}

}  // namespace bptt
