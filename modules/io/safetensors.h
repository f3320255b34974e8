// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes]  N, little-endian uint64: length of the JSON header
//   [N bytes]  JSON object: {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..],
//              "data_offsets": [begin, end]}, ...}; offsets are relative to the byte buffer after the header
//   [rest]     the byte buffer, tensors stored row-major, little-endian
//
// The reader checks the whole header against the file size (header length, every dtype, shape x itemsize ==
// end - begin, offsets inside the buffer, no two tensors overlapping) before it touches any tensor data, then maps
// the file (mmap) so a multi-GB file is never read whole: each `load` copies one tensor out (or, opened with
// map = false, reads it whole into memory).
//
// dtypes: F32, F16, BF16, I64, I32, U32, I8, U8, BOOL. torch 1.13 has no uint32, so a U32 tensor loads as an int32
// tensor with the same bits (info().dtype still says "U32"); to write one, pass an int32 tensor with dtype "U32".
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "modules/io/tensor_file.h"

namespace bmos {

// SafetensorsInfo (name, dtype as in the file, shape, byte range) is defined in tensor_file.h.
class SafetensorsFile : public TensorFileReader {
 public:
  // Opens, validates and maps `path`. Throws std::runtime_error naming the file (and the tensor) on any defect.
  // map = false reads the whole file into anonymous memory advised for transparent huge pages instead (2 MB pages:
  // far fewer TLB misses when every weight is streamed per token, as in decode; a file mapping uses 4 KB pages),
  // at the cost of reading it all at open and holding it resident. mapped() then points into that memory.
  explicit SafetensorsFile(const std::string& path, bool map = true);
  ~SafetensorsFile() override;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const override { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::vector<std::string> names() const override;  // in data-offset order (the order they were written)
  bool contains(const std::string& name) const override { return index_.count(name) != 0; }
  const SafetensorsInfo& info(const std::string& name) const override;  // throws naming the file and the tensor

  // The tensor in its stored dtype (U32 -> int32 with the same bits), an owned contiguous copy.
  torch::Tensor load(const std::string& name) const override;
  // F32, F16 or BF16 converted to fp32; any other dtype is an error naming the tensor.
  torch::Tensor load_float(const std::string& name) const override;

  // A tensor's bytes in place, not copied: valid while `keep` (the file's mapping, read-only) lives, which may be
  // longer than this object. For serving weights straight from the file. Throws naming the tensor if absent.
  struct Mapped {
    const unsigned char* data;
    uint64_t bytes;
    std::shared_ptr<const void> keep;
  };
  Mapped mapped(const std::string& name) const;
  // Asks the kernel to read the whole file ahead (madvise WILLNEED), so a mapped model pages in while it starts.
  void will_need() const;

 private:
  std::string path_;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsInfo> tensors_;        // sorted by begin
  std::map<std::string, size_t> index_;         // name -> position in tensors_
  uint64_t data_start_ = 0;                     // 8 + header length
  const unsigned char* map_ = nullptr;
  size_t map_size_ = 0;
  std::shared_ptr<const void> mapping_;         // unmaps when this file and every Mapped::keep are gone
};

// One tensor to write. `dtype` empty = taken from the tensor (float32 F32, float16 F16, bfloat16 BF16, int64 I64,
// int32 I32, int8 I8, uint8 U8, bool BOOL); "U32" stores an int32 tensor's bits as U32 (packed sign words).
struct SafetensorsEntry {
  std::string name;
  torch::Tensor tensor;
  std::string dtype;
};

// Writes `tensors` in the given order, contiguously after the header, as the format requires (Python's safetensors
// refuses gaps). The header is padded with spaces so the data buffer starts 64-byte aligned; a tensor's offset is then
// 64-byte aligned whenever the tensors before it have sizes that are multiples of 64 bytes (put odd-sized ones last
// when alignment matters). Written to a temporary file in the same folder and renamed, so a crash never leaves half a file.
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A file written one tensor at a time, in any order: the constructor fixes the header from `layout` (name, dtype,
// shape; begin/end are ignored: tensors follow one another in layout order) and writes it to "<path>.tmp.<pid>";
// put() writes a tensor at its place (pwrite, every byte checked: a short write or a full disk is an error naming
// the file); commit() checks that every tensor was put, syncs and renames the file into place. Destroyed without
// commit (an error on the way), the temporary file is removed, so a half file never takes the name.
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::string& path, const std::vector<SafetensorsInfo>& layout,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // `tensor` must have the layout's shape and element size (U32: an int32 tensor; BOOL: bool or uint8).
  void put(const std::string& name, const torch::Tensor& tensor);
  void commit();

 private:
  [[noreturn]] void fail(const std::string& what) const;
  std::string path_, tmp_;
  int fd_ = -1;
  std::vector<SafetensorsInfo> layout_;     // with begin/end filled
  std::map<std::string, size_t> index_;     // name -> position in layout_
  std::vector<bool> written_;
  uint64_t data_start_ = 0;
  bool committed_ = false;
};

// The same, one tensor at a time: `layout` gives each tensor's name, dtype and shape (begin/end are ignored), and
// produce(i) makes tensor i just before it is written, so memory holds one tensor, whatever the file's size.
void write_safetensors_streaming(const std::string& path, const std::vector<SafetensorsInfo>& layout,
                                 const std::function<torch::Tensor(size_t)>& produce,
                                 const std::map<std::string, std::string>& metadata = {});

}  // namespace bmos
