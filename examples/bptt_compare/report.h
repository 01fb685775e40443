// Printing a comparison: a text table per model, or one JSON document for all of them.
#pragma once

#include <vector>

#include "common.h"

namespace bptt {

/// Per model: the parameter table (one column per mode), the per-step dL/d(state) table and a verdict.
void print_tables(const std::vector<ModelResult>& results);
/// {"tolerance", "pass", "models": [{"model", "pass", "loss", "modes": [...], "steps": [...]}]}.
void print_json(const std::vector<ModelResult>& results);

}  // namespace bptt
