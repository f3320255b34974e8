// One read interface over the tensor files a Hugging Face folder may hold: model.safetensors (SafetensorsFile,
// safetensors.h) and PyTorch's pytorch_model.bin (TorchBinFile, torch_bin.h). A reader of a model folder holds
// TensorFileReaders and never asks which format it has; `open_tensor_file` picks the class.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace bmos {

struct SafetensorsInfo {
  std::string name;
  std::string dtype;            // spelled as safetensors does: "F32", "F16", "BF16", "I64", "U32", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range inside a safetensors data buffer; 0, 0 for a TorchBinFile
};

class TensorFileReader {
 public:
  virtual ~TensorFileReader() = default;
  virtual const std::string& path() const = 0;
  virtual std::vector<std::string> names() const = 0;
  virtual bool contains(const std::string& name) const = 0;
  virtual const SafetensorsInfo& info(const std::string& name) const = 0;  // throws naming the file and the tensor
  // The tensor in its stored dtype, an owned contiguous copy.
  virtual at::Tensor load(const std::string& name) const = 0;
  // F32, F16 or BF16 converted to fp32; any other dtype is an error naming the tensor.
  virtual at::Tensor load_float(const std::string& name) const = 0;
};

// Opens `path`: a name ending in .safetensors is a SafetensorsFile; otherwise a zip archive (torch.save since 1.6) or
// a legacy torch.save pickle (refused there with how to re-save it) is a TorchBinFile, as is any name ending in
// .bin/.pt/.pth (TorchBinFile then says why it is not a torch.save file); anything else a SafetensorsFile. Errors
// name the file.
std::unique_ptr<TensorFileReader> open_tensor_file(const std::string& path);

}  // namespace bmos
