// Lifetimes the tape cannot own: Parameters moved, destroyed, replaced or resized while a tape
// refers to them, Vars that outlive their Tape, and time-step scopes closed out of order. Each is
// detected and thrown as a typed error (never a write through a dangling pointer, never a silent
// zero gradient), and afterwards the gradients are those of a closed form.
#include <gtest/gtest.h>
#include <tapegrad/tapegrad.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine_test_ops.h"

using namespace tapegrad;
using namespace tapegrad::testing;
using M = Matrix<double>;

// ---- parameters -----------------------------------------------------------------------------

TEST(Lifetimes, ParameterMovedByAGrowingVectorIsATapeErrorAndNoGradientIsLost) {
  Tape<double> tape;
  std::vector<Parameter<double>> params;
  params.emplace_back(row(1, 2), "W0");
  params[0].grad = row(5, 6);
  const Var<double> w = tape.leaf(params[0]);
  const Var<double> loss = t_sum(t_scale(w, 3.0));
  const std::size_t capacity = params.capacity();
  while (params.size() <= capacity) params.emplace_back(row(0, 0), "more");  // reallocates: W0 moves
  const std::string msg = message_of<TapeError>([&] { tape.backward(loss); });
  for (const char* word : {"parameter 'W0'", "moved", "reserve"}) expect_contains(msg, word);
  EXPECT_EQ(params[0].grad, row(5, 6)) << "the moved parameter keeps its gradient";
  tape.clear();  // record again against the parameter where it is now
  tape.backward(t_sum(t_scale(tape.leaf(params[0]), 3.0)));
  EXPECT_EQ(params[0].grad, row(8, 9));  // 5 + 3, 6 + 3
}

TEST(Lifetimes, ParameterDestroyedWhileTheTapeRefersToItIsATapeError) {
  Tape<double> tape;
  auto p = std::make_unique<Parameter<double>>(row(1, 2), "gone");
  const Var<double> loss = t_sum(tape.leaf(*p));
  p.reset();  // the tape still lists it
  expect_error<TapeError>([&] { tape.backward(loss); }, "parameter 'gone'");
  // A sweep that does not add into parameters (a Jacobian probe) never touches it, so it is fine.
  tape.backward(loss, BackwardOptions{.accumulate_parameters = false});
  EXPECT_EQ(loss.grad()(0, 0), 1.0);
}

TEST(Lifetimes, ParameterAssignedOverIsANewParameter) {
  Tape<double> tape;
  Parameter<double> p(row(1, 2), "p");
  const Var<double> loss = t_sum(tape.leaf(p));
  p = Parameter<double>(row(7, 8), "p2");  // replaced: the recorded leaf held the old value
  expect_error<TapeError>([&] { tape.backward(loss); }, "assigned over");
  EXPECT_TRUE(p.grad.isZero());
  // A parameter recorded after the replacement is a fresh leaf holding the new value.
  const Var<double> fresh = tape.leaf(p);
  EXPECT_EQ(fresh.value(), row(7, 8));
}

TEST(Lifetimes, ANewParameterAtTheAddressOfADeadOneIsNotConfusedWithIt) {
  Tape<double> tape;
  std::optional<Parameter<double>> slot;
  slot.emplace(row(1, 2), "first");
  const Var<double> a = tape.leaf(*slot);
  slot.emplace(row(3, 4), "second");  // same storage, another parameter
  const Var<double> b = tape.leaf(*slot);
  EXPECT_NE(a.id(), b.id());
  EXPECT_EQ(b.value(), row(3, 4));
}

TEST(Lifetimes, ParameterResizedAfterRecordingIsAShapeErrorNamingBothShapes) {
  Tape<double> tape;
  Parameter<double> p(row(1, 2), "R");
  const Var<double> loss = t_sum(tape.leaf(p));
  p.value = M::Ones(3, 3);
  p.grad = M::Constant(3, 3, 4.0);
  const std::string msg = message_of<ShapeError>([&] { tape.backward(loss); });
  for (const char* word : {"parameter 'R'", "[3 x 3]", "[1 x 2]"}) expect_contains(msg, word);
  EXPECT_EQ(p.grad, M::Constant(3, 3, 4.0));
  const std::string again = message_of<ShapeError>([&] { (void)tape.leaf(p); });
  for (const char* word : {"leaf: parameter 'R'", "[3 x 3]", "[1 x 2]"}) expect_contains(again, word);
  tape.clear();
  tape.backward(t_sum(tape.leaf(p)));
  EXPECT_EQ(p.grad, M::Constant(3, 3, 5.0));
}

TEST(Lifetimes, CopiesAndMovesKeepTheirValuesAndGradients) {
  Parameter<double> p(row(1, 2), "p");
  p.grad = row(3, 4);
  const Parameter<double> copy = p;
  EXPECT_EQ(copy.name, "p");
  EXPECT_EQ(copy.value, row(1, 2));
  EXPECT_EQ(copy.grad, row(3, 4));
  const Parameter<double> moved = std::move(p);
  EXPECT_EQ(moved.value, row(1, 2));
  EXPECT_EQ(moved.grad, row(3, 4));
}

// ---- handles that outlive their tape -------------------------------------------------------------

