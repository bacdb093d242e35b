// Clang thread-safety annotations, as LevelDB's port/thread_annotations.h
// has them: they let clang's -Wthread-safety check, at compile time, that
// data marked GUARDED_BY(mu) is only touched with `mu` held, that functions
// marked REQUIRES(mu) are only called with it held, and that locks are
// released on every path. They expand to nothing on other compilers (GCC),
// so they cost nothing at run time. See
// https://clang.llvm.org/docs/ThreadSafetyAnalysis.html.
//
// The annotated mutex and its scoped lock are in common/mutex.h, which also
// states the lock order.
//
// Thread safety: macros only; no state.
#pragma once

#if defined(__clang__) && !defined(SWIG)
#define STRATA_THREAD_ANNOTATION_ATTRIBUTE__(x) __attribute__((x))
#else
#define STRATA_THREAD_ANNOTATION_ATTRIBUTE__(x)  // no-op
#endif

// A class that is a capability (a mutex); `x` names its kind in warnings.
#ifndef CAPABILITY
#define CAPABILITY(x) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(capability(x))
#endif

// An RAII class that holds a capability for its lifetime.
#ifndef SCOPED_CAPABILITY
#define SCOPED_CAPABILITY STRATA_THREAD_ANNOTATION_ATTRIBUTE__(scoped_lockable)
#endif

// A data member readable and writable only with the capability held.
#ifndef GUARDED_BY
#define GUARDED_BY(x) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(guarded_by(x))
#endif

// A pointer member whose pointee is guarded by the capability (the pointer
// itself is not).
#ifndef PT_GUARDED_BY
#define PT_GUARDED_BY(x) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(pt_guarded_by(x))
#endif

// Lock order: this mutex is acquired before (after) the ones listed.
#ifndef ACQUIRED_AFTER
#define ACQUIRED_AFTER(...) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(acquired_after(__VA_ARGS__))
#endif

#ifndef ACQUIRED_BEFORE
#define ACQUIRED_BEFORE(...) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(acquired_before(__VA_ARGS__))
#endif

// The caller must hold the capabilities (exclusively / shared).
#ifndef REQUIRES
#define REQUIRES(...) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(requires_capability(__VA_ARGS__))
#endif

#ifndef REQUIRES_SHARED
#define REQUIRES_SHARED(...) \
  STRATA_THREAD_ANNOTATION_ATTRIBUTE__(requires_shared_capability(__VA_ARGS__))
#endif

// The function acquires (releases) the capabilities; with no argument, the
// object's own.
#ifndef ACQUIRE
#define ACQUIRE(...) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(acquire_capability(__VA_ARGS__))
#endif

#ifndef ACQUIRE_SHARED
#define ACQUIRE_SHARED(...) \
  STRATA_THREAD_ANNOTATION_ATTRIBUTE__(acquire_shared_capability(__VA_ARGS__))
#endif

#ifndef RELEASE
#define RELEASE(...) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(release_capability(__VA_ARGS__))
#endif

#ifndef RELEASE_SHARED
#define RELEASE_SHARED(...) \
  STRATA_THREAD_ANNOTATION_ATTRIBUTE__(release_shared_capability(__VA_ARGS__))
#endif

// The function tries to acquire; the first argument is the return value
// that means success.
#ifndef TRY_ACQUIRE
#define TRY_ACQUIRE(...) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(try_acquire_capability(__VA_ARGS__))
#endif

#ifndef TRY_ACQUIRE_SHARED
#define TRY_ACQUIRE_SHARED(...) \
  STRATA_THREAD_ANNOTATION_ATTRIBUTE__(try_acquire_shared_capability(__VA_ARGS__))
#endif

// The caller must not hold the capabilities (the function takes them).
#ifndef EXCLUDES
#define EXCLUDES(...) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(locks_excluded(__VA_ARGS__))
#endif

// The function checks at run time that the capability is held; the
// analysis assumes it is afterwards.
#ifndef ASSERT_CAPABILITY
#define ASSERT_CAPABILITY(x) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(assert_capability(x))
#endif

#ifndef ASSERT_SHARED_CAPABILITY
#define ASSERT_SHARED_CAPABILITY(x) \
  STRATA_THREAD_ANNOTATION_ATTRIBUTE__(assert_shared_capability(x))
#endif

// The function returns a reference to the capability.
#ifndef RETURN_CAPABILITY
#define RETURN_CAPABILITY(x) STRATA_THREAD_ANNOTATION_ATTRIBUTE__(lock_returned(x))
#endif

// Turns the analysis off for one function; each use says why in a comment.
#ifndef NO_THREAD_SAFETY_ANALYSIS
#define NO_THREAD_SAFETY_ANALYSIS STRATA_THREAD_ANNOTATION_ATTRIBUTE__(no_thread_safety_analysis)
#endif
