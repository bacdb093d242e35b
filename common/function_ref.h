// FunctionRef<R(Args...)>: a non-owning reference to a callable, for
// callbacks that run during the call they are passed to (no allocation, no
// copy of the callable: std::function's capture buffer would allocate for
// a lambda that captures more than two references).
//
// Invariant: the callable outlives the FunctionRef (pass it down the stack
// only; never store it).
//
// Thread safety: as the callable it refers to.
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

namespace strata::common {

template <typename Signature>
class FunctionRef;

template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F,
            typename = std::enable_if_t<!std::is_same_v<std::remove_cvref_t<F>, FunctionRef> &&
                                        std::is_invocable_r_v<R, F&, Args...>>>
  FunctionRef(F&& f)  // NOLINT(google-explicit-constructor): as std::function
      : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* obj, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(obj))(std::forward<Args>(args)...);
        }) {}

  R operator()(Args... args) const { return call_(obj_, std::forward<Args>(args)...); }

 private:
  void* obj_;
  R (*call_)(void*, Args...);
};

}  // namespace strata::common
