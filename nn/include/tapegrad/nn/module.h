// Modules: plain structs that own Parameters and list them, with nested names, through one
// virtual visit. No stored pointers between modules, so modules copy and move freely.
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

/// Base of every nn module. A module implements visit_parameters; the rest follows.
template <class S>
class Module {
 public:
  virtual ~Module() = default;
  /// Calls v(name, parameter) for each own parameter and v.child(name, module) for each child.
  virtual void visit_parameters(const ParameterVisitor<S>& v) = 0;

  /// Every parameter with its nested name, in a fixed order.
  std::vector<std::pair<std::string, Parameter<S>*>> named_parameters() {
    std::vector<std::pair<std::string, Parameter<S>*>> out;
    visit_parameters(ParameterVisitor<S>([&](const std::string& n, Parameter<S>& p) { out.emplace_back(n, &p); }));
    return out;
  }
  /// Every parameter, in the same order as named_parameters().
  std::vector<Parameter<S>*> parameters() {
    std::vector<Parameter<S>*> out;
    visit_parameters(ParameterVisitor<S>([&](const std::string&, Parameter<S>& p) { out.push_back(&p); }));
    return out;
  }
  /// Sets every parameter's gradient to zero.
  void zero_grad() {
    for (Parameter<S>* p : parameters()) p->zero_grad();
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
