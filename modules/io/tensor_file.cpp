#include "modules/io/tensor_file.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "modules/io/safetensors.h"
#include "modules/io/torch_bin.h"

namespace bmos {

std::unique_ptr<TensorFileReader> open_tensor_file(const std::string& path) {
  char head[4] = {};
  std::ifstream in(path, std::ios::binary);
  in.read(head, sizeof head);
  const bool zip = in.gcount() == 4 && std::memcmp(head, "PK\x03\x04", 4) == 0;
  const bool pickle = in.gcount() >= 1 && static_cast<unsigned char>(head[0]) == 0x80;  // legacy torch.save
  const std::string ext = std::filesystem::path(path).extension().string();
  // The name decides where it says which format; 0x80 is also a possible first byte of a safetensors header length.
  if (ext == ".safetensors") return std::make_unique<SafetensorsFile>(path);
  if (zip || pickle || ext == ".bin" || ext == ".pt" || ext == ".pth") return std::make_unique<TorchBinFile>(path);
  return std::make_unique<SafetensorsFile>(path);  // its own errors name the file (a missing one included)
}

}  // namespace bmos
