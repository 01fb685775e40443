#include <tapegrad/nn/embedding.h>
#include <tapegrad/nn/init.h>

#include "size_check.h"

namespace tapegrad::nn {

template <class S>
Embedding<S>::Embedding(const Options& options, std::mt19937_64& rng) : options_(options) {
  detail::check_positive_sizes("Embedding", "num_embeddings", options.num_embeddings, "embedding_dim",
                               options.embedding_dim);
  TAPEGRAD_CHECK(options.init_std >= 0, ValueError, "Embedding: init_std must be >= 0, got {}", options.init_std);
  table = Parameter<S>(Matrix<S>(options.num_embeddings, options.embedding_dim), "table");
  init::normal(table, rng, 0.0, options.init_std);
}

template <class S>
Var<S> Embedding<S>::forward(const Var<S>& table_var, std::span<const std::int32_t> ids) const {
  const Shape want{num_embeddings(), embedding_dim()};
  TAPEGRAD_CHECK(table_var.shape() == want, ShapeError, "Embedding.forward: the table is {}, expected {}",
                 table_var.shape(), want);
  TAPEGRAD_CHECK(!ids.empty(), ValueError, "Embedding.forward: ids is empty");
  for (std::size_t i = 0; i < ids.size(); ++i) {
    TAPEGRAD_CHECK(ids[i] >= 0 && ids[i] < num_embeddings(), ValueError,
                   "Embedding.forward: ids[{}] = {} is outside [0, {}) (num_embeddings)", i, ids[i], num_embeddings());
  }
  return gather_rows(table_var, ids);
}

template <class S>
Var<S> Embedding<S>::tied_logits(const Var<S>& table_var, const Var<S>& h) const {
  const Shape want{num_embeddings(), embedding_dim()};
  TAPEGRAD_CHECK(table_var.shape() == want, ShapeError, "Embedding.tied_logits: the table is {}, expected {}",
                 table_var.shape(), want);
  TAPEGRAD_CHECK(h.cols() == embedding_dim(), ShapeError,
                 "Embedding.tied_logits: h is {}, expected [B x {}] (embedding_dim)", h.shape(), embedding_dim());
  return matmul(h, transpose(table_var));
}

template class Embedding<float>;
template class Embedding<double>;

}  // namespace tapegrad::nn
