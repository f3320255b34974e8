// Reader for PyTorch's torch.save files as Hugging Face writes them (pytorch_model.bin, and each shard named in
// pytorch_model.bin.index.json, whose weight_map has the safetensors index's format): the zip format, torch.save's
// default since PyTorch 1.6,
//
//   <archive>/data.pkl     pickle (protocol 2) of a flat dict {name: tensor}; each tensor is
//                          torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) and each storage a
//                          persistent id ('storage', torch.<Type>Storage, key, location, numel)
//   <archive>/data/<key>   one record per storage: its bytes, little-endian; views and tied weights share one
//   <archive>/version      the format version (libtorch refuses versions it does not know)
//
// The pickle is read by a restricted unpickler (torch_bin.cpp) that runs no code: it knows plain values and
// containers and three globals (collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch.<Type>Storage) and
// refuses every other one by name where the pickle names it (os.system, builtins.eval, numpy's, nn.Parameter's
// rebuild, quantized tensors, any class). libtorch 1.13's own torch::jit::Unpickler cannot read these files: it lacks
// the SETITEM opcode Python uses for a one-entry dict (a shard holding one tensor), reads OrderedDict as None
// (torch.save(model.state_dict())), and reads every storage while parsing. The zip container is read by libtorch's
// caffe2::serialize::PyTorchStreamReader. The result must be a dict (plain or OrderedDict; an OrderedDict's
// _metadata attribute is dropped) of str -> tensor; anything else (a list, a nested dict, a number) is refused
// naming the key.
//
// Lazy: opening reads only data.pkl; `load` reads the one storage record it needs (tied weights and views: once per
// name). Peak memory while a caller loads tensor by tensor is what the caller keeps plus one storage and one tensor.
// dtypes: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL (as safetensors spells them).
//
// The legacy format (PyTorch < 1.6, or _use_new_zipfile_serialization=False) is refused with how to re-save it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "modules/io/tensor_file.h"

namespace caffe2::serialize {
class PyTorchStreamReader;
}

namespace bmos {

class TorchBinFile : public TensorFileReader {
 public:
  // Opens `path` and reads its pickle (no tensor data). Throws std::runtime_error naming the file (and the key or
  // the pickled global) on any defect.
  explicit TorchBinFile(const std::string& path);
  ~TorchBinFile() override;
  TorchBinFile(const TorchBinFile&) = delete;
  TorchBinFile& operator=(const TorchBinFile&) = delete;

  const std::string& path() const override { return path_; }
  std::vector<std::string> names() const override;  // in the order they were saved
  bool contains(const std::string& name) const override { return index_.count(name) != 0; }
  const SafetensorsInfo& info(const std::string& name) const override;  // dtype "F32", "F16", "BF16", "I64", ...

  // The tensor in its stored dtype, an owned contiguous copy (a view's offset and strides applied).
  at::Tensor load(const std::string& name) const override;
  // F32, F16 or BF16 converted to fp32; any other dtype is an error naming the tensor.
  at::Tensor load_float(const std::string& name) const override;

 private:
  struct Entry {
    SafetensorsInfo info;
    at::ScalarType type;
    std::string storage;           // record key under data/; empty for an empty storage
    int64_t storage_numel = 0;     // elements of `type` in the storage
    int64_t offset = 0;            // the view: storage offset and strides, in elements
    std::vector<int64_t> strides;
  };
  const Entry& entry(const std::string& name) const;

  std::string path_;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip_;
  std::vector<Entry> entries_;            // in pickle order
  std::map<std::string, size_t> index_;   // name -> position in entries_
};

}  // namespace bmos
