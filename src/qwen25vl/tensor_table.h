// The Qwen2.5-VL tensor table: every tensor of the GGUF pair (model.gguf, mmproj.gguf) with its
// shape rule, its Hugging Face checkpoint source and the LoRA module that changes it.
//
// This is the one place the family's tensor names are spelled. The converter, the random model
// writers (GGUF and Hugging Face), the LoRA converter and writer, and the engine's GGUF checks all
// read it, so a writer and the converter cannot drift apart (their outputs are compared byte for
// byte by the conversion tests).
//
// Names: "{}" in a rule stands for the layer (text) or block (vision) index. Hugging Face names are
// in the hub layout (model.layers.N..., visual.blocks.N...); hub_name() maps the other layouts.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ggml.h>

#include "qwen25vl/presets.h"

namespace drivevqa {

enum class Tower : uint8_t { kText, kVision };

// The sizes a shape rule refers to.
enum class Dim : uint8_t {
  kOne,
  kThree,          // RGB channels
  kTextWidth,
  kKvWidth,        // KV heads x head dim
  kQkvWidth,       // width + 2 x KV width: llama.cpp's fused text q|k|v
  kTextFfn,
  kVocab,
  kVisionWidth,
  kVisionFfn,
  kPatch,
  kMergerIn,       // 4 x vision width: the 2x2-merged patches
  kMergerHidden,   // the merger MLP's hidden width (4 x vision width in every released model)
  kProjection,     // the merger's output: the text width
  kCount,
};
using DimSizes = std::array<int64_t, static_cast<size_t>(Dim::kCount)>;

inline int64_t size_of(const DimSizes& sizes, Dim d) { return sizes[static_cast<size_t>(d)]; }
// The sizes of a model of these shapes (merger hidden 4 x vision width, projection the text width).
DimSizes dim_sizes(const TextShape& text, const VisionShape& vision);

// What a tensor is to the graph, which decides its storage type and its random initialisation.
enum class TensorRole : uint8_t { kEmbedding, kMatrix, kConv, kBias, kNorm };

// What llama.cpp's loader and the qwen2.5vl graph make of a tensor in a file.
enum class Presence : uint8_t {
  kRequired,  // written by us, needed by the engine
  kWritten,   // written by us, optional to the engine
  kUntied,    // written unless the checkpoint ties its output head to the embedding; optional
  kAccepted,  // never written by us, loaded when present (llama.cpp's own converter may write it)
  kRefused,   // the graph asserts it is absent
};

// The text attention's two forms in llama.cpp: separate q, k, v or one fused q|k|v.
enum class QkvForm : uint8_t { kEither, kSeparate, kFused };

// How a GGUF tensor is cut from its checkpoint tensor.
enum class HfSlice : uint8_t {
  kWhole,
  kFusedRows,    // rows [part x n, (part + 1) x n) of a fused q|k|v tensor three times as tall
  kTemporalTap,  // slice `part` of the Conv3D patch embedding's temporal axis (2 long)
};

struct TensorRule {
  Tower tower;
  const char* gguf;
  std::array<Dim, 4> ne;  // ggml order (ne[0] is the input / contiguous dimension); unused are kOne
  TensorRole role;
  Presence presence;
  QkvForm qkv = QkvForm::kEither;
  const char* hf = nullptr;  // hub-layout checkpoint name; nullptr: not in checkpoints
  HfSlice slice = HfSlice::kWhole;
  int part = 0;

  bool per_block() const;
  bool written() const { return presence == Presence::kRequired || presence == Presence::kWritten || presence == Presence::kUntied; }
};

// Every rule, text tower first, each tower in file order.
const std::vector<TensorRule>& qwen25vl_tensor_rules();

// One rule made concrete for a block and a model's sizes.
struct QwenTensor {
  const TensorRule* rule = nullptr;
  std::string gguf;
  std::vector<int64_t> ne;  // ggml order, without the unused trailing dimensions
  std::string hf;           // hub-layout checkpoint name; empty when none
  std::string lora_module;  // hub module path whose LoRA pair changes this tensor; empty when none
  int64_t block = -1;       // its layer or block; -1 for a tower-wide tensor

  int64_t fan_in() const;  // elements that feed one output: all dimensions but the last
};

// Every rule of a tower made concrete, in file order. `blocks`: text layers or vision blocks.
std::vector<QwenTensor> tower_tensors(Tower tower, const DimSizes& sizes, int64_t blocks);
// The tensors we write to a tower's file, in file order.
std::vector<QwenTensor> written_tensors(Tower tower, const DimSizes& sizes, int64_t blocks, bool tied_embeddings = false);

// The checkpoint tensor's torch shape: the whole fused q|k|v or the 5-D Conv3D kernel.
std::vector<int64_t> hf_shape(const QwenTensor& t);
// The GGUF type a tensor is stored in when the model's weights are `weight_type`: norms and biases
// F32; the patch kernel F16 or F32 (im2col); matrices the weight type (F16 where Q8_0 blocks do not fit).
ggml_type stored_type(const QwenTensor& t, ggml_type weight_type);
// The role of a GGUF tensor name; nullopt for a name the table does not know.
std::optional<TensorRole> tensor_role(const std::string& gguf_name);

// ---- LoRA ----

struct LoraTarget {
  std::string gguf;  // the weight a module's pair changes
  int part = 0;      // for a fused module: which third of B's rows belongs to this weight
  int parts = 1;
};
// The GGUF weights a hub-layout module's LoRA pair changes; empty when the engine has none.
std::vector<LoraTarget> lora_targets(const std::string& hub_module);

struct LoraModuleShape {
  std::string module;  // hub-layout module path
  int64_t in = 0, out = 0;
  bool in_block = false;  // a layer's or block's module (not the output head or the merger)
  bool fused = false;     // one module for several GGUF weights (the vision q|k|v)
};
// Every module of a tower a LoRA pair can target, with its input and output widths.
std::vector<LoraModuleShape> lora_modules(Tower tower, const DimSizes& sizes, int64_t blocks);
bool is_vision_module(const std::string& hub_module);
// The text model's output head (PEFT's "all-linear" leaves it out).
bool is_output_head(const std::string& hub_module);

// ---- Hugging Face layouts ----

// A checkpoint tensor or module name in the hub layout: transformers >= 4.52 nests the language
// model and the vision tower under model.language_model / model.visual, Omni under thinker.
std::string hub_name(const std::string& checkpoint_name);
// A hub-layout name as transformers >= 4.52 saves it.
std::string new_layout_name(const std::string& hub);

}  // namespace drivevqa
