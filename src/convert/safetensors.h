// Memory-mapped safetensors files (Hugging Face checkpoints and PEFT adapters).
//
// What must hold: a tensor view is handed out only after its header entry was checked against the
// file: known dtype, offsets inside the data section, size equal to shape x dtype size. A file that
// lies about any of these is refused with an InputError naming the file and the tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace drivevqa {

enum class StDtype { kF32, kF16, kBF16 };

struct TensorView {
  std::string name;
  StDtype dtype = StDtype::kF32;
  std::vector<int64_t> shape;  // PyTorch order (outermost first)
  const uint8_t* data = nullptr;  // into its file's mapping: valid while that SafetensorsFile lives
  size_t bytes = 0;

  int64_t element_count() const;
  // The values as f32 (exact for F16 and BF16).
  std::vector<float> to_f32() const;
  // The same into `out` (resized; its capacity is kept, so a buffer reused across tensors is
  // allocated and faulted in once).
  void to_f32(std::vector<float>& out) const;
};

class SafetensorsFile {
 public:
  // Maps the file and checks its header. Throws InputError naming the file.
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Parses a header (the JSON after the 8-byte length) for a file of `file_size` bytes whose data
// section starts at `data_offset`. Exposed for the fuzz target and tests.
std::map<std::string, TensorView> parse_safetensors_header(const std::string& header, size_t data_offset,
                                                            size_t file_size, const uint8_t* base,
                                                            const std::string& name,
                                                            std::map<std::string, std::string>* metadata);

// Every *.safetensors of a checkpoint folder (sharded or not), as one name -> view map.
class Checkpoint {
 public:
  // Uses model.safetensors.index.json when present, else every *.safetensors in file-name order.
  explicit Checkpoint(const std::filesystem::path& dir);
  // Views valid while this Checkpoint lives.
  const TensorView* find(const std::string& name) const;
  const TensorView& at(const std::string& name) const;  // throws InputError naming the tensor
  const std::map<std::string, const TensorView*>& all() const { return index_; }
  size_t total_bytes() const;

 private:
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
};

}  // namespace drivevqa
