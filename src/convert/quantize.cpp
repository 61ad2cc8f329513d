#include "convert/quantize.h"

#include <llama.h>

#include <map>

#include "engine/model.h"
#include "util/error.h"

namespace drivevqa {

int quantize_ftype(const std::string& name) {
  static const std::map<std::string, llama_ftype> kTypes = {
      {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},     {"q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},     {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},
      {"q4_k_s", LLAMA_FTYPE_MOSTLY_Q4_K_S}, {"q4_k_m", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"q5_k_s", LLAMA_FTYPE_MOSTLY_Q5_K_S},
      {"q5_k_m", LLAMA_FTYPE_MOSTLY_Q5_K_M}, {"q6_k", LLAMA_FTYPE_MOSTLY_Q6_K}};
  const auto it = kTypes.find(name);
  if (it == kTypes.end()) {
    std::string known;
    for (const auto& [k, v] : kTypes) known += (known.empty() ? "" : ", ") + k;
    throw UsageError("--quantize " + name + ": unknown type (known: " + known + ")");
  }
  return it->second;
}

void quantize_text_model(const std::filesystem::path& model, const std::string& type, int threads) {
  install_engine_logging();
  llama_model_quantize_params params = llama_model_quantize_default_params();
  params.ftype = static_cast<llama_ftype>(quantize_ftype(type));
  params.nthread = threads;
  const std::filesystem::path out = model.string() + ".quantized";
  if (llama_model_quantize(model.c_str(), out.c_str(), &params) != 0) {
    std::filesystem::remove(out);
    throw ModelError(model.string() + ": the engine could not quantize this model to " + type);
  }
  std::filesystem::rename(out, model);
}

}  // namespace drivevqa
