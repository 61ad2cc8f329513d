// Python `re.fullmatch` for the patterns PEFT configs hold (target_modules, exclude_modules,
// layers_pattern, rank_pattern keys), run in time linear in the text (Thompson NFA / Pike VM).
//
// What must hold: a hostile pattern cannot hang or crash the process: no recursion on the text,
// no backtracking, pattern length, nesting and compiled size are bounded. Supported: literals,
// `.`, classes `[...]` (ranges, negation, \d \w \s), groups `(...)` `(?:...)` `(?P<n>...)`, `|`,
// `* + ? {m} {m,} {m,n} {,n}` and their lazy forms, `^ $ \A \Z`, escapes \d \D \w \W \s \S \n \t
// \xHH. Anything else (back-references, look-around, inline flags, possessive quantifiers, \b)
// is refused with an InputError naming the pattern; nothing is silently matched differently.
#pragma once

#include <bitset>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace drivevqa {

class PeftRegex {
 public:
  // Throws InputError("<what>: ...") for a pattern it cannot run exactly.
  PeftRegex(std::string_view pattern, const std::string& what) : pattern_(pattern), what_(what) {
    if (pattern.size() > kMaxPattern) fail("longer than " + std::to_string(kMaxPattern) + " characters");
    const Node root = parse_alt(0);
    if (pos_ != pattern_.size()) fail("unbalanced ')'");
    emit(root);
    push({Op::kMatch});
  }

  bool full_match(std::string_view text) const {
    std::vector<int> cur, next, stack;
    std::vector<size_t> mark(prog_.size(), 0);
    size_t gen = 1;
    add(cur, 0, 0, text.size(), mark, gen, stack);
    for (size_t i = 0; i < text.size() && !cur.empty(); ++i) {
      ++gen;
      next.clear();
      const auto c = static_cast<unsigned char>(text[i]);
      for (int pc : cur) {
        if (prog_[pc].op == Op::kSet && prog_[pc].set[c]) add(next, pc + 1, i + 1, text.size(), mark, gen, stack);
      }
      cur.swap(next);
    }
    for (int pc : cur) {
      if (prog_[pc].op == Op::kMatch) return true;
    }
    return false;
  }

 private:
  static constexpr size_t kMaxPattern = 2000, kMaxDepth = 50, kMaxProgram = 10000;
  using Set = std::bitset<256>;
  enum class Op { kSet, kSplit, kJmp, kBol, kEol, kMatch };
  struct Inst {
    Inst(Op o, int x_ = 0, int y_ = 0, Set s = {}) : op(o), x(x_), y(y_), set(s) {}
    Op op;
    int x, y;
    Set set;
  };
  enum class Kind { kEmpty, kSet, kCat, kAlt, kRepeat, kBol, kEol };
  struct Node {
    explicit Node(Kind k = Kind::kEmpty) : kind(k) {}
    Kind kind;
    Set set;
    std::vector<Node> kids;
    int min = 0, max = 0;  // kRepeat; max -1: unbounded
  };

  [[noreturn]] void fail(const std::string& why) const {
    throw InputError(what_ + ": regular expression \"" + pattern_.substr(0, 80) + (pattern_.size() > 80 ? "..." : "") +
                     "\" " + why + " (supported: Python re without back-references, look-around or flags)");
  }
  bool at(char c) const { return pos_ < pattern_.size() && pattern_[pos_] == c; }

  Node parse_alt(size_t depth) {
    if (depth > kMaxDepth) fail("nests groups deeper than " + std::to_string(kMaxDepth));
    Node alt{Kind::kAlt};
    alt.kids.push_back(parse_cat(depth));
    while (at('|')) {
      ++pos_;
      alt.kids.push_back(parse_cat(depth));
    }
    return alt.kids.size() == 1 ? std::move(alt.kids[0]) : alt;
  }

  Node parse_cat(size_t depth) {
    Node cat{Kind::kCat};
    while (pos_ < pattern_.size() && !at('|') && !at(')')) {
      Node atom = parse_atom(depth);
      int lo = 0, hi = -1;
      const char q = pos_ < pattern_.size() ? pattern_[pos_] : '\0';
      if (q == '*' || q == '+' || q == '?' || (q == '{' && parse_braces(lo, hi))) {
        if (q != '{') ++pos_, lo = q == '+' ? 1 : 0, hi = q == '?' ? 1 : -1;
        if (atom.kind == Kind::kBol || atom.kind == Kind::kEol) fail("repeats an anchor");
        if (at('?')) ++pos_;  // lazy: the same yes/no answer for a full match
        else if (at('+')) fail("uses a possessive quantifier");
        int lo2 = 0, hi2 = 0;
        const size_t here = pos_;
        if (at('*') || at('+') || at('?') || (at('{') && parse_braces(lo2, hi2))) fail("has a multiple repeat");
        pos_ = here;
        Node rep{Kind::kRepeat};
        rep.min = lo;
        rep.max = hi;
        rep.kids.push_back(std::move(atom));
        atom = std::move(rep);
      }
      cat.kids.push_back(std::move(atom));
    }
    return cat;
  }

