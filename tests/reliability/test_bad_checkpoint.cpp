// The bad-checkpoint table: one row per kind of defect a checkpoint file (or a save) can have,
// with the bytes, the tapegrad::Error subtype it must raise and words its message must contain.
// After every failed load the model's values and gradients and the state, step count and
// learning rate of three optimizers are bit-for-bit as before, and the file is unchanged.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <tapegrad/error.h>
#include <tapegrad/nn/checkpoint.h>
#include <tapegrad/nn/optim.h>

#include "../support/file_bytes.h"
#include "../support/test_names.h"

using M = tg::Matrix<double>;
using tapegrad::testing::read_bytes;
using tapegrad::testing::safetensors_bytes;
using tapegrad::testing::write_bytes;

namespace {

enum class Opt { None, Adam, Rmsprop, Adagrad };

/// W [3 x 2], b [1 x 2] and three optimizers over them, each stepped twice (non-zero state).
struct Fixture {
  tg::Parameter<double> W{M::Constant(3, 2, 0.25), "W"};
  tg::Parameter<double> b{M::Constant(1, 2, -0.5), "b"};
  nn::Adam<double> adam{{&W, &b}};
  nn::Rmsprop<double> rmsprop{{&W, &b}};
  nn::Adagrad<double> adagrad{{&W, &b}};
  fs::path dir;

  Fixture() {
    dir = fs::temp_directory_path() / ("tapegrad_bad_ckpt_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (int i = 0; i < 2; ++i) {
      W.grad.setConstant(0.5 + i);
      b.grad.setConstant(-1.0);
      adam.step();
      rmsprop.step();
      adagrad.step();
    }
    W.grad.setConstant(3.0);
    b.grad.setConstant(4.0);
  }
  ~Fixture() { fs::remove_all(dir); }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  nn::NamedParameters<double> named() { return {{"W", &W}, {"b", &b}}; }
  nn::Optimizer<double>* optimizer(Opt o) {
    switch (o) {
      case Opt::Adam:
        return &adam;
      case Opt::Rmsprop:
        return &rmsprop;
      case Opt::Adagrad:
        return &adagrad;
      case Opt::None:
        break;
    }
    return nullptr;
  }
  /// Everything a load may write, as raw bytes (so a NaN counts as a change too).
  std::string snapshot() {
    std::string out;
    const auto add = [&](const M& m) {
      out += std::to_string(m.rows()) + "x" + std::to_string(m.cols()) + ":";
      out.append(reinterpret_cast<const char*>(m.data()), sizeof(double) * static_cast<std::size_t>(m.size()));
    };
    add(W.value);
    add(b.value);
    add(W.grad);
    add(b.grad);
    for (nn::Optimizer<double>* o : {optimizer(Opt::Adam), optimizer(Opt::Rmsprop), optimizer(Opt::Adagrad)}) {
      for (auto& [name, m] : o->state_tensors()) add(*m);
      out += std::to_string(o->step_count()) + "/" + std::to_string(o->learning_rate());
    }
    return out;
  }
};

/// A checkpoint as data, re-encoded by hand (the test's own writer, independent of the library's).
std::string encode(const nn::SafetensorsFile& f) {
  std::string header = "{";
  if (!f.metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : f.metadata) {
      header += fmt::format(R"({}"{}":"{}")", first ? "" : ",", k, v);
      first = false;
    }
    header += "}";
  }
  std::string data;
  for (const auto& [name, t] : f.tensors) {
    std::string shape;
    for (const auto d : t.shape) {
      if (!shape.empty()) shape += ',';
      shape += std::to_string(d);
    }
    header +=
        fmt::format(R"({}"{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})", header.size() > 1 ? "," : "",
                    name, t.dtype, shape, data.size(), data.size() + t.bytes.size());
    data.append(t.bytes.begin(), t.bytes.end());
  }
  return safetensors_bytes(header + "}", data);
}

/// 48 + 16 bytes of data for W [3 x 2] and b [1 x 2] in F64.
const std::string kWb = R"("W":{"dtype":"F64","shape":[3,2],"data_offsets":[0,48]},)"
                        R"("b":{"dtype":"F64","shape":[1,2],"data_offsets":[48,64]})";
