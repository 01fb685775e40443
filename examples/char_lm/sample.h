// Text generation: feed the prime, then draw each next byte from softmax(logits / temperature).
#pragma once

#include <cmath>
#include <random>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "corpus.h"
#include "model.h"

namespace char_lm {

/// n bytes generated after prime (prime must be non-empty and in the vocabulary), drawn with
/// an rng seeded by seed; the same inputs give the same text.
template <class Cell>
std::string sample_text(Model<Cell>& model, const Vocab& vocab, const std::string& prime, int n, double temperature,
                        std::uint64_t seed) {
  if (prime.empty()) throw std::runtime_error("the sampling prime is empty");
  for (char c : prime) {
    if (vocab.id(static_cast<unsigned char>(c)) < 0) {
      throw std::runtime_error(fmt::format("--prime: byte 0x{:02x} ('{}') does not occur in the training text",
                                           static_cast<unsigned char>(c), c));
    }
  }
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  Tape<S> tape;
  std::vector<Matrix<S>> state = model.zero_state(1);
  std::string out;
  std::int32_t next = vocab.id(static_cast<unsigned char>(prime[0]));
  for (std::size_t i = 0; i < prime.size() + static_cast<std::size_t>(n) - 1; ++i) {
    tape.clear();  // one step per recording keeps the tape small; the state is carried by value
    auto w = model.bind(tape);
    const std::int32_t id[1] = {next};
    auto r = model.step(w, id, tapegrad::nn::constant_state(tape, state));
    state = tapegrad::nn::values_of(r.next);
    if (i + 1 < prime.size()) {
      next = vocab.id(static_cast<unsigned char>(prime[i + 1]));
      continue;
    }
    // softmax(logits / T) in double, shifted by the max for stability, then inverse-CDF draw.
    const Matrix<S>& logits = r.logits.value();
    const double mx = static_cast<double>(logits.maxCoeff());
    std::vector<double> p(static_cast<std::size_t>(logits.cols()));
    double z = 0.0;
    for (std::size_t k = 0; k < p.size(); ++k) {
      p[k] = std::exp((static_cast<double>(logits(0, static_cast<Eigen::Index>(k))) - mx) / temperature);
      z += p[k];
    }
    double u = uniform(rng) * z;
    std::size_t k = 0;
    while (k + 1 < p.size() && u >= p[k]) u -= p[k++];
    next = static_cast<std::int32_t>(k);
    out.push_back(vocab.byte(next));
  }
  return out;
}

}  // namespace char_lm