  // {m}, {m,}, {,n}, {m,n}; anything else leaves `{` a literal, as in Python.
  bool parse_braces(int& lo, int& hi) {
    size_t p = pos_ + 1;
    auto number = [&](int& out) {
      const size_t start = p;
      long v = 0;
      while (p < pattern_.size() && std::isdigit(static_cast<unsigned char>(pattern_[p]))) {
        v = v * 10 + (pattern_[p++] - '0');
        if (v > 1000) fail("repeats more than 1000 times");
      }
      out = static_cast<int>(v);
      return p > start;
    };
    int a = 0, b = -1;
    const bool has_a = number(a);
    if (p < pattern_.size() && pattern_[p] == '}') {
      if (!has_a) return false;
      b = a;
    } else if (p < pattern_.size() && pattern_[p] == ',') {
      ++p;
      if (!number(b)) b = -1;
      if (p >= pattern_.size() || pattern_[p] != '}') return false;
    } else {
      return false;
    }
    if (b != -1 && b < a) fail("has a repeat range {m,n} with n < m");
    pos_ = p + 1;
    lo = a;
    hi = b;
    return true;
  }

  static Set class_of(char e) {
    Set s;
    for (int c = 0; c < 256; ++c) {
      const bool d = c >= '0' && c <= '9', w = d || std::isalpha(c) || c == '_', sp = c == ' ' || (c >= 9 && c <= 13);
      const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(e)));
      const bool in = l == 'd' ? d : l == 'w' ? (c < 128 && w) : sp;
      if (in != (std::isupper(static_cast<unsigned char>(e)) != 0)) s.set(static_cast<size_t>(c));
    }
    return s;
  }

  // One escaped character after '\\' (pos_ on it) as a set; anchors are handled by the caller.
  Set parse_escape() {
    if (pos_ >= pattern_.size()) fail("ends with a backslash");
    const char e = pattern_[pos_++];
    Set s;
    if (std::string_view("dDwWsS").find(e) != std::string_view::npos) return class_of(e);
    const std::string_view controls = "n\nt\tr\rf\fv\va\a";
    for (size_t i = 0; i < controls.size(); i += 2) {
      if (controls[i] == e) return s.set(static_cast<unsigned char>(controls[i + 1]));
    }
    if (e == 'x') {
      if (pos_ + 2 > pattern_.size() || !std::isxdigit(static_cast<unsigned char>(pattern_[pos_])) ||
          !std::isxdigit(static_cast<unsigned char>(pattern_[pos_ + 1]))) {
        fail("has a bad \\x escape");
      }
      const int v = std::stoi(std::string(pattern_.substr(pos_, 2)), nullptr, 16);
      pos_ += 2;
      return s.set(static_cast<size_t>(v));
    }
    if (std::isalnum(static_cast<unsigned char>(e))) fail(std::string("uses the escape \\") + e);
    return s.set(static_cast<unsigned char>(e));
  }

  Node parse_class() {
    Node n{Kind::kSet};
    const bool negate = at('^');
    if (negate) ++pos_;
    bool first = true;
    while (pos_ < pattern_.size() && (first || !at(']'))) {
      first = false;
      Set item;
      int lo = -1;
      if (at('\\')) {
        ++pos_;
        item = parse_escape();
        if (item.count() == 1) for (int c = 0; c < 256; ++c) if (item[c]) lo = c;
      } else {
        lo = static_cast<unsigned char>(pattern_[pos_++]);
        item.set(static_cast<size_t>(lo));
      }
      if (lo >= 0 && at('-') && pos_ + 1 < pattern_.size() && pattern_[pos_ + 1] != ']') {
        ++pos_;
        int hi = static_cast<unsigned char>(pattern_[pos_++]);
        if (hi == '\\') {
          const Set e = parse_escape();
          if (e.count() != 1) fail("has a class range ending in a class escape");
          for (int c = 0; c < 256; ++c) if (e[c]) hi = c;
        }
        if (hi < lo) fail("has a bad character range");
        for (int c = lo; c <= hi; ++c) item.set(static_cast<size_t>(c));
      }
      n.set |= item;
    }
    if (!at(']')) fail("has an unterminated [");
    ++pos_;
    if (negate) n.set.flip();
    return n;
  }

  Node parse_atom(size_t depth) {
    const char c = pattern_[pos_++];
    Node n{Kind::kSet};
    switch (c) {
      case '(': {
        if (at('?')) {
          if (pattern_.compare(pos_, 2, "?:") == 0) pos_ += 2;
          else if (pattern_.compare(pos_, 3, "?P<") == 0) {
            const size_t close = pattern_.find('>', pos_);
            if (close == std::string::npos) fail("has an unterminated group name");
            pos_ = close + 1;
          } else fail("uses a (? extension other than (?: and (?P<name>");
        }
        Node inner = parse_alt(depth + 1);
        if (!at(')')) fail("misses a ')'");
        ++pos_;
        return inner;
      }
      case '[': return parse_class();
      case '.': n.set.set().reset('\n'); return n;
      case '^': return Node{Kind::kBol};
      case '$': return Node{Kind::kEol};
      case '*': case '+': case '?': fail("has nothing to repeat");
      case '\\':
        if (at('A') || at('Z')) return Node{pattern_[pos_++] == 'A' ? Kind::kBol : Kind::kEol};
        n.set = parse_escape();
        return n;
      default: n.set.set(static_cast<unsigned char>(c)); return n;
    }
  }

  int push(Inst i) {
    if (prog_.size() >= kMaxProgram) fail("is too large once repeats are expanded");
    prog_.push_back(std::move(i));
    return static_cast<int>(prog_.size()) - 1;
  }

  void emit(const Node& n) {
    switch (n.kind) {
      case Kind::kEmpty: return;
      case Kind::kSet: push({Op::kSet, 0, 0, n.set}); return;
      case Kind::kBol: push({Op::kBol}); return;
      case Kind::kEol: push({Op::kEol}); return;
      case Kind::kCat: for (const Node& k : n.kids) emit(k); return;
      case Kind::kAlt: {
        std::vector<int> jumps;
        for (size_t i = 0; i < n.kids.size(); ++i) {
          const int split = i + 1 < n.kids.size() ? push({Op::kSplit}) : -1;
          if (split >= 0) prog_[split].x = split + 1;
          emit(n.kids[i]);
          if (split >= 0) {
            jumps.push_back(push({Op::kJmp}));
            prog_[split].y = static_cast<int>(prog_.size());
          }
        }
        for (int j : jumps) prog_[j].x = static_cast<int>(prog_.size());
        return;
      }
      case Kind::kRepeat: {
        for (int i = 0; i < n.min; ++i) emit(n.kids[0]);
        if (n.max < 0) {
          const int split = push({Op::kSplit});
          prog_[split].x = split + 1;
          emit(n.kids[0]);
          push({Op::kJmp, split});
          prog_[split].y = static_cast<int>(prog_.size());
          return;
        }
        std::vector<int> splits;
        for (int i = n.min; i < n.max; ++i) {
          splits.push_back(push({Op::kSplit}));
          prog_[splits.back()].x = splits.back() + 1;
          emit(n.kids[0]);
        }
        for (int s : splits) prog_[s].y = static_cast<int>(prog_.size());
        return;
      }
    }
  }

  // Adds pc and everything reachable from it without reading a character (explicit stack).
  void add(std::vector<int>& list, int pc0, size_t pos, size_t size, std::vector<size_t>& mark, size_t gen,
           std::vector<int>& stack) const {
    stack.assign(1, pc0);
    while (!stack.empty()) {
      const int pc = stack.back();
      stack.pop_back();
      if (mark[pc] == gen) continue;
      mark[pc] = gen;
      const Inst& i = prog_[pc];
      if (i.op == Op::kJmp) stack.push_back(i.x);
      else if (i.op == Op::kSplit) stack.push_back(i.y), stack.push_back(i.x);
      else if (i.op == Op::kBol) { if (pos == 0) stack.push_back(pc + 1); }
      else if (i.op == Op::kEol) { if (pos == size) stack.push_back(pc + 1); }
      else list.push_back(pc);
    }
  }

  std::string pattern_;
  std::string what_;
  size_t pos_ = 0;
  std::vector<Inst> prog_;
};

}  // namespace drivevqa
