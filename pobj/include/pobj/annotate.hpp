// pobj/annotate: the marks that pobj-gen reads in a user's header.
//
//   struct POBJ_PERSISTENT account {
//     std::int64_t balance;
//     pobj::ref<account> next;
//   };
//
// pobj-gen (codegen/) parses the header with libclang, where these expand to
// [[clang::annotate(...)]]; every other compiler sees nothing, so annotated headers compile
// without warnings under GCC and clang alike.
//
// Thread safety: not applicable (compile-time marks).
// Crash consistency: not applicable.
#pragma once

#if defined(__clang__)
#define POBJ_PERSISTENT [[clang::annotate("pobj::persistent")]]
#define POBJ_FAILURE_ATOMIC [[clang::annotate("pobj::failure_atomic")]]
#else
#define POBJ_PERSISTENT
#define POBJ_FAILURE_ATOMIC
#endif
