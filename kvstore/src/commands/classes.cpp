// Users' shared objects (docs/kvstore.md, "User-defined objects"): objects of persistent classes
// that pobj-gen compiled into a library pobj-kv loaded at start (--objects-library), whose
// POBJ_SHARED methods clients call by name (pobj/shared.hpp): method shipping, as Crucial's
// @Shared objects, with the state in the pool.
//
//   OBJ.NEW key class          makes a value-initialized object (1), or finds one there (0)
//   OBJ.CALL key method arg..  runs the method on the object, in the batch's block, and replies
//                              with its result (void: +OK)
//   OBJ.CLASS key              the object's class
//   OBJ.GET key                its fields, as text
//   OBJ.CLASSES                the classes loaded, each with its methods' signatures
//
// A key of type "pobj-object" holds the object through the owning map "pobj-kv.objects": the
// pool's heap check traces the object (and the strings and containers it owns) through it, DEL
// or an expiry destroys it, RENAME moves it. A method runs atomically and durably: what it
// changes joins the block of its batch, its reply is sent once that block is durable, and an
// exception from it rolls back its block (the server runs the batch's other commands again
// without it) and becomes the error reply. Under ONCE a call runs exactly once; inside MULTI, a
// failing call fails the whole EXEC.
//
// A pool keeps its objects when the server starts without their library: their class is in the
// pool's class table, so they are traced, DEL and RENAME work, OBJ.CLASS and OBJ.GET's class name
// still answer, and OBJ.CALL says which library is missing.
#include <array>

#include <fmt/format.h>
#include <pobj/shared.hpp>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

// The entry at `key` if it holds an object, and the object's block; false after replying.
bool load_object(command_context& c, std::string_view key, std::optional<std::uint64_t>& block) {
  std::optional<entry> e;
  if (!typed_entry(c, key, value_type::instance, e)) return false;
  if (!e) return true;
  block = c.db.object(key);
  if (!block) throw pobj::error(pobj::errc::corrupt, "pobj-kv: an object key without its object");
  return true;
}

std::string class_of(const pobj::pool& p, std::uint64_t block) {
  return pobj::detail::class_name(p, p.at<pobj::object_header>(block)->key);
}

std::string loaded_classes() {
  std::string names;
  for (const pobj::shared_class* k : pobj::shared_classes()) names += (names.empty() ? "" : ", ") + std::string(k->info->name);
  return names.empty() ? "none: start pobj-kv with --objects-library" : names;
}

void reply_value(command_context& c, const pobj::shared_value& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          c.reply.ok();
        } else if constexpr (std::is_same_v<T, bool>) {
          c.reply.boolean(x);
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          c.reply.integer(x);
        } else if constexpr (std::is_same_v<T, double>) {
          c.reply.double_value(x);
        } else {
          c.reply.bulk(x);
        }
      },
      v);
}

void obj_new(command_context& c) {
  const pobj::shared_class* k = pobj::find_shared_class(c.argv[2]);
  if (k == nullptr) return c.reply.error(fmt::format("ERR no shared class '{}' is loaded (loaded: {})", c.argv[2].substr(0, 128), loaded_classes()));
  std::optional<std::uint64_t> block;
  if (!load_object(c, c.argv[1], block)) return;
  if (block) {
    // Made already (by this caller's earlier try, or another's): the same class is success.
    if (pobj::class_id_of(c.db.pool(), *block) != k->info->class_id) {
      return c.reply.error(fmt::format("ERR '{}' holds a '{}', not a '{}'", c.argv[1].substr(0, 128),
                                       class_of(c.db.pool(), *block), k->info->name));
    }
    return c.reply.integer(0);
  }
  c.db.put_object(c.tx, c.argv[1], k->make(c.tx));
  c.server.touch(c.argv[1]);
  c.reply.integer(1);
}

