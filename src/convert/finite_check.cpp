#include "convert/finite_check.h"

namespace drivevqa {

ggml_type ggml_type_of(StDtype dtype) {
  switch (dtype) {
    case StDtype::kF16: return GGML_TYPE_F16;
    case StDtype::kBF16: return GGML_TYPE_BF16;
    default: return GGML_TYPE_F32;
  }
}

ValueScan scan_tensor(const TensorView& view) {
  return scan_values(view.data, static_cast<size_t>(view.element_count()), ggml_type_of(view.dtype));
}

void require_finite(const TensorView& view, const std::string& what) {
  const ValueScan s = scan_tensor(view);
  if (!s.finite()) {
    refuse_non_finite(what, s.first_non_finite, static_cast<size_t>(view.element_count()),
                      value_at(view.data, s.first_non_finite, ggml_type_of(view.dtype)));
  }
}

}  // namespace drivevqa
