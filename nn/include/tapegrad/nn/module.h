// Modules: plain structs that own Parameters and list them, with nested names, through one
// virtual visit. No stored pointers between modules, so modules copy and move freely.
//
// Listing a module's parameters (named_parameters, parameters, name_parameters) also gives each
// its nested name as Parameter::full_name(), so the tape's leaves, the observer, anomaly and
// non-finite errors, clip reports and optimizers show the names checkpoints are saved under.
// A name only grows: listing a child module on its own keeps the longer name its parent gave.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <tapegrad/parameter.h>

namespace tapegrad::nn {

/// Receives a module's parameters and children; builds nested names such as "layers.1.lstm.W".
template <class S>
class ParameterVisitor {
 public:
  using Callback = std::function<void(const std::string& full_name, Parameter<S>& p)>;
  explicit ParameterVisitor(Callback callback, std::string prefix = {})
      : callback_(std::move(callback)), prefix_(std::move(prefix)) {}

  /// A parameter directly owned by the visited module.
  void operator()(const std::string& name, Parameter<S>& p) const { callback_(prefix_ + name, p); }
  /// A child module: its parameters get "name." in front of theirs.
  template <class M>
  void child(const std::string& name, M& module) const {
    ParameterVisitor nested(callback_, prefix_ + name + ".");
    module.visit_parameters(nested);
  }

 private:
  Callback callback_;
  std::string prefix_;
};

namespace detail {
// Gives p the nested name `full`, unless p already holds a longer one ending in "." + full,
// given by a module that p's module is nested in.
template <class S>
void adopt_full_name(Parameter<S>& p, const std::string& full) {
  const std::string& now = p.full_name();
  if (now == full) return;
  const bool nested_deeper =
      now.size() > full.size() && now.ends_with(full) && now[now.size() - full.size() - 1] == '.';
  if (!nested_deeper) p.set_full_name(full);
}
}  // namespace detail

/// Base of every nn module. A module implements visit_parameters; the rest follows.
template <class S>
class Module {
 public:
  virtual ~Module() = default;
  /// Calls v(name, parameter) for each own parameter and v.child(name, module) for each child.
  virtual void visit_parameters(const ParameterVisitor<S>& v) = 0;

  /// Every parameter with its nested name, in a fixed order (each also takes that name as its
  /// full_name(), see the file comment).
  std::vector<std::pair<std::string, Parameter<S>*>> named_parameters() {
    std::vector<std::pair<std::string, Parameter<S>*>> out;
    visit_parameters(ParameterVisitor<S>([&](const std::string& n, Parameter<S>& p) {
      detail::adopt_full_name(p, n);
      out.emplace_back(n, &p);
    }));
    return out;
  }
  /// Every parameter, in the same order as named_parameters() (named the same way).
  std::vector<Parameter<S>*> parameters() {
    std::vector<Parameter<S>*> out;
    visit_parameters(ParameterVisitor<S>([&](const std::string& n, Parameter<S>& p) {
      detail::adopt_full_name(p, n);
      out.push_back(&p);
    }));
    return out;
  }
  /// Gives every parameter its nested name as full_name(), without listing them. Composite
  /// modules (Stacked, Bidirectional) call it when built; a model of several modules calls it
  /// (or named_parameters()) before recording, for names such as "rnn.layers.0.cell.W".
  void name_parameters() {
    visit_parameters(ParameterVisitor<S>([](const std::string& n, Parameter<S>& p) { detail::adopt_full_name(p, n); }));
  }
  /// Sets every parameter's gradient to zero.
  void zero_grad() {
    visit_parameters(ParameterVisitor<S>([](const std::string&, Parameter<S>& p) { p.zero_grad(); }));
  }
};

/// The Parameters of several modules, in order: e.g. a recurrent layer and its head for one
/// optimizer, nn::Adam<float> opt(nn::parameters_of<float>({&rnn, &head}), options).
template <class S>
std::vector<Parameter<S>*> parameters_of(std::initializer_list<Module<S>*> modules) {
  std::vector<Parameter<S>*> out;
  for (Module<S>* m : modules) {
    for (Parameter<S>* p : m->parameters()) out.push_back(p);
  }
  return out;
}

}  // namespace tapegrad::nn