std::string data64() { return std::string(64, '\0'); }
/// The header of W alone, F64 with this shape and these data_offsets (JSON text as written).
std::string w_header(const std::string& shape, const std::string& offsets = "[0,48]") {
  return R"({"W":{"dtype":"F64","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}";
}
std::string nested(const std::string& open, const std::string& close, int depth) {
  std::string s;
  s.reserve(static_cast<std::size_t>(depth) * (open.size() + close.size()));
  for (int i = 0; i < depth; ++i) s += open;
  for (int i = 0; i < depth; ++i) s += close;
  return s;
}

enum class Kind { Checkpoint, Value };

struct Row {
  std::string name;
  Kind kind;
  std::vector<std::string> words;
  /// Writes the bad file at path (given the fixture, for files derived from a good save).
  std::function<void(Fixture&, const fs::path&)> make;
  Opt opt = Opt::Adam;
  bool inspect = false;  ///< also through read_safetensors (no model): must fail the same way
  /// A save row: make() prepares, save() must fail, leaving an existing file as it was.
  std::function<void(Fixture&, const fs::path&)> save = nullptr;
};

/// A good save of the fixture with `opt`, as data to be damaged.
nn::SafetensorsFile good(Fixture& f, Opt opt, const fs::path& path) {
  nn::save_checkpoint<double>(path, f.named(), f.optimizer(opt), 5);
  return nn::read_safetensors(path);
}

/// Sets element k of tensor `name` (F64) to v.
void poke(nn::SafetensorsFile& file, const std::string& name, std::size_t k, double v) {
  std::memcpy(file.tensors.at(name).bytes.data() + k * sizeof(double), &v, sizeof v);
}