TEST(Lifetimes, VarOutlivingItsTapeIsATapeError) {
  auto tape = std::make_unique<Tape<double>>();
  const Var<double> x = tape->variable(row(0.5, -0.3));
  const Var<double> y = tanh(x);
  tape.reset();
  EXPECT_FALSE(y.valid());
  EXPECT_FALSE(y.empty());
  expect_error<TapeError>([&] { (void)y.value(); }, "outlived its tape");
  expect_error<TapeError>([&] { (void)y.grad(); }, "outlived its tape");
  expect_error<TapeError>([&] { (void)tanh(y); }, "outlived its tape");
  expect_error<TapeError>([&] { y.backward(); }, "outlived its tape");
  // A new tape, which may well reuse the old one's memory and anchor, does not revive them.
  Tape<double> next;
  const Var<double> z = next.variable(row(1, 1));
  EXPECT_FALSE(y.valid());
  expect_error<TapeError>([&] { (void)t_plus(z, y); }, "t_plus");
  next.backward(t_sum(t_scale(tanh(z), 3.0)));
  EXPECT_TRUE(z.grad().isApprox((3.0 * (1.0 - row(1, 1).array().tanh().square())).matrix(), 1e-14));
}

TEST(Lifetimes, TapesMadeAndDestroyedOnSeveralThreadsKeepTheirHandlesApart) {
  // Tape anchors come from one process-wide pool; each thread's dead handles stay dead.
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < failures.size(); ++t) {
    threads.emplace_back([&failures, t] {
      Var<double> previous;
      for (int i = 0; i < 200; ++i) {
        Tape<double> tape;
        const Var<double> x = tape.variable(row(0.1 * static_cast<double>(t), 0.5));
        tape.backward(t_sum(t_times(x, x)));
        if (x.grad() != 2.0 * row(0.1 * static_cast<double>(t), 0.5)) ++failures[t];
        if (previous.valid()) ++failures[t];
        previous = x;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const int f : failures) EXPECT_EQ(f, 0);
}

TEST(Lifetimes, AHandleOfADeadTapeDoesNotReadTheTapeThatNowHasItsAnchor) {
  // The dead tape's anchor goes back to the shared pool and the next tape made anywhere takes it
  // (the pool hands out the latest one released). The old handle, read here while another thread
  // records on that new tape, must see "destroyed" from the anchor alone: ThreadSanitizer and
  // AddressSanitizer report any read of the other thread's tape.
  Var<double> orphan;
  {
    Tape<double> tape;
    orphan = tape.variable(row(1.0, 2.0));
  }
  std::atomic<bool> started{false};
  std::atomic<bool> done{false};
  std::thread other([&] {
    Tape<double> tape;
    started = true;
    for (int i = 0; i < 2000; ++i) {
      const Var<double> x = tape.variable(row(0.5, static_cast<double>(i)));
      (void)t_sum(t_times(x, x));  // grows the tape's slots while the orphan is read
    }
    done = true;
  });
  while (!started) std::this_thread::yield();
  int valid_reads = 0;
  int reads = 0;
  do {
    ++reads;
    if (orphan.valid()) ++valid_reads;
  } while (!done);
  other.join();
  EXPECT_GT(reads, 0);
  EXPECT_EQ(valid_reads, 0);
  const std::string msg = message_of<TapeError>([&] { (void)orphan.value(); });
  expect_contains(msg, "outlived its tape");
}

// ---- time-step scopes --------------------------------------------------------------------------

TEST(Lifetimes, ScopeClosedOutOfOrderRestoresTheTagAndTheNextChangeThrows) {
  Tape<double> tape;
  const Var<double> x = tape.variable(row(0.5, -0.3));
  std::optional<Tape<double>::TimeScope> outer;
  outer.emplace(tape, 1);
  {
    auto inner = tape.time_step(2);
    outer.reset();  // closes 1 while 2 is open: no exception from a destructor, the tag is repaired
    EXPECT_EQ(tape.current_time(), kNoTime);
    const std::string msg = message_of<TapeError>([&] { (void)tanh(x); });
    for (const char* word : {"tanh: refused", "time_step(1)", "1 time-step scope(s)", "reverse order"})
      expect_contains(msg, word);
  }  // inner closes without effect: it was closed with its outer scope
  EXPECT_EQ(tape.current_time(), kNoTime) << "no stale tag";
  const Var<double> y = tanh(x);  // reported once; the tape works again
  EXPECT_EQ(y.time(), kNoTime);
  {
    auto s = tape.time_step(7);
    EXPECT_EQ(tanh(x).time(), 7);
  }
  EXPECT_EQ(tape.current_time(), kNoTime);
}

TEST(Lifetimes, ScopesClosedInOrderAfterAnErrorNestNormally) {
  Tape<double> tape;
  const Var<double> x = tape.variable(row(0.5, -0.3));
  auto a = std::make_unique<Tape<double>::TimeScope>(tape, 1);
  auto b = std::make_unique<Tape<double>::TimeScope>(tape, 2);
  auto c = std::make_unique<Tape<double>::TimeScope>(tape, 3);
  b.reset();  // closes 2 and 3
  EXPECT_EQ(tape.current_time(), 1);
  EXPECT_THROW((void)tanh(x), TapeError);
  c.reset();
  EXPECT_EQ(tape.current_time(), 1);
  EXPECT_EQ(tanh(x).time(), 1);
  a.reset();
  EXPECT_EQ(tape.current_time(), kNoTime);
}
