#include "modules/io/torch_bin.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <unordered_map>

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "torch.save storage records are little-endian; this host is not");

namespace bmos {

// ------------------------------------------------------------------------------------------------------------ errors
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("PyTorch file '" + path + "': " + what);
}

[[noreturn]] void fail_key(const std::string& path, const std::string& name, const std::string& what) {
  fail(path, "key '" + name + "': " + what);
}


// ------------------------------------------------------------------------------------------------------------ dtypes
// The storage types torch.save names, and their dtypes as safetensors spells them.
struct DtypeName {
  at::ScalarType type;
  const char* storage;
  const char* name;
};

const DtypeName kDtypes[] = {
    {at::kFloat, "FloatStorage", "F32"}, {at::kHalf, "HalfStorage", "F16"},   {at::kBFloat16, "BFloat16Storage", "BF16"},
    {at::kDouble, "DoubleStorage", "F64"}, {at::kLong, "LongStorage", "I64"}, {at::kInt, "IntStorage", "I32"},
    {at::kShort, "ShortStorage", "I16"},  {at::kChar, "CharStorage", "I8"},   {at::kByte, "ByteStorage", "U8"},
    {at::kBool, "BoolStorage", "BOOL"},
};

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  return "?";  // unreachable: storages are made only from kDtypes
}

// ------------------------------------------------------------------------------------------------------- unpickler
// A restricted unpickler for what torch.save writes. It knows plain values and containers and three globals:
// collections.OrderedDict (called with no arguments: an empty dict), torch._utils._rebuild_tensor_v2 (a view of a
// storage) and torch.<Type>Storage (a storage's dtype, inside a persistent id). Any other global is refused where the
// pickle names it; nothing is imported or called, and REDUCE/BUILD act only on those three.
//
// Why not libtorch's own torch::jit::Unpickler (1.13): it has no SETITEM or APPEND opcode, and Python writes a dict
// of one entry with SETITEM, so a shard holding a single tensor fails ("Unknown opcode 0x73"); it reads every
// OrderedDict as None and applies BUILD only to its own globals, so torch.save(model.state_dict()) fails; and it reads
// every storage record while parsing.
//
// Objects live in one arena and refer to each other by index, so deep or cyclic structures a crafted file builds are
// freed without recursion; their number is capped, so a crafted pickle cannot take unbounded memory.
enum class Kind { kNone, kBool, kInt, kFloat, kStr, kTuple, kList, kDict, kOrderedDict, kGlobal, kStorage, kTensor };
enum class Global { kOrderedDict, kRebuildTensor, kStorageType };

struct Obj {
  Kind kind = Kind::kNone;
  int64_t i = 0;                     // bool, int; kGlobal: a Global; kStorage: elements; kTensor: index in tensors
  double f = 0;
  std::string s;                     // str; kGlobal: "module.name"; kStorage: the record key
  std::vector<size_t> items;         // tuple, list; dicts: key, value, key, value, ...
  at::ScalarType type = at::kFloat;  // kGlobal storage type, kStorage
};

struct TensorRef {
  size_t storage;  // a kStorage object
  int64_t offset;
  std::vector<int64_t> sizes, strides;
};

std::string kind_name(const Obj& o) {
  switch (o.kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "a bool";
    case Kind::kInt: return "an int";
    case Kind::kFloat: return "a float";
    case Kind::kStr: return "a str";
    case Kind::kTuple: return "a tuple";
    case Kind::kList: return "a list";
    case Kind::kDict: case Kind::kOrderedDict: return "a dict";
    case Kind::kGlobal: return "the global '" + o.s + "'";
    case Kind::kStorage: return "a bare storage";
    case Kind::kTensor: return "a tensor";
  }
  return "?";
}

class Unpickler {
 public:
  Unpickler(const std::string& path, const char* data, size_t size) : path_(path), p_(data), n_(size) {}

  // Runs the pickle to its STOP; returns the object it built.
  size_t run();
  const Obj& obj(size_t i) const { return objs_[i]; }
  const TensorRef& tensor(const Obj& o) const { return tensors_[static_cast<size_t>(o.i)]; }

