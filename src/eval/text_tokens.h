// Tokens as pycocoevalcap scores answers: lower-cased, PTB-style tokenisation (clitics such as
// "n't" and "'s" split off, punctuation separated), then punctuation tokens dropped.
//
// What must hold: the same text always gives the same tokens; no token is empty; the output has
// no token from pycocoevalcap's punctuation list ('' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : - -- ... ;).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace drivevqa {

std::vector<std::string> coco_tokens(std::string_view text);

}  // namespace drivevqa
