// Class registration and schema checks (pobj/object.hpp), and persistent strings (pobj/string.hpp).
//
// The pool records each class as text, so an error can name the field that changed:
//
//   pobj-schema 1
//   class bank::account
//   base -
//   size 56
//   field balance v 0 8 std::int64_t
//   field home r 16 8 ::pobj::ref<bank::branch>
//
// one `field` line per field, the base class's first: name, kind (v value, r reference, s string),
// offset, size, type.
#include <algorithm>
#include <cstring>
#include <sstream>

#include <fmt/format.h>
#include <pobj/codec.hpp>
#include <pobj/heap.hpp>
#include <pobj/object.hpp>
#include <pobj/shared.hpp>
#include <pobj/string.hpp>

#include "pool/pool_impl.hpp"
#include "object/schema_impl.hpp"

namespace pobj::detail {

namespace {

struct compiled_registry {
  mutex mu;
  std::vector<const class_info*> classes POBJ_GUARDED_BY(mu);
};

compiled_registry& compiled() {
  static compiled_registry r;
  return r;
}

std::vector<const class_info*> compiled_classes() {
  compiled_registry& r = compiled();
  lock_guard lock(r.mu);
  return r.classes;
}

std::string schema_text(const class_info& c) {
  std::string out = fmt::format("pobj-schema 1\nclass {}\nbase {}\nsize {}\n", c.name,
                                c.base_name[0] == '\0' ? "-" : c.base_name, c.size);
  for (const auto& f : c.fields) {
    out += fmt::format("field {} {} {} {} {}\n", f.name, f.kind, f.offset, f.size, f.type);
  }
  return out;
}

// Parses a recorded schema; false if it is not one (a damaged pool).
bool parse_schema(std::string_view text, class_entry& e) {
  std::istringstream in{std::string(text)};
  std::string line;
  if (!std::getline(in, line) || line != "pobj-schema 1") return false;
  auto value = [&](const char* key, std::string& out) {
    if (!std::getline(in, line)) return false;
    std::string prefix = std::string(key) + " ";
    if (line.rfind(prefix, 0) != 0) return false;
    out = line.substr(prefix.size());
    return !out.empty();
  };
  std::string size;
  if (!value("class", e.name) || !value("base", e.base_name) || !value("size", size)) return false;
  if (e.base_name == "-") e.base_name.clear();
  try {
    e.size = static_cast<std::uint32_t>(std::stoul(size));
  } catch (const std::exception&) {
    return false;
  }
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string word;
    recorded_field f;
    if (!(fields >> word) || word != "field" || !(fields >> f.name >> f.kind >> f.offset >> f.size)) return false;
    std::getline(fields >> std::ws, f.type);
    if (f.type.empty() || (f.kind != 'v' && f.kind != 'r' && f.kind != 's' && f.kind != 'c')) return false;
    if (std::uint64_t{f.offset} + f.size > e.size) return false;
    e.fields.push_back(std::move(f));
  }
  return true;
}

std::unique_ptr<class_entry> entry_of(const class_info& c, std::uint32_t min_size) {
  auto e = std::make_unique<class_entry>();
  e->class_id = c.class_id;
  e->base_id = c.base_id;
  e->schema_hash = c.schema_hash;
  e->size = c.size;
  e->min_size = min_size;
  e->name = c.name;
  e->base_name = c.base_name;
  for (const auto& f : c.fields) e->fields.push_back({f.name, f.type, f.kind, f.offset, f.size});
  return e;
}

std::string describe(const recorded_field& f) {
  return fmt::format("'{}' ({}, {} bytes at offset {})", f.name, f.type, f.size, f.offset);
}

// A field that objects in the pool may be too old to hold, and that the program reads without
// checking (not marked POBJ_APPENDED); empty if none.
std::string unmarked_appended(std::uint32_t min_size, const class_info& program) {
  for (const field_info& f : program.fields) {
    if (std::uint64_t{f.offset} + f.size > min_size && !f.appended) {
      return fmt::format("field '{}' was appended after objects of {} bytes were made: mark it POBJ_APPENDED, so "
                         "that they read its default",
                         f.name, min_size);
    }
  }
  return {};
}

// Why the compiled class cannot use the recorded one; empty if it is the same or only appends
// fields.
std::string incompatibility(const class_entry& recorded, const class_info& program) {
  if (recorded.base_name != program.base_name) {
    return fmt::format("its base class is '{}' in the pool and '{}' in the program",
                       recorded.base_name.empty() ? "none" : recorded.base_name,
                       program.base_name[0] == '\0' ? "none" : program.base_name);
  }
  for (std::size_t i = 0; i < recorded.fields.size(); ++i) {
    const recorded_field& r = recorded.fields[i];
    if (i >= program.fields.size()) {
      return fmt::format("field {} is in the pool but not in the program (removing fields is not an "
                         "additive change)",
                         describe(r));
    }
    const field_info& f = program.fields[i];
    recorded_field now{f.name, f.type, f.kind, f.offset, f.size};
    if (r.name != now.name || r.type != now.type || r.offset != now.offset || r.size != now.size || r.kind != now.kind) {
      return fmt::format("field {} in the pool is field {} in the program (only fields appended at the end "
                         "upgrade in place)",
                         describe(r), describe(now));
    }
  }
  if (program.size < recorded.size) {
    return fmt::format("it has {} bytes in the pool and {} in the program", recorded.size, program.size);
  }
  return unmarked_appended(recorded.min_size, program);
}

void set_tracer_for(pool& p, std::uint16_t key, const class_entry& e) {
  std::vector<std::pair<std::uint32_t, char>> refs;  // every reference word (arrays of them too)
  for (const auto& f : e.fields) {
    if (f.kind == 'v' || f.size % 8 != 0) continue;
    for (std::uint32_t at = 0; at < f.size; at += 8) refs.emplace_back(f.offset + at, f.kind);
  }
  p.heap().set_tracer(key, [refs](const void* object, std::size_t block, const reference_visitor& visit) {
    const auto* base = static_cast<const std::byte*>(object);
    object_header h;
    std::memcpy(&h, base, sizeof(h));
    const std::uint64_t size = std::min<std::uint64_t>(h.size, block - object_header_size);
    for (auto [offset, kind] : refs) {
      if (std::uint64_t{offset} + 8 > size) continue;
      std::uint64_t w;
      std::memcpy(&w, base + object_header_size + offset, 8);
      if (kind == 's' ? string_is_block(w) : w != 0) visit(w);
    }
  });
}

// The class ids an entry is: itself, its base, its base's base... as far as `all` knows them.
void compute_ancestors(class_entry& e, const std::vector<const class_entry*>& all) {
  e.ancestors.assign(1, e.class_id);
  std::uint64_t next = e.base_id;
  while (next != 0 && e.ancestors.size() <= all.size() &&
         std::find(e.ancestors.begin(), e.ancestors.end(), next) == e.ancestors.end()) {
    e.ancestors.push_back(next);
    std::uint64_t parent = 0;
    for (const class_entry* o : all) {
      if (o->class_id == next) parent = o->base_id;
    }
    next = parent;
  }
}

std::int64_t find_entry(const class_state& st, std::uint32_t count, std::uint64_t class_id) {
  for (std::uint32_t i = 0; i < count; ++i) {
    if (st.entry(i).class_id == class_id) return i;
  }
  return -1;
}

// Publishes a new set of entries (replacing the first `count` where `fresh` has one, appending
// the rest), with ancestors computed over all of them. REQUIRES: st.mu held.
void publish_entries(pool& p, class_state& st, std::uint32_t count,
                     std::vector<std::pair<std::uint32_t, std::unique_ptr<class_entry>>> fresh)
    POBJ_REQUIRES(st.mu) {
  std::vector<const class_entry*> all;
  std::uint32_t total = count;
  for (auto& [i, e] : fresh) total = std::max(total, i + 1);
  all.resize(total, nullptr);
  for (std::uint32_t i = 0; i < count; ++i) all[i] = &st.entry(i);
  for (auto& [i, e] : fresh) all[i] = e.get();
  for (auto& [i, e] : fresh) {
    compute_ancestors(*e, all);
    set_tracer_for(p, static_cast<std::uint16_t>(i + 1), *e);
  }
  for (auto& [i, e] : fresh) {
    st.entries[i].store(e.get(), std::memory_order_release);
    st.owned.push_back(std::move(e));
  }
  st.count.store(total, std::memory_order_release);
}

// Recording a class is a block of its own: inside the caller's, its abort would take the record
// back after the DRAM table had it.
void refuse_registration_in_block(pool& p, const char* name) {
  if (transaction::active(p)) {
    throw error(errc::invalid_argument,
                fmt::format("pobj: class '{}' is not yet recorded in pool '{}' (its code was loaded after the pool "
                            "was opened): call pobj::register_classes(pool) outside a failure-atomic block first",
                            name, p.path()));
  }
}

// Brings the pool's class table up to date with `program`: throws schema_mismatch (changing
// nothing) if one class is incompatible, else records the new classes and upgrades the others in
// one failure-atomic block. REQUIRES: st.mu held.
void sync_classes(pool& p, class_state& st, const std::vector<const class_info*>& program) POBJ_REQUIRES(st.mu) {
  const std::uint32_t count = st.count.load(std::memory_order_relaxed);
  std::vector<const class_info*> added;
  std::vector<std::pair<std::uint32_t, const class_info*>> upgraded;
  for (const class_info* c : program) {
    std::int64_t i = find_entry(st, count, c->class_id);
    if (i < 0) {
      if (std::find_if(added.begin(), added.end(), [&](auto* a) { return a->class_id == c->class_id; }) == added.end()) {
        added.push_back(c);
      }
      continue;
    }
    const class_entry& e = st.entry(static_cast<std::uint32_t>(i));
    if (e.schema_hash == c->schema_hash) {
      std::string why = unmarked_appended(e.min_size, *c);
      if (!why.empty()) {
        throw error(errc::schema_mismatch,
                    fmt::format("pobj: pool '{}' holds objects of class '{}' older than this program's layout: {}",
                                p.path(), c->name, why));
      }
      continue;
    }
    if (e.name != c->name) {
      throw error(errc::schema_mismatch,
                  fmt::format("pobj: pool '{}' records class '{}' under the id of the program's class '{}' "
                              "(a hash collision): rename one of them",
                              p.path(), e.name, c->name));
    }
    std::string why = incompatibility(e, *c);
    if (!why.empty()) {
      throw error(errc::schema_mismatch,
                  fmt::format("pobj: pool '{}' holds class '{}' with another layout than this program: {}", p.path(),
                              c->name, why));
    }
    upgraded.emplace_back(static_cast<std::uint32_t>(i), c);
  }
  if (added.empty() && upgraded.empty()) return;
  if (count + added.size() > max_classes) {
    throw error(errc::out_of_space,
                fmt::format("pobj: pool '{}' cannot record more than {} classes", p.path(), max_classes));
  }
  refuse_registration_in_block(p, added.empty() ? upgraded.front().second->name : added.front()->name);

  const offset_t old_table = st.table;
  run_tx(p, [&](transaction& tx) {
    auto* table = old_table != 0 ? p.at<class_table>(old_table) : nullptr;
    const std::uint32_t needed = count + static_cast<std::uint32_t>(added.size());
    if (table == nullptr || needed > table->capacity) {
      std::uint32_t capacity = table == nullptr ? 32 : table->capacity;
      while (capacity < needed) capacity *= 2;
      allocation a = tx.alloc(offsetof(class_table, records) + capacity * sizeof(class_record), class_table_type);
      auto* fresh = static_cast<class_table*>(a.pointer);
      fresh->magic = class_table_magic;
      fresh->count = count;
      fresh->capacity = capacity;
      if (table != nullptr) {
        std::memcpy(fresh->records, table->records, count * sizeof(class_record));
        tx.free(old_table);
      }
      p.set_root(class_table_root, a.offset);
      table = fresh;
    }
    std::uint32_t n = count;
    for (const class_info* c : added) {
      class_record& r = table->records[n++];
      tx.snapshot(&r, sizeof(r));
      r = class_record{c->class_id, c->schema_hash, c->base_id, 0, c->size, c->data_size};
      assign_string(tx, r.schema, schema_text(*c));
    }
    for (auto [i, c] : upgraded) {
      class_record& r = table->records[i];
      tx.snapshot(&r, offsetof(class_record, schema));
      r.schema_hash = c->schema_hash;
      tx.set(r.size, c->size);
      assign_string(tx, r.schema, schema_text(*c));
    }
    tx.set(table->count, n);
  });

  // Committed: publish the DRAM image.
  st.table = p.root(class_table_root);
  std::vector<std::pair<std::uint32_t, std::unique_ptr<class_entry>>> fresh;
  for (auto [i, c] : upgraded) fresh.emplace_back(i, entry_of(*c, st.entry(i).min_size));
  std::uint32_t n = count;
  for (const class_info* c : added) fresh.emplace_back(n++, entry_of(*c, c->data_size));
  publish_entries(p, st, count, std::move(fresh));
}

}  // namespace

