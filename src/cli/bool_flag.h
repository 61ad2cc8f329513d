// Boolean flags that work bare (`--do_sample`) and with a value (`--do_sample False`,
// `--do_sample=true`), as the seed's Python command line accepts them.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace drivevqa {

class BoolFlag {
 public:
  BoolFlag(CLI::App& app, const std::string& names, bool default_value, const std::string& description);
  // Throws UsageError for a value that is not a boolean.
  bool value() const;
  bool given() const { return option_->count() > 0; }

 private:
  std::string text_;
  bool default_;
  std::string name_;
  CLI::Option* option_;
};

}  // namespace drivevqa
