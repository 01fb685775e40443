// Binding check of modules that are not cells (private to nn/src; cells get theirs from cell.h).
#pragma once

#include <initializer_list>
#include <span>
#include <string_view>

#include <tapegrad/nn/cell.h>

namespace tapegrad::nn::detail {

/// Checks that `vars` (given weights, in parameter order) match the parameters' shapes.
template <class S>
void check_bind(std::string_view module, std::span<const Var<S>> vars,
                std::initializer_list<const Parameter<S>*> params, std::initializer_list<const char*> names) {
  check_weight_count(module, vars.size(), params.size());
  std::size_t k = 0;
  auto name = names.begin();
  for (const Parameter<S>* p : params) check_weight_shape(module, *name++, vars[k++].shape(), p->shape());
}

}  // namespace tapegrad::nn::detail