bool register_class(const class_info& info) noexcept {
  compiled_registry& r = compiled();
  lock_guard lock(r.mu);
  r.classes.push_back(&info);
  return true;
}

void attach_classes(pool& p) {
  pool_impl& impl = p.impl();
  impl.classes = std::make_unique<class_state>();
  class_state& st = *impl.classes;
  p.heap().set_tracer(string_block_type, [](const void*, std::size_t, const reference_visitor&) {});
  p.heap().set_tracer(class_table_type, [](const void* object, std::size_t block, const reference_visitor& visit) {
    const auto* t = static_cast<const class_table*>(object);
    const std::size_t fits = (block - offsetof(class_table, records)) / sizeof(class_record);
    for (std::uint32_t i = 0; i < std::min<std::size_t>(t->count, fits); ++i) {
      if (string_is_block(t->records[i].schema)) visit(t->records[i].schema);
    }
  });
  lock_guard lock(st.mu);
  if (offset_t t = p.root(class_table_root); t != 0) {
    const std::size_t usable = p.heap().usable_size(t);
    const auto* table = p.at<class_table>(t);
    auto damaged = [&](const std::string& why) {
      return error(errc::corrupt, fmt::format("pobj: pool '{}' has a damaged class table: {}", p.path(), why));
    };
    if (usable < offsetof(class_table, records) || table->magic != class_table_magic ||
        table->capacity > (usable - offsetof(class_table, records)) / sizeof(class_record) ||
        table->count > table->capacity || table->count > max_classes) {
      throw damaged("bad header");
    }
    std::vector<std::pair<std::uint32_t, std::unique_ptr<class_entry>>> loaded;
    for (std::uint32_t i = 0; i < table->count; ++i) {
      const class_record& r = table->records[i];
      auto e = std::make_unique<class_entry>();
      const std::uint64_t w = r.schema;
      if (string_is_block(w)) {
        std::uint64_t n = 0;
        const std::size_t room = p.heap().usable_size(w);
        if (room >= 8) std::memcpy(&n, p.at<std::byte>(w), 8);
        if (room < 8 || n > room - 8) throw damaged(fmt::format("record {} has no schema", i));
      }
      if (!parse_schema(read_string(p, r.schema), *e) || e->size != r.size) {
        throw damaged(fmt::format("record {} does not parse", i));
      }
      e->class_id = r.class_id;
      e->base_id = r.base_id;
      e->schema_hash = r.schema_hash;
      e->min_size = r.min_size;
      if (e->min_size > e->size) throw damaged(fmt::format("record {} has a bad size", i));
      loaded.emplace_back(i, std::move(e));
    }
    st.table = t;
    publish_entries(p, st, 0, std::move(loaded));
  }
  sync_classes(p, st, compiled_classes());
}

