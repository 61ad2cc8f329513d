#include "cli/bool_flag.h"

#include <algorithm>

#include "util/error.h"
#include "util/text.h"

namespace drivevqa {

BoolFlag::BoolFlag(CLI::App& app, const std::string& names, bool default_value, const std::string& description)
    : default_(default_value), name_(names.substr(0, names.find(','))) {
  option_ = app.add_option(names, text_, description + (default_value ? " [default: True]" : " [default: False]"))
                ->expected(0, 1)
                ->type_name("[BOOL]");
}

bool BoolFlag::value() const {
  if (option_->count() == 0) return default_;
  const std::string v = to_lower(text_);
  if (v.empty() || v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  throw UsageError(name_ + ": '" + text_ + "' is not a boolean (use True or False)");
}

}  // namespace drivevqa
