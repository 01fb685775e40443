// The short names the tests use for the library's namespaces and its index type.
#pragma once

#include <filesystem>

#include <tapegrad/tensor.h>

namespace tapegrad::nn {}

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
namespace fs = std::filesystem;
using tapegrad::Index;