std::uint16_t class_key(pool& p, const class_info& info) {
  class_state& st = *p.impl().classes;
  auto lookup = [&]() -> std::uint16_t {
    std::uint32_t count = st.count.load(std::memory_order_acquire);
    for (std::uint32_t i = 0; i < count; ++i) {
      if (st.entry(i).class_id == info.class_id && st.entry(i).schema_hash == info.schema_hash) {
        return static_cast<std::uint16_t>(i + 1);
      }
    }
    return 0;
  };
  if (std::uint16_t k = lookup(); k != 0) return k;
  refuse_registration_in_block(p, info.name);  // before locking: registering needs a block of its own
  lock_guard lock(st.mu);
  // Everything the program has that the pool lacks, bases included, so ancestors are complete.
  std::vector<const class_info*> program = compiled_classes();
  if (std::find(program.begin(), program.end(), &info) == program.end()) program.push_back(&info);
  sync_classes(p, st, program);
  return lookup();
}

bool is_a(const pool& p, std::uint16_t key, std::uint64_t class_id) noexcept {
  const class_state& st = *p.impl().classes;
  if (key == 0 || key > st.count.load(std::memory_order_acquire)) return false;
  const class_entry& e = st.entry(key - 1u);
  if (e.class_id == class_id) return true;
  return std::find(e.ancestors.begin(), e.ancestors.end(), class_id) != e.ancestors.end();
}

}  // namespace pobj::detail