 private:
  static constexpr size_t kMaxObjects = size_t{1} << 22;  // ~20 per tensor: 200k tensors

  [[noreturn]] void bad(const std::string& what) const {
    fail(path_, "data.pkl, byte " + std::to_string(op_pos_) + ": " + what);
  }
  const char* take(size_t n) {
    if (n > n_ - pos_) bad("ends inside an opcode: a truncated or corrupt pickle");
    const char* r = p_ + pos_;
    pos_ += n;
    return r;
  }
  template <class T>
  T le() {
    T v;
    std::memcpy(&v, take(sizeof v), sizeof v);
    return v;
  }
  std::string line() {
    const void* nl = std::memchr(p_ + pos_, '\n', n_ - pos_);
    if (!nl) bad("a GLOBAL name without its newline");
    const size_t len = static_cast<const char*>(nl) - (p_ + pos_);
    std::string s(take(len), len);
    take(1);
    return s;
  }
  std::string text(uint64_t len) { return std::string(take(len), len); }

  size_t make(Obj o) {
    if (objs_.size() >= kMaxObjects) bad("more than " + std::to_string(kMaxObjects) + " objects: not a state dict");
    objs_.push_back(std::move(o));
    return objs_.size() - 1;
  }
  void push(Obj o) { stack_.push_back(make(std::move(o))); }
  static Obj value(Kind k, int64_t i = 0) {
    Obj o;
    o.kind = k;
    o.i = i;
    return o;
  }
  static Obj container(Kind k, std::vector<size_t> items) {
    Obj o;
    o.kind = k;
    o.items = std::move(items);
    return o;
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  size_t top() const {
    if (stack_.size() <= floor()) bad("an opcode needs a value but the stack is empty");
    return stack_.back();
  }
  size_t pop() {
    const size_t v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<size_t> pop_mark() {
    if (marks_.empty()) bad("an opcode needs a MARK and there is none");
    std::vector<size_t> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Obj& target(Kind want, Kind also, const char* op) {
    Obj& o = objs_[top()];
    if (o.kind != want && o.kind != also) bad(std::string(op) + " on " + kind_name(o));
    return o;
  }
  int64_t as_int(size_t i, const char* what) const {
    if (objs_[i].kind != Kind::kInt) bad(std::string(what) + " is " + kind_name(objs_[i]) + ", expected an int");
    return objs_[i].i;
  }
  void memo_put(uint64_t key) { memo_[key] = top(); }
  void memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) bad("memo entry " + std::to_string(key) + " was never stored");
    stack_.push_back(it->second);
  }

  Obj global(const std::string& module, const std::string& name);
  Obj reduce(size_t fn, size_t args);
  Obj persistent(size_t pid);

  std::string path_;
  const char* p_;
  size_t n_, pos_ = 0, op_pos_ = 0;
  std::vector<Obj> objs_;
  std::vector<TensorRef> tensors_;
  std::vector<size_t> stack_, marks_;
  std::unordered_map<uint64_t, size_t> memo_;
};

Obj Unpickler::global(const std::string& module, const std::string& name) {
  Obj g;
  g.kind = Kind::kGlobal;
  g.s = module + "." + name;
  if (g.s == "collections.OrderedDict") {
    g.i = static_cast<int64_t>(Global::kOrderedDict);
    return g;
  }
  if (g.s == "torch._utils._rebuild_tensor_v2") {
    g.i = static_cast<int64_t>(Global::kRebuildTensor);
    return g;
  }
  if (module == "torch")
    for (const auto& d : kDtypes)
      if (name == d.storage) {
        g.i = static_cast<int64_t>(Global::kStorageType);
        g.type = d.type;
        return g;
      }
  fail(path_, "refuses the pickled global '" + g.s + "': only tensors and plain containers (dict, list, tuple, str, "
              "int, float, bool, None) are read, and nothing the file names is ever run");
}

Obj Unpickler::reduce(size_t fn, size_t args) {
  if (objs_[fn].kind != Kind::kGlobal) bad("REDUCE calls " + kind_name(objs_[fn]));
  if (objs_[args].kind != Kind::kTuple) bad("REDUCE's arguments are " + kind_name(objs_[args]) + ", not a tuple");
  const std::vector<size_t> a = objs_[args].items;
  switch (static_cast<Global>(objs_[fn].i)) {
    case Global::kOrderedDict:
      if (!a.empty()) bad("collections.OrderedDict called with arguments");
      return container(Kind::kOrderedDict, {});
    case Global::kRebuildTensor: {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (a.size() != 6 && a.size() != 7)
        bad("torch._utils._rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(a.size()));
      if (objs_[a[0]].kind != Kind::kStorage) bad("a tensor's storage is " + kind_name(objs_[a[0]]));
      TensorRef t{a[0], as_int(a[1], "a tensor's storage offset"), {}, {}};
      for (auto [from, to] : {std::make_pair(a[2], &t.sizes), std::make_pair(a[3], &t.strides)}) {
        if (objs_[from].kind != Kind::kTuple) bad("a tensor's size or stride is " + kind_name(objs_[from]));
        for (size_t d : objs_[from].items) to->push_back(as_int(d, "a tensor's size or stride"));
      }
      if (t.sizes.size() != t.strides.size()) bad("a tensor's size and stride differ in length");
      const Obj& hooks = objs_[a[5]];
      if ((hooks.kind != Kind::kOrderedDict && hooks.kind != Kind::kDict) || !hooks.items.empty())
        bad("a tensor with backward hooks");
      tensors_.push_back(std::move(t));
      return value(Kind::kTensor, static_cast<int64_t>(tensors_.size() - 1));
    }
    case Global::kStorageType:
      break;
  }
  bad("REDUCE calls '" + objs_[fn].s + "', which is a storage type");
}

// torch.save's persistent id of a storage: ('storage', torch.<Type>Storage, key, location, elements).
Obj Unpickler::persistent(size_t pid) {
  const Obj& t = objs_[pid];
  if (t.kind != Kind::kTuple || t.items.size() != 5 || objs_[t.items[0]].kind != Kind::kStr ||
      objs_[t.items[0]].s != "storage")
    bad("a persistent id that is not ('storage', type, key, location, size)");
  const Obj& type = objs_[t.items[1]];
  if (type.kind != Kind::kGlobal || type.i != static_cast<int64_t>(Global::kStorageType))
    bad("a storage whose type is " + kind_name(type));
  if (objs_[t.items[2]].kind != Kind::kStr) bad("a storage whose key is " + kind_name(objs_[t.items[2]]));
  Obj s;
  s.kind = Kind::kStorage;
  s.s = objs_[t.items[2]].s;
  s.type = type.type;
  s.i = as_int(t.items[4], "a storage's size");
  if (s.i < 0) bad("a storage of negative size");
  return s;  // the location ("cpu", "cuda:0") does not change the bytes
}

size_t Unpickler::run() {
  while (true) {
    op_pos_ = pos_;
    const auto op = static_cast<uint8_t>(*take(1));
    switch (op) {
      case 0x80: {  // PROTO
        const int v = static_cast<uint8_t>(*take(1));
        if (v < 2 || v > 5) bad("pickle protocol " + std::to_string(v) + " (torch.save writes 2)");
      } break;
      case 0x95: take(8); break;  // FRAME (protocol 4+): only a length hint
      case '.':                   // STOP
        if (stack_.size() != 1 || !marks_.empty()) bad("STOP leaves " + std::to_string(stack_.size()) + " values");
        return stack_.back();
      case '(': marks_.push_back(stack_.size()); break;
      case '0': pop(); break;
      case '1': pop_mark(); break;
      case 'N': push(value(Kind::kNone)); break;
      case 0x88: push(value(Kind::kBool, 1)); break;
      case 0x89: push(value(Kind::kBool, 0)); break;
      case 'K': push(value(Kind::kInt, le<uint8_t>())); break;
      case 'M': push(value(Kind::kInt, le<uint16_t>())); break;
      case 'J': push(value(Kind::kInt, le<int32_t>())); break;
      case 0x8a: {  // LONG1: little-endian two's complement
        const size_t n = le<uint8_t>();
        if (n > 8) bad("an integer wider than 64 bits");
        uint64_t u = 0;
        const char* b = take(n);
        for (size_t k = 0; k < n; ++k) u |= uint64_t{static_cast<uint8_t>(b[k])} << (8 * k);
        if (n > 0 && n < 8 && (b[n - 1] & 0x80)) u |= ~uint64_t{0} << (8 * n);
        push(value(Kind::kInt, static_cast<int64_t>(u)));
      } break;
      case 'G': {  // BINFLOAT: big-endian double
        uint64_t u = __builtin_bswap64(le<uint64_t>());
        Obj o = value(Kind::kFloat);
        std::memcpy(&o.f, &u, 8);
        push(std::move(o));
      } break;
      case 'X': case 'T': {  // BINUNICODE, BINSTRING: 4-byte length
        Obj o = value(Kind::kStr);
        o.s = text(le<uint32_t>());
        push(std::move(o));
      } break;
      case 0x8c: case 'U': {  // SHORT_BINUNICODE, SHORT_BINSTRING
        Obj o = value(Kind::kStr);
        o.s = text(le<uint8_t>());
        push(std::move(o));
      } break;
      case 0x8d: {  // BINUNICODE8
        Obj o = value(Kind::kStr);
        o.s = text(le<uint64_t>());
        push(std::move(o));
      } break;
      case ')': push(container(Kind::kTuple, {})); break;
      case 't': push(container(Kind::kTuple, pop_mark())); break;
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        std::vector<size_t> items(op - 0x84);
        for (size_t k = items.size(); k-- > 0;) items[k] = pop();
        push(container(Kind::kTuple, std::move(items)));
      } break;
      case ']': push(container(Kind::kList, {})); break;
      case 'l': push(container(Kind::kList, pop_mark())); break;
      case 'a': {
        const size_t v = pop();
        target(Kind::kList, Kind::kList, "APPEND").items.push_back(v);
      } break;
      case 'e': {
        const std::vector<size_t> items = pop_mark();
        auto& list = target(Kind::kList, Kind::kList, "APPENDS").items;
        list.insert(list.end(), items.begin(), items.end());
      } break;
      case '}': push(container(Kind::kDict, {})); break;
      case 'd': case 'u': {  // DICT, SETITEMS
        std::vector<size_t> items = pop_mark();
        if (items.size() % 2) bad("a dict with a key and no value");
        if (op == 'd') {
          push(container(Kind::kDict, std::move(items)));
        } else {
          auto& dict = target(Kind::kDict, Kind::kOrderedDict, "SETITEMS").items;
          dict.insert(dict.end(), items.begin(), items.end());
        }
      } break;
      case 's': {  // SETITEM
        const size_t v = pop(), k = pop();
        auto& dict = target(Kind::kDict, Kind::kOrderedDict, "SETITEM").items;
        dict.push_back(k);
        dict.push_back(v);
      } break;
      case 'q': memo_put(le<uint8_t>()); break;
      case 'r': memo_put(le<uint32_t>()); break;
      case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
      case 'h': memo_get(le<uint8_t>()); break;
      case 'j': memo_get(le<uint32_t>()); break;
      case 'c': {  // GLOBAL "module\nname\n"
        const std::string module = line();
        push(global(module, line()));
      } break;
      case 0x93: {  // STACK_GLOBAL
        const size_t name = pop(), module = pop();
        if (objs_[name].kind != Kind::kStr || objs_[module].kind != Kind::kStr) bad("STACK_GLOBAL without two strs");
        push(global(objs_[module].s, objs_[name].s));
      } break;
      case 'R': {
        const size_t args = pop(), fn = pop();
        push(reduce(fn, args));
      } break;
      case 'b': {  // BUILD: only an OrderedDict's attributes (state_dict()'s _metadata), which are dropped
        const size_t state = pop();
        target(Kind::kOrderedDict, Kind::kOrderedDict, "BUILD");
        if (objs_[state].kind != Kind::kDict && objs_[state].kind != Kind::kOrderedDict)
          bad("BUILD with " + kind_name(objs_[state]) + " as the state");
      } break;
      case 'Q': push(persistent(pop())); break;  // BINPERSID
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        bad(std::string("unsupported pickle opcode ") + hex + " (not one torch.save writes)");
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------ the file's start
// The first bytes decide: a zip archive is read; the legacy format (a pickle stream starting with torch.save's magic
// number, 0x1950a86a20f9469cfc6c as a pickle LONG1) and anything else are refused with what to do.
void check_container(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(path, std::string("cannot open: ") + std::strerror(errno) + " (check the path)");
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  char head[16] = {};
  in.read(head, sizeof head);
  const size_t n = static_cast<size_t>(in.gcount());
  if (n >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return;
  static const char kLegacyMagic[] = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
  if (n >= sizeof kLegacyMagic - 1 && std::memcmp(head, kLegacyMagic, sizeof kLegacyMagic - 1) == 0)
    fail(path, "written by torch.save in the legacy format (PyTorch < 1.6, or _use_new_zipfile_serialization=False), "
               "which is not read; re-save it in Python with PyTorch >= 1.6: torch.save(torch.load(f, "
               "map_location='cpu'), f), or as safetensors (save_pretrained(..., safe_serialization=True))");
  if (n >= 1 && static_cast<unsigned char>(head[0]) == 0x80)
    fail(path, "a bare pickle, not a torch.save file (torch.save writes a zip archive holding data.pkl)");
  fail(path, "not a zip archive (" + std::to_string(st.st_size) + " bytes): torch.save has written a zip archive "
             "since PyTorch 1.6; is this a pytorch_model.bin?");
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------ reader
TorchBinFile::TorchBinFile(const std::string& path) : path_(path) {
  check_container(path);
  try {
    zip_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    fail(path, std::string("not a readable torch.save zip archive (truncated, e.g. an interrupted download?): ") +
                   e.what_without_backtrace());
  }
  if (zip_->hasRecord("byteorder")) {  // written since PyTorch 2.1; absent means little-endian
    const auto [bytes, size] = zip_->getRecord("byteorder");
    const std::string order(static_cast<const char*>(bytes.get()), size);
    if (order != "little") fail(path, "storages are stored '" + order + "'-endian; only little-endian is read");
  }
  if (!zip_->hasRecord("data.pkl")) fail(path, "the zip archive has no data.pkl: not a torch.save file");
  const auto [pickle, pickle_size] = zip_->getRecord("data.pkl");
  Unpickler vm(path, static_cast<const char*>(pickle.get()), pickle_size);
  const Obj& root = vm.obj(vm.run());

  // ------------------------------------------------------------------------------- a flat dict of name -> tensor
  if (root.kind != Kind::kDict && root.kind != Kind::kOrderedDict)
    fail(path, "data.pkl holds " + kind_name(root) + ", expected a dict of tensor name -> tensor");
  std::map<std::string, std::pair<at::ScalarType, int64_t>> storages;  // key -> dtype, elements
  for (size_t j = 0; j < root.items.size(); j += 2) {
    const Obj& key = vm.obj(root.items[j]);
    const Obj& value = vm.obj(root.items[j + 1]);
    if (key.kind != Kind::kStr) fail(path, "a key of the top-level dict is " + kind_name(key) + ", expected a str");
    const std::string& name = key.s;
    if (value.kind != Kind::kTensor) fail_key(path, name, "holds " + kind_name(value) + ", expected a tensor");
    const TensorRef& t = vm.tensor(value);
    const Obj& storage = vm.obj(t.storage);
    Entry e;
    e.type = storage.type;
    e.info.name = name;
    e.info.dtype = dtype_name(e.type);
    e.info.shape = t.sizes;
    e.strides = t.strides;
    e.offset = t.offset;
    e.storage = storage.s;
    e.storage_numel = storage.i;
    if (e.storage_numel > std::numeric_limits<int64_t>::max() / static_cast<int64_t>(c10::elementSize(e.type)))
      fail_key(path, name, "its storage's size (" + std::to_string(e.storage_numel) + " elements) overflows");
    const auto [it, fresh] = storages.emplace(e.storage, std::make_pair(e.type, e.storage_numel));
    if (!fresh && it->second != std::make_pair(e.type, e.storage_numel))
      fail_key(path, name, "storage " + e.storage + " is also used with another dtype or size");
    if (fresh && e.storage_numel > 0 && !zip_->hasRecord("data/" + e.storage))
      fail_key(path, name, "its storage record data/" + e.storage + " is missing from the archive");
    // The view must lie inside its storage: offset + sum((size - 1) * stride) < elements, in 128 bits so that no
    // product of numbers from the file can wrap.
    __int128 last = e.offset;
    bool empty = false;
    for (size_t d = 0; d < e.info.shape.size(); ++d) {
      if (e.info.shape[d] < 0 || e.strides[d] < 0) fail_key(path, name, "a negative size or stride");
      empty |= e.info.shape[d] == 0;
      last += static_cast<__int128>(e.info.shape[d] - 1) * e.strides[d];
    }
    if (e.offset < 0 || (!empty && last >= e.storage_numel))
      fail_key(path, name, "its view (offset " + std::to_string(e.offset) + ", shape " + c10::str(at::IntArrayRef(e.info.shape)) +
                               ", strides " + c10::str(at::IntArrayRef(e.strides)) + ") runs past its storage of " +
                               std::to_string(e.storage_numel) + " elements");
    if (index_.count(name)) fail_key(path, name, "appears twice");
    index_[name] = entries_.size();
    entries_.push_back(std::move(e));
  }
}

TorchBinFile::~TorchBinFile() = default;

std::vector<std::string> TorchBinFile::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.info.name);
  return out;
}

const TorchBinFile::Entry& TorchBinFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    fail(path_, "no tensor named '" + name + "' (it holds " + std::to_string(entries_.size()) + " tensors)");
  return entries_[it->second];
}

const SafetensorsInfo& TorchBinFile::info(const std::string& name) const { return entry(name).info; }

at::Tensor TorchBinFile::load(const std::string& name) const {
  const Entry& e = entry(name);
  if (c10::multiply_integers(e.info.shape) == 0) return torch::empty(e.info.shape, torch::TensorOptions(e.type));
  at::DataPtr bytes;
  size_t size = 0;
  try {
    std::tie(bytes, size) = zip_->getRecord("data/" + e.storage);
  } catch (const c10::Error& err) {
    fail_key(path_, name, "cannot read storage record data/" + e.storage + ": " + err.what_without_backtrace());
  }
  const int64_t itemsize = static_cast<int64_t>(c10::elementSize(e.type));
  if (size != static_cast<size_t>(e.storage_numel * itemsize))
    fail_key(path_, name, "storage record data/" + e.storage + " holds " + std::to_string(size) + " bytes, the "
                              "pickle says " + std::to_string(e.storage_numel * itemsize) + ": a corrupt file");
  // BOOL is read as bytes and compared to 0, so a byte other than 0/1 cannot make an invalid bool.
  const at::ScalarType read_as = e.type == at::kBool ? at::kByte : e.type;
  const at::Tensor storage = torch::from_blob(bytes.get(), {e.storage_numel}, torch::TensorOptions(read_as));
  at::Tensor t = storage.as_strided(e.info.shape, e.strides, e.offset).clone(at::MemoryFormat::Contiguous);
  return e.type == at::kBool ? t.ne(0) : t;
}

at::Tensor TorchBinFile::load_float(const std::string& name) const {
  const Entry& e = entry(name);
  if (e.type != at::kFloat && e.type != at::kHalf && e.type != at::kBFloat16)
    fail_key(path_, name, "has dtype " + e.info.dtype + "; expected F32, F16 or BF16");
  return load(name).to(at::kFloat);
}

}  // namespace bmos