std::vector<Row> rows() {
  std::vector<Row> r;
  const auto bytes = [](std::string header, std::string data = data64()) {
    return [header = std::move(header), data = std::move(data)](Fixture&, const fs::path& p) {
      write_bytes(p, safetensors_bytes(header, data));
    };
  };
  // A file no reader accepts: loading it (with Adam) and inspecting it both raise a
  // CheckpointError naming `words`.
  const auto refused_file = [&](std::string name, std::vector<std::string> words,
                                std::function<void(Fixture&, const fs::path&)> make) {
    r.push_back({std::move(name), Kind::Checkpoint, std::move(words), std::move(make), Opt::Adam, true});
  };
  // The same for the file of this header and data.
  const auto refused = [&](std::string name, std::vector<std::string> words, std::string header,
                           std::string data = data64()) {
    refused_file(std::move(name), std::move(words), bytes(std::move(header), std::move(data)));
  };
  // A well-formed file that does not fit the model (W [3 x 2] and b [1 x 2] in F64): loading it
  // without an optimizer raises a CheckpointError naming `words`.
  const auto misfit_file = [&](std::string name, std::vector<std::string> words,
                               std::function<void(Fixture&, const fs::path&)> make) {
    r.push_back({std::move(name), Kind::Checkpoint, std::move(words), std::move(make), Opt::None});
  };
  // ---- nesting: refused at the first level the format does not have, never recursed into
  refused("nest_header_array", {"corrupt header"}, nested("[", "]", 100000));
  refused("nest_object_deep", {"tensor 'a'", "unexpected header field 'a'"},
          "{" + nested("\"a\":{", "}", 100000) + "}");
  refused("nest_in_shape", {"tensor 'W'", "dimension #0", "nests at most 3"}, w_header(nested("[", "]", 100000)));
  refused("nest_in_offsets", {"tensor 'W'", "data_offsets", "nests at most 3"},
          w_header("[3,2]", nested("[", "]", 100000)));
  refused("nest_in_metadata", {"metadata 'a'", "an array", "not a string"},
          R"({"__metadata__":{"a":)" + nested("[", "]", 100000) + "}}");
  refused("nest_in_dtype", {"tensor 'W'", "'dtype' is an object"},
          R"({"W":{"dtype":)" + nested("{\"x\":", "}", 100000) + "}}");
  // ---- size caps before parsing
  refused_file("header_over_cap", {"header length 100000001", "exceeds the limit"}, [](Fixture&, const fs::path& p) {
    std::string head(8, '\0');
    const std::uint64_t n = 100'000'001;
    for (int i = 0; i < 8; ++i) head[static_cast<std::size_t>(i)] = static_cast<char>(n >> (8 * i));
    write_bytes(p, head + "{");
    fs::resize_file(p, 8 + n);  // sparse: the cap fires before anything is read
  });
  refused_file("header_past_end", {"header length", "larger than"}, [](Fixture&, const fs::path& p) {
    write_bytes(p, std::string("\xff\xff\xff\xff\xff\xff\xff\xff{}", 10));
  });
  refused_file("empty_file", {"0 bytes", "truncated"}, [](Fixture&, const fs::path& p) { write_bytes(p, ""); });
  // ---- duplicate keys (the format forbids them; a JSON parser would keep one silently)
  refused("dup_tensor", {"name 'W' appears twice"},
          "{" + kWb + R"(,"W":{"dtype":"F64","shape":[3,2],"data_offsets":[0,48]}})");
  refused("dup_tensor_escaped", {"name 'W' appears twice"},
          "{" + kWb + R"(,"\u0057":{"dtype":"F64","shape":[3,2],"data_offsets":[0,48]}})");
  refused("dup_field", {"tensor 'W'", "field 'dtype' appears twice"},
          R"({"W":{"dtype":"F64","dtype":"F32","shape":[3,2],"data_offsets":[0,48]}})");
  refused("dup_offsets_field", {"tensor 'b'", "field 'data_offsets' appears twice"},
          R"({"b":{"dtype":"F64","shape":[1,2],"data_offsets":[0,16],"data_offsets":[48,64]}})");
  refused("dup_metadata_key", {"metadata key 'step' appears twice"},
          R"({"__metadata__":{"step":"1","step":"2"},)" + kWb + "}");
  refused("dup_metadata_object", {"name '__metadata__' appears twice"},
          R"({"__metadata__":{},"__metadata__":{"step":"2"},)" + kWb + "}");
  // ---- shapes: checked arithmetic, dimensions printed as given
  refused("shape_dim_u64_max", {"tensor 'W'", "18446744073709551615", "larger than 2^63-1"},
          w_header("[0,18446744073709551615]", "[0,0]"));
  refused("shape_dim_past_u64", {"tensor 'W'", "18446744073709551616", "non-negative integer"},
          w_header("[18446744073709551616,2]"));
  refused("shape_product_overflow", {"tensor 'W'", "[4294967296, 4294967296]", "too large"},
          w_header("[4294967296,4294967296]"));
  refused("shape_bytes_overflow", {"tensor 'W'", "[1152921504606846976]", "too large"},
          w_header("[1152921504606846976]"));
  refused("shape_negative", {"tensor 'W'", "-3", "negative"}, w_header("[-3,2]"));
  refused("shape_float", {"tensor 'W'", "1.5", "non-integer"}, w_header("[1.5,2]"));
  refused("shape_rank_65", {"tensor 'W'", "more than 64 dimensions"},
          w_header("[" + nested("1,", "", 64) + "1]", "[0,8]"), std::string(8, '\0'));
  refused("shape_not_array", {"tensor 'W'", "'shape' is", "expected an array"},
          R"({"W":{"dtype":"F64","shape":"3x2","data_offsets":[0,48]}})");
  refused("shape_missing", {"tensor 'W'", "no 'shape'"}, R"({"W":{"dtype":"F64","data_offsets":[0,48]}})",
          std::string(48, '\0'));
  misfit_file("shape_mismatch", {"tensor 'W'", "shape mismatch", "[3, 2]", "[2, 3]"},
              bytes(R"({"W":{"dtype":"F64","shape":[2,3],"data_offsets":[0,48]},)"
                    R"("b":{"dtype":"F64","shape":[1,2],"data_offsets":[48,64]}})"));
  // ---- offsets and data layout
  refused("offsets_backwards", {"tensor 'W'", "[48, 0]", "backwards"}, w_header("[3,2]", "[48,0]"));
  refused("offsets_past_end", {"tensor 'b'", "out of range", "64 bytes"},
          R"({"W":{"dtype":"F64","shape":[3,2],"data_offsets":[0,48]},)"
          R"("b":{"dtype":"F64","shape":[1,2],"data_offsets":[18446744073709551599,18446744073709551615]}})");
  refused("offsets_three", {"tensor 'W'", "more than two"}, w_header("[3,2]", "[0,48,64]"));
  refused("offsets_one", {"tensor 'W'", "no 'data_offsets' pair"}, w_header("[3,2]", "[0]"));
  refused("offsets_negative", {"tensor 'W'", "data_offsets hold -48"}, w_header("[3,2]", "[-48,0]"));
  refused("offsets_wrong_size", {"tensor 'W'", "hold 40 bytes", "needs 48"}, w_header("[3,2]", "[0,40]"));
  refused("tensors_overlap", {"'W' and 'b' overlap"},
          R"({"W":{"dtype":"F64","shape":[3,2],"data_offsets":[0,48]},)"
          R"("b":{"dtype":"F64","shape":[1,2],"data_offsets":[40,56]}})");
  refused("data_gap", {"bytes [0, 16)", "belong to no tensor"},
          R"({"b":{"dtype":"F64","shape":[1,2],"data_offsets":[16,32]}})", std::string(32, '\0'));
  refused("data_left_over", {"tensors cover 64 bytes", "holds 72"}, "{" + kWb + "}", std::string(72, '\0'));
  refused("data_short", {"tensor 'b'", "out of range", "63 bytes", "truncated"}, "{" + kWb + "}",
          std::string(63, '\0'));
  // ---- dtypes and entry fields
  refused("dtype_unknown", {"tensor 'W'", "unknown dtype 'F33'"},
          R"({"W":{"dtype":"F33","shape":[3,2],"data_offsets":[0,48]}})");
  refused("dtype_number", {"tensor 'W'", "'dtype' is 64"}, R"({"W":{"dtype":64,"shape":[3,2],"data_offsets":[0,48]}})");
  misfit_file("dtype_mismatch", {"tensor 'W'", "dtype mismatch", "expected F64", "found I64"},
              bytes(R"({"W":{"dtype":"I64","shape":[3,2],"data_offsets":[0,48]},)"
                    R"("b":{"dtype":"F64","shape":[1,2],"data_offsets":[48,64]}})"));
  refused("entry_extra_field", {"tensor 'W'", "unexpected header field 'stride'"},
          R"({"W":{"dtype":"F64","stride":1,"shape":[3,2],"data_offsets":[0,48]}})");
  refused("entry_not_object", {"tensor 'W'", "header entry is an array"}, R"({"W":[1,2]})", "");
  refused("metadata_not_object", {"__metadata__ is a string"}, R"({"__metadata__":"x"})", "");
  refused("metadata_number", {"metadata 'step'", "an integer", "not a string"}, R"({"__metadata__":{"step":5}})", "");
  // ---- JSON syntax and encoding
  refused("json_truncated", {"corrupt header", "invalid JSON at byte 25", "missing closing quote"},
          R"({"W":{"dtype":"F64","sha)", "");
  refused("json_trailing", {"corrupt header", "invalid JSON at byte 116", "expected end of input"}, "{" + kWb + "} x");
  refused("json_not_utf8", {"invalid JSON at byte 4", "ill-formed UTF-8"},
          "{\"W\xff\xfe\":{\"dtype\":\"F64\",\"shape\":[3,2],\"data_offsets\":[0,48]}}", std::string(48, '\0'));
  refused("json_not_object_start", {"does not start with '{'"}, " {}", "");
  refused("json_nul_padding", {"corrupt header", "NUL byte at header byte 114"}, "{" + kWb + std::string("}\0\0\0", 4));
  // ---- names in messages: long or binary names are cut and escaped
  misfit_file("long_binary_name", {"extra tensor", "\\x01", "(10001 bytes)"},
              bytes("{" + kWb + R"(,"\u0001)" + std::string(10000, 'A') +
                    R"(":{"dtype":"U8","shape":[0],"data_offsets":[64,64]}})"));
  // ---- wrong kinds of file
  refused_file("kind_directory", {"is a directory"}, [](Fixture&, const fs::path& p) { fs::create_directory(p); });
  refused_file("kind_fifo", {"not a regular file"},
               [](Fixture&, const fs::path& p) { ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0); });
  refused_file("kind_missing", {"cannot open", "No such file"}, [](Fixture&, const fs::path&) {});
  refused_file("kind_sparse_zeros", {"does not start with '{'"}, [](Fixture&, const fs::path& p) {
    write_bytes(p, "");
    fs::resize_file(p, std::uint64_t{1} << 40);  // 1 TiB of holes
  });
  r.push_back({"kind_sparse_after_valid_file",
               Kind::Checkpoint,
               {"tensors cover 64 bytes", "holds 1099511627654"},
               [](Fixture&, const fs::path& p) {
                 write_bytes(p, safetensors_bytes("{" + kWb + "}", data64()));
                 fs::resize_file(p, std::uint64_t{1} << 40);  // a valid file, then 1 TiB of holes
               },
               Opt::None,
               true});
  misfit_file(
      "kind_sparse_huge_tensor", {"tensor 'W'", "shape mismatch", "[68719476736, 2]"}, [](Fixture&, const fs::path& p) {
        const std::string h = R"({"W":{"dtype":"F64","shape":[68719476736,2],"data_offsets":[0,1099511627776]},)"
                              R"("b":{"dtype":"F64","shape":[1,2],"data_offsets":[1099511627776,1099511627792]}})";
        write_bytes(p, safetensors_bytes(h, ""));
        fs::resize_file(p, 8 + h.size() + (std::uint64_t{1} << 40) + 16);
      });
  // ---- values the optimizer would use: the next update must stay defined
  // A good save with `opt` whose state or metadata damage() spoils: loading it into `opt` fails.
  const auto damaged = [&](std::string name, Opt opt, std::vector<std::string> words,
                           std::function<void(nn::SafetensorsFile&)> damage) {
    auto make = [opt, damage = std::move(damage)](Fixture& f, const fs::path& p) {
      nn::SafetensorsFile file = good(f, opt, p);
      damage(file);
      write_bytes(p, encode(file));
    };
    r.push_back({std::move(name), Kind::Checkpoint, std::move(words), std::move(make), opt});
  };
  damaged("optim_step_int64_max", Opt::Adam, {"optim.step", "9223372036854775807", "2^53"},
          [](auto& file) { file.metadata["optim.step"] = "9223372036854775807"; });
  damaged("optim_step_past_2_53", Opt::Adagrad, {"optim.step", "9007199254740993"},
          [](auto& file) { file.metadata["optim.step"] = "9007199254740993"; });
  damaged("optim_step_negative", Opt::Adam, {"optim.step", "-1"},
          [](auto& file) { file.metadata["optim.step"] = "-1"; });
  damaged("optim_lr_nan", Opt::Rmsprop, {"optim.lr", "nan"}, [](auto& file) { file.metadata["optim.lr"] = "nan"; });
  damaged("adam_negative_v", Opt::Adam, {"optim.adam.v.b", "element #1", "-1", ">= 0"},
          [](auto& file) { poke(file, "optim.adam.v.b", 1, -1.0); });
  damaged("adam_nan_m", Opt::Adam, {"optim.adam.m.W", "element #4", "nan", "finite"},
          [](auto& file) { poke(file, "optim.adam.m.W", 4, std::nan("")); });
  damaged("adam_inf_v", Opt::Adam, {"optim.adam.v.W", "inf", "finite"},
          [](auto& file) { poke(file, "optim.adam.v.W", 0, std::numeric_limits<double>::infinity()); });
  damaged("rmsprop_negative_square_avg", Opt::Rmsprop, {"optim.rmsprop.square_avg.W", "-0.5", ">= 0"},
          [](auto& file) { poke(file, "optim.rmsprop.square_avg.W", 2, -0.5); });
  damaged("adagrad_negative_sum", Opt::Adagrad, {"optim.adagrad.sum.b", "-2", ">= 0"},
          [](auto& file) { poke(file, "optim.adagrad.sum.b", 0, -2.0); });
  // ---- saves: names and metadata must be UTF-8; a directory is no target
  const auto nothing = [](Fixture&, const fs::path&) {};
  const auto save_row = [&](std::string name, Kind kind, std::vector<std::string> words,
                            std::function<void(Fixture&, const fs::path&)> call,
                            std::function<void(Fixture&, const fs::path&)> setup = nullptr) {
    Row row{std::move(name), kind, std::move(words), setup ? setup : nothing, Opt::None};
    row.save = std::move(call);
    r.push_back(std::move(row));
  };
  save_row("save_name_not_utf8", Kind::Value, {"tensor name", "W\\xff", "not valid UTF-8"},
           [](Fixture& f, const fs::path& p) {
             nn::save_checkpoint<double>(p, {{"W\xff", &f.W}});
           });
  save_row("save_name_overlong_utf8", Kind::Value, {"tensor name", "\\xc0\\xaf", "not valid UTF-8"},
           [](Fixture& f, const fs::path& p) {
             nn::save_checkpoint<double>(p, {{"\xc0\xaf", &f.W}});
           });
  save_row("save_metadata_key_not_utf8", Kind::Value, {"metadata key", "\\xed\\xa0\\x80", "not valid UTF-8"},
           [](Fixture& f, const fs::path& p) {
             nn::save_checkpoint<double>(p, f.named(), nullptr, 0, {{"\xed\xa0\x80", "surrogate"}});
           });
  save_row("save_metadata_value_not_utf8", Kind::Value, {"metadata value of key 'run'", "run\\x80", "not valid UTF-8"},
           [](Fixture& f, const fs::path& p) {
             nn::save_checkpoint<double>(p, f.named(), nullptr, 0, {{"run", "run\x80"}});
           });
  save_row("save_name_truncated_utf8", Kind::Value, {"tensor name", "\\xe2\\x82", "not valid UTF-8"},
           [](Fixture& f, const fs::path& p) {
             nn::save_checkpoint<double>(p, {{"\xe2\x82", &f.W}});
           });
  save_row(
      "save_onto_directory", Kind::Checkpoint, {"save failed", "cannot rename", "unchanged"},
      [](Fixture& f, const fs::path& p) { nn::save_checkpoint<double>(p, f.named()); },
      [](Fixture&, const fs::path& p) {
        fs::create_directory(p);
        write_bytes(p / "inside", "kept");
      });
  return r;
}

