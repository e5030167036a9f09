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

// POBJ_PERSISTENT marks a class. In a persistent class, POBJ_METHOD marks a method that pobj-gen
// declares on the proxy, for the user to define there; POBJ_FAILURE_ATOMIC marks one that also
// runs in a failure-atomic block: the user defines it with a pobj::transaction& first parameter,
// and pobj-gen adds the overload without it, which opens the block (docs/objects.md).
// POBJ_SHARED marks a method that a server may run for its clients, by name, with arguments sent
// as text (pobj-kv's OBJ.CALL; pobj/shared.hpp): const, it is a plain method; otherwise it is
// failure-atomic, and runs in the server's block.
// POBJ_APPENDED marks a field appended to a class after objects of it were made: objects older
// than the field read its default. Only marked fields pay for that check; opening a pool that holds
// older objects fails, naming the field, if it is not marked.
#if defined(__clang__)
#define POBJ_PERSISTENT [[clang::annotate("pobj::persistent")]]
#define POBJ_METHOD [[clang::annotate("pobj::method")]]
#define POBJ_FAILURE_ATOMIC [[clang::annotate("pobj::failure_atomic")]]
#define POBJ_APPENDED [[clang::annotate("pobj::appended")]]
#define POBJ_SHARED [[clang::annotate("pobj::shared")]]
#else
#define POBJ_PERSISTENT
#define POBJ_METHOD
#define POBJ_FAILURE_ATOMIC
#define POBJ_APPENDED
#define POBJ_SHARED
#endif
