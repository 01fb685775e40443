#include <array>
#include <cstdint>
#include <string>

#include <tapegrad/distributed/error.h>
#include <tapegrad/distributed/parameters.h>

#include "mpi_type.h"

namespace tapegrad::distributed {

namespace {

// One line per parameter: what every rank must agree on.
template <class S>
std::vector<std::string> describe(const std::vector<Parameter<S>*>& params) {
  std::vector<std::string> lines;
  lines.reserve(params.size());
  for (const Parameter<S>* p : params) {
    lines.push_back(fmt::format("'{}' {} {}", p->full_name(), p->shape(), sizeof(S) == 4 ? "float" : "double"));
  }
  return lines;
}

// FNV-1a over the lines, each closed by a newline.
std::uint64_t fingerprint(const std::vector<std::string>& lines) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const std::string& line : lines) {
    for (const char c : line + "\n") {
      h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    }
  }
  return h;
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = text.find('\n', at);
    lines.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return lines;
}

// Every rank already knows that `bad_rank` differs from rank 0; rank 0's list is broadcast so
// each rank can name its own first differing entry, then every rank throws.
[[noreturn]] void raise_mismatch(const Communicator& comm, const std::vector<std::string>& mine, int bad_rank,
                                 const std::array<std::uint64_t, 2>& root, const std::array<std::uint64_t, 2>& bad) {
  std::string text = comm.rank() == 0 ? join(mine) : std::string();
  std::uint64_t length = text.size();
  check_mpi(MPI_Bcast(&length, 1, MPI_UINT64_T, 0, comm.comm()), "check_same_parameters: MPI_Bcast");
  text.resize(length);
  check_mpi(MPI_Bcast(text.data(), static_cast<int>(length), MPI_CHAR, 0, comm.comm()),
            "check_same_parameters: MPI_Bcast");
  const std::vector<std::string> theirs = split(text);
  std::string detail = "this rank's list matches rank 0's";
  for (std::size_t i = 0; i < std::max(mine.size(), theirs.size()); ++i) {
    const std::string a = i < mine.size() ? mine[i] : "(none)";
    const std::string b = i < theirs.size() ? theirs[i] : "(none)";
    if (a != b) {
      detail = fmt::format("this rank's parameter {} is {}, rank 0's is {}", i, a, b);
      break;
    }
  }
  throw ParameterMismatchError(fmt::format(
      "check_same_parameters: the ranks hold different parameter lists: rank {} has {} parameters (fingerprint "
      "{:016x}), rank 0 has {} (fingerprint {:016x}); on rank {}: {}",
      bad_rank, bad[0], bad[1], root[0], root[1], comm.rank(), detail));
}

}  // namespace

template <class S>
void check_same_parameters(const Communicator& comm, const std::vector<Parameter<S>*>& params) {
  const std::vector<std::string> lines = describe(params);
  const std::array<std::uint64_t, 2> mine{lines.size(), fingerprint(lines)};
  std::vector<std::uint64_t> all(2 * static_cast<std::size_t>(comm.size()));
  check_mpi(MPI_Allgather(mine.data(), 2, MPI_UINT64_T, all.data(), 2, MPI_UINT64_T, comm.comm()),
            "check_same_parameters: MPI_Allgather");
  const std::array<std::uint64_t, 2> root{all[0], all[1]};
  for (int r = 1; r < comm.size(); ++r) {
    const std::array<std::uint64_t, 2> other{all[2 * static_cast<std::size_t>(r)],
                                             all[2 * static_cast<std::size_t>(r) + 1]};
    if (other != root) raise_mismatch(comm, lines, r, root, other);
  }
}

template <class S>
void broadcast_parameters(const Communicator& comm, const std::vector<Parameter<S>*>& params) {
  check_same_parameters(comm, params);
  for (Parameter<S>* p : params) {
    if (p->size() == 0) continue;
    check_mpi(MPI_Bcast(p->value.data(), static_cast<int>(p->size()), detail::mpi_type<S>(), 0, comm.comm()),
              "broadcast_parameters: MPI_Bcast");
  }
}

template void check_same_parameters<float>(const Communicator&, const std::vector<Parameter<float>*>&);
template void check_same_parameters<double>(const Communicator&, const std::vector<Parameter<double>*>&);
template void broadcast_parameters<float>(const Communicator&, const std::vector<Parameter<float>*>&);
template void broadcast_parameters<double>(const Communicator&, const std::vector<Parameter<double>*>&);

}  // namespace tapegrad::distributed