void obj_call(command_context& c) {
  std::optional<std::uint64_t> block;
  if (!load_object(c, c.argv[1], block)) return;
  if (!block) return c.reply.error(fmt::format("ERR no object at '{}' (OBJ.NEW makes one)", c.argv[1].substr(0, 128)));
  pobj::pool& p = c.db.pool();
  const pobj::shared_class* k = pobj::find_shared_class(pobj::class_id_of(p, *block));
  if (k == nullptr) {
    return c.reply.error(fmt::format("ERR the object at '{}' is a '{}', whose methods no loaded library has (start "
                                     "pobj-kv with --objects-library naming the library of that class)",
                                     c.argv[1].substr(0, 128), class_of(p, *block)));
  }
  const pobj::shared_method* m = pobj::find_shared_method(*k, c.argv[2]);
  if (m == nullptr) {
    std::string names;
    for (const pobj::shared_class* x = k; x != nullptr; x = pobj::shared_base(*x)) {
      for (const pobj::shared_method& each : x->methods) names += (names.empty() ? "" : ", ") + std::string(each.name);
    }
    return c.reply.error(fmt::format("ERR class '{}' has no shared method '{}' (its methods: {})", k->info->name,
                                     c.argv[2].substr(0, 128), names.empty() ? "none" : names));
  }
  const std::span<const std::string_view> args = c.argv.subspan(3);
  if (args.size() != m->arity) {
    return c.reply.error(fmt::format("ERR wrong number of arguments for {}: {} takes {}", m->signature, m->name, m->arity));
  }
  pobj::shared_call call(p, *block, c.tx, m->name, args);
  engine_stats::method_counts& counts = c.server.stats().methods[m];
  ++counts.calls;
  ++counts.errors;  // until it returns
  try {
    m->invoke(call);
  } catch (const pobj::shared_argument_error& e) {
    if (call.has_started() && m->changes) throw;  // thrown by the method itself: its changes must be undone
    return c.reply.error(fmt::format("ERR {}", e.what()));
  } catch (const std::exception& e) {
    // A const method changed nothing: its error is just its reply.
    if (!m->changes) return c.reply.error(fmt::format("ERR {}.{}: {}", k->info->name, m->name, e.what()));
    // The block is rolled back. The pool full, a block too large: the server's replies say so;
    // otherwise the client learns which method refused, and why.
    if (dynamic_cast<const pobj::error*>(&e) != nullptr) throw;
    throw std::runtime_error(fmt::format("{}.{}: {}", k->info->name, m->name, e.what()));
  } catch (...) {
    const std::string what = fmt::format("{}.{}: threw something that is not a std::exception", k->info->name, m->name);
    if (!m->changes) return c.reply.error("ERR " + what);
    throw std::runtime_error(what);
  }
  --counts.errors;
  if (m->changes) {
    c.server.touch(c.argv[1]);
  } else {
    c.client.read_only_call = true;
  }
  reply_value(c, call.result());
}

void obj_class(command_context& c) {
  std::optional<std::uint64_t> block;
  if (!load_object(c, c.argv[1], block)) return;
  if (!block) return c.reply.null();
  c.reply.bulk(class_of(c.db.pool(), *block));
}

void obj_get(command_context& c) {
  std::optional<std::uint64_t> block;
  if (!load_object(c, c.argv[1], block)) return;
  if (!block) return c.reply.null();
  pobj::pool& p = c.db.pool();
  const pobj::shared_class* k = pobj::find_shared_class(pobj::class_id_of(p, *block));
  if (k == nullptr) return c.reply.bulk(fmt::format("{}{{...}} (its library is not loaded)", class_of(p, *block)));
  c.reply.bulk(k->describe(p, p.base() + *block + pobj::object_header_size));
}

void obj_classes(command_context& c) {
  const std::vector<const pobj::shared_class*> all = pobj::shared_classes();
  c.reply.array(all.size());
  for (const pobj::shared_class* k : all) {
    c.reply.array(3);
    c.reply.bulk(k->info->name);
    c.reply.bulk(k->info->base_name);
    c.reply.array(k->methods.size());
    for (const pobj::shared_method& m : k->methods) c.reply.bulk(m.signature);
  }
}

using namespace command_flags;

const std::array table{
    command_spec{"obj.new", 3, write | deny_oom | fast, obj_new, 1, 1, 1, "object", "makes an object of a loaded class"},
    command_spec{"obj.call", -3, write | deny_oom, obj_call, 1, 1, 1, "object", "runs a shared method of an object"},
    command_spec{"obj.class", 2, readonly | fast, obj_class, 1, 1, 1, "object", "the class of an object"},
    command_spec{"obj.get", 2, readonly, obj_get, 1, 1, 1, "object", "an object's fields, as text"},
    command_spec{"obj.classes", 1, readonly, obj_classes, 0, 0, 0, "object", "the shared classes loaded, with their methods"},
};

}  // namespace

std::span<const command_spec> class_commands() { return table; }

}  // namespace pobj::kv
