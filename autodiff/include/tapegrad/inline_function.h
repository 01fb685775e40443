// A move-only callable with an inline buffer, so recording a backward closure allocates
// nothing for the common case (a captureless lambda or one capturing a few scalars).
// Larger or throwing-move callables fall back to one heap allocation.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace tapegrad::detail {

template <class Signature, std::size_t Capacity = 32>
class InlineFunction;

template <class R, class... Args, std::size_t Capacity>
class InlineFunction<R(Args...), Capacity> {
 public:
  InlineFunction() = default;

  template <class F, class D = std::decay_t<F>, class = std::enable_if_t<!std::is_same_v<D, InlineFunction>>>
  InlineFunction(F&& f) {  // NOLINT(google-explicit-constructor): a callable converts implicitly
    if constexpr (fits_inline<D>()) {
      ::new (static_cast<void*>(buffer_)) D(std::forward<F>(f));
      invoke_ = [](void* p, Args... args) -> R {
        return (*std::launder(static_cast<D*>(p)))(std::forward<Args>(args)...);
      };
      if constexpr (!std::is_trivially_copyable_v<D>) manage_ = &manage_inline<D>;
    } else {
      D* heap = new D(std::forward<F>(f));
      ::new (static_cast<void*>(buffer_)) D*(heap);
      invoke_ = [](void* p, Args... args) -> R {
        return (**std::launder(static_cast<D**>(p)))(std::forward<Args>(args)...);
      };
      manage_ = &manage_heap<D>;
    }
  }

  InlineFunction(InlineFunction&& other) noexcept { take(other); }
  InlineFunction& operator=(InlineFunction&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  InlineFunction(const InlineFunction&) = delete;
  InlineFunction& operator=(const InlineFunction&) = delete;
  ~InlineFunction() { reset(); }

  explicit operator bool() const { return invoke_ != nullptr; }
  R operator()(Args... args) { return invoke_(buffer_, std::forward<Args>(args)...); }

 private:
  enum class Op { Move, Destroy };
  using Manage = void (*)(Op, void* self, void* other);

  template <class D>
  static constexpr bool fits_inline() {
    return sizeof(D) <= Capacity && alignof(D) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<D>;
  }
  template <class D>
  static void manage_inline(Op op, void* self, void* other) {
    if (op == Op::Move) ::new (self) D(std::move(*std::launder(static_cast<D*>(other))));
    std::launder(static_cast<D*>(op == Op::Move ? other : self))->~D();
  }
  template <class D>
  static void manage_heap(Op op, void* self, void* other) {
    if (op == Op::Move) {
      ::new (self) D*(*std::launder(static_cast<D**>(other)));
    } else {
      delete *std::launder(static_cast<D**>(self));
    }
  }

  void take(InlineFunction& other) noexcept {
    invoke_ = other.invoke_;
    manage_ = other.manage_;
    if (manage_) {
      manage_(Op::Move, buffer_, other.buffer_);
    } else if (invoke_) {
      std::memcpy(buffer_, other.buffer_, Capacity);
    }
    other.invoke_ = nullptr;
    other.manage_ = nullptr;
  }
  void reset() noexcept {
    if (manage_) manage_(Op::Destroy, buffer_, nullptr);
    invoke_ = nullptr;
    manage_ = nullptr;
  }

  alignas(std::max_align_t) std::byte buffer_[Capacity];
  R (*invoke_)(void*, Args...) = nullptr;
  Manage manage_ = nullptr;
};

}  // namespace tapegrad::detail