bool is(Kind k, const tg::Error& e) {
  return k == Kind::Checkpoint ? dynamic_cast<const tg::CheckpointError*>(&e) != nullptr
                               : dynamic_cast<const tg::ValueError*>(&e) != nullptr;
}

void expect_typed(const Row& row, const std::function<void()>& call, const char* how) {
  try {
    call();
    ADD_FAILURE() << row.name << " (" << how << "): no error";
  } catch (const tg::Error& e) {
    const std::string msg = e.what();
    if (std::getenv("TAPEGRAD_SHOW_ERRORS") != nullptr)
      std::printf("%s (%s): %s\n", row.name.c_str(), how, msg.c_str());
    EXPECT_TRUE(is(row.kind, e)) << row.name << " (" << how << "): wrong error type: " << msg;
    for (const auto& w : row.words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
    EXPECT_LT(msg.size(), 2000U) << "a message that long quotes the input instead of naming the problem";
  }
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(BadCheckpointTable, CoversEveryDefectKind) { EXPECT_GE(rows().size(), 60U); }

class BadCheckpoint : public ::testing::TestWithParam<Row> {};

TEST_P(BadCheckpoint, TypedErrorNamingFileAndProblemLeavesEverythingUnchanged) {
  const Row& row = GetParam();
  Fixture f;
  const fs::path path = f.dir / (row.name + ".safetensors");
  row.make(f, path);
  if (row.save) {
    // The path holds a good checkpoint (or what make() put there); the failed save keeps it.
    if (!fs::exists(path)) nn::save_checkpoint<double>(path, f.named(), &f.adam, 1);
    const std::string before = f.snapshot();
    const auto listing = files_in(f.dir);
    const std::string old_file = fs::is_regular_file(path) ? read_bytes(path) : read_bytes(path / "inside");
    expect_typed(
        row, [&] { row.save(f, path); }, "save");
    EXPECT_EQ(f.snapshot(), before);
    EXPECT_EQ(files_in(f.dir), listing) << "a failed save left a file behind";
    EXPECT_EQ(fs::is_regular_file(path) ? read_bytes(path) : read_bytes(path / "inside"), old_file);
    try {
      row.save(f, path);
    } catch (const tg::Error& e) {
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
    return;
  }
  const bool regular = fs::is_regular_file(path);
  const std::string file_before = regular && fs::file_size(path) < (1U << 20) ? read_bytes(path) : "";
  const std::string before = f.snapshot();
  expect_typed(
      row, [&] { nn::load_checkpoint<double>(path, f.named(), f.optimizer(row.opt)); }, "load");
  EXPECT_EQ(f.snapshot(), before) << row.name << ": a failed load changed the model or an optimizer";
  expect_typed(
      row, [&] { nn::load_checkpoint<double>(path, f.named(), f.optimizer(row.opt)); }, "load again");
  if (row.inspect)
    expect_typed(
        row, [&] { (void)nn::read_safetensors(path); }, "read_safetensors");
  EXPECT_EQ(f.snapshot(), before);
  if (!file_before.empty()) {
    EXPECT_EQ(read_bytes(path), file_before) << "loading changed the file";
  }
  // The file name is in the message of every load error (the row's words name the problem).
  try {
    nn::load_checkpoint<double>(path, f.named(), f.optimizer(row.opt));
  } catch (const tg::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
}

// What the format allows must still load: whitespace and newlines, any key and field order,
// escapes, UTF-8 metadata, empty tensors of any rank. W = 1..6 and b = -1, -2 exactly.
TEST(BadCheckpointAccepted, ValidVariantsLoadExactly) {
  Fixture f;
  std::string data;
  for (const double v : {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -1.0, -2.0}) data.append(reinterpret_cast<const char*>(&v), 8);
  const std::vector<std::string> headers = {
      "{" + kWb + "}",
      "{\n  \"b\" : { \"data_offsets\" : [48, 64], \"shape\" : [1, 2], \"dtype\" : \"F64\" },\n"
      "  \"\\u0057\": {\"shape\":[3,2],\"dtype\":\"F\\u0036\\u0034\",\"data_offsets\":[0,48]},\n"
      "  \"__metadata__\": {\"caf\\u00e9\": \"na\u00efve \\\" quote\", \"step\": \"12\"}\n}    ",
      "{" + kWb + R"(,"e":{"dtype":"F32","shape":[0,5,0,7],"data_offsets":[64,64]}})"};
  for (std::size_t k = 0; k < headers.size(); ++k) {
    const fs::path p = f.dir / ("ok" + std::to_string(k) + ".safetensors");
    write_bytes(p, safetensors_bytes(headers[k], data));
    nn::LoadOptions o;
    f.W.value.setZero();
    f.b.value.setZero();
    if (k == 2) {
      const nn::SafetensorsFile file = nn::read_safetensors(p);
      ASSERT_EQ(file.tensors.at("e").shape, (std::vector<std::int64_t>{0, 5, 0, 7}));
      continue;
    }
    const nn::CheckpointInfo info = nn::load_checkpoint<double>(p, f.named(), nullptr, o);
    EXPECT_EQ(f.W.value, (M(3, 2) << 1, 2, 3, 4, 5, 6).finished()) << headers[k];
    EXPECT_EQ(f.b.value, (M(1, 2) << -1, -2).finished());
    if (k == 1) {
      EXPECT_EQ(info.step, 12);
      EXPECT_EQ(info.metadata.at("caf\xc3\xa9"), "na\xc3\xafve \" quote");
    }
  }
}

// A valid header over a 1 TiB sparse file: inspecting it must not try to hold 1 TiB in memory.
TEST(BadCheckpointAccepted, HugeSparseTensorIsRefusedNotAllocated) {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0 || static_cast<double>(pages) * static_cast<double>(page) >= 0x1p40) {
    GTEST_SKIP() << "this machine has 1 TiB of memory or more";
  }
  Fixture f;
  const fs::path p = f.dir / "huge.safetensors";
  const std::string h = R"({"x":{"dtype":"U8","shape":[1099511627776],"data_offsets":[0,1099511627776]}})";
  write_bytes(p, safetensors_bytes(h, ""));
  fs::resize_file(p, 8 + h.size() + (std::uint64_t{1} << 40));
  try {
    (void)nn::read_safetensors(p);
    ADD_FAILURE() << "read 1 TiB";
  } catch (const tg::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("larger than this machine's memory"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BadCheckpoint, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& row) { return row.param.name; });

}  // namespace