namespace pobj {

std::uint64_t class_id_of(const pool& p, std::uint64_t block) noexcept {
  const detail::class_state& st = *p.impl().classes;
  const std::uint16_t key = p.at<object_header>(block)->key;
  if (key == 0 || key > st.count.load(std::memory_order_acquire)) return 0;
  return st.entry(key - 1u).class_id;
}

}  // namespace pobj

namespace pobj::detail {

std::string class_name(const pool& p, std::uint16_t key) {
  const class_state& st = *p.impl().classes;
  if (key == 0 || key > st.count.load(std::memory_order_acquire)) return "?";
  return st.entry(key - 1u).name;
}

void throw_wrong_class(const pool& p, std::uint16_t key, const char* wanted) {
  throw error(errc::wrong_class, fmt::format("pobj: the object is a '{}', not {}{}{}", class_name(p, key),
                                             std::strchr(wanted, ' ') != nullptr ? "" : "a '", wanted,
                                             std::strchr(wanted, ' ') != nullptr ? "" : "'"));
}

void throw_field_too_new(const char* cls, const char* field, std::uint32_t object_size) {
  throw error(errc::schema_mismatch,
              fmt::format("pobj: this '{}' was made before field '{}' was added (it has {} bytes): the field reads "
                          "as its default and cannot be set; make a new object",
                          cls, field, object_size));
}

void throw_index(const char* cls, const char* field, std::size_t i, std::size_t count) {
  throw error(errc::invalid_argument,
              fmt::format("pobj: index {} is out of range for field '{}' of '{}' ({} elements)", i, field, cls, count));
}

void destroy_object(transaction& tx, offset_t block) {
  pool& p = tx.get_pool();
  const auto& h = *p.at<object_header>(block);
  const class_state& st = *p.impl().classes;
  if (h.key != 0 && h.key <= st.count.load(std::memory_order_acquire)) {
    for (const auto& f : st.entry(h.key - 1u).fields) {
      if ((f.kind != 's' && f.kind != 'c') || std::uint64_t{f.offset} + 8 > h.size) continue;
      std::uint64_t w;
      std::memcpy(&w, p.at<std::byte>(block + object_header_size + f.offset), 8);
      if (f.kind == 's' && string_is_block(w)) tx.free(w);
      if (f.kind == 'c' && w != 0) destroy_container(tx, w);  // the object owns its containers
    }
  }
  tx.free(block);
}

void collect_object(pool& p, std::uint64_t block, std::vector<std::uint64_t>& out) {
  const auto& h = *p.at<object_header>(block);
  const class_state& st = *p.impl().classes;
  if (h.key == 0 || h.key > st.count.load(std::memory_order_acquire)) {
    throw error(errc::corrupt, fmt::format("pobj: object {:#x} in pool '{}' names no class of the pool", block, p.path()));
  }
  for (const auto& f : st.entry(h.key - 1u).fields) {
    if ((f.kind != 's' && f.kind != 'c') || std::uint64_t{f.offset} + 8 > h.size) continue;
    std::uint64_t w;
    std::memcpy(&w, p.at<std::byte>(block + object_header_size + f.offset), 8);
    if (f.kind == 's' && string_is_block(w)) out.push_back(w);
    if (f.kind == 'c' && w != 0) containers::collect_container(p, w, out);
  }
  out.push_back(block);
}

void assign_string(transaction& tx, std::uint64_t& field, std::string_view value) {
  std::uint64_t w = 0;
  if (value.size() <= inline_string_max) {
    if (!value.empty()) {
      w = 1 | (std::uint64_t{value.size()} << 1);
      std::memcpy(reinterpret_cast<char*>(&w) + 1, value.data(), value.size());
    }
  } else {
    w = make_string_object(tx, value);
  }
  const std::uint64_t old = field;
  tx.set(field, w);
  if (string_is_block(old)) tx.free(old);
}

}  // namespace pobj::detail

namespace pobj {

offset_t make_string_object(transaction& tx, std::string_view value) {
  allocation a = tx.alloc(8 + value.size(), detail::string_block_type);
  const std::uint64_t n = value.size();
  std::memcpy(a.pointer, &n, 8);
  if (!value.empty()) std::memcpy(static_cast<std::byte*>(a.pointer) + 8, value.data(), value.size());
  return a.offset;
}

std::string_view read_string_object(const pool& p, offset_t object) {
  const heap& h = p.heap();
  const std::size_t size = object != 0 ? h.usable_size(object) : 0;
  std::uint64_t n = 0;
  if (size >= 8) std::memcpy(&n, p.base() + object, 8);
  if (size < 8 || h.type_of(object) != detail::string_block_type || n > size - 8) {
    throw error(errc::invalid_argument, fmt::format("pobj: {:#x} in pool '{}' is not a string object", object, p.path()));
  }
  return {reinterpret_cast<const char*>(p.base() + object + 8), static_cast<std::size_t>(n)};
}

void register_classes(pool& p) {
  detail::class_state& st = *p.impl().classes;
  detail::lock_guard lock(st.mu);
  detail::sync_classes(p, st, detail::compiled_classes());
}

}  // namespace pobj
