// Unicode helpers for the tokenizer (see unicode.h). Normalization follows UAX #15: full canonical
// decomposition, canonical ordering of combining marks, then canonical composition with blocking;
// Hangul syllables are handled algorithmically as the standard prescribes.
#include "tokenizer/unicode.h"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace quantllm::unicode {
namespace {

struct CombiningClass {
  uint32_t cp;
  uint8_t ccc;
};
struct Decomposition {
  uint32_t cp;
  uint32_t first;
  uint32_t second;  // 0 for a singleton decomposition
  bool composes;    // primary composite: (first, second) composes back to cp
};
#include "tokenizer/unicode_tables.inc"

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;  // nothing below U+0300 combines
  auto it = std::lower_bound(std::begin(kCombiningClasses), std::end(kCombiningClasses), cp,
                             [](const CombiningClass& e, char32_t c) { return e.cp < c; });
  return (it != std::end(kCombiningClasses) && it->cp == cp) ? it->ccc : 0;
}

const Decomposition* find_decomposition(char32_t cp) {
  auto it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), cp,
                             [](const Decomposition& e, char32_t c) { return e.cp < c; });
  return (it != std::end(kDecompositions) && it->cp == cp) ? &*it : nullptr;
}

// (first, second) -> composite, sorted for binary search; built once from the decomposition table.
struct CompositionPair {
  uint64_t key;
  char32_t composite;
};
const std::vector<CompositionPair>& compositions() {
  static const std::vector<CompositionPair> table = [] {
    std::vector<CompositionPair> t;
    for (const auto& d : kDecompositions)
      if (d.composes) t.push_back({(uint64_t(d.first) << 32) | d.second, d.cp});
    std::sort(t.begin(), t.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
    return t;
  }();
  return table;
}

char32_t compose_pair(char32_t a, char32_t b) {
  // Hangul LV and LVT.
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto& t = compositions();
  uint64_t key = (uint64_t(a) << 32) | b;
  auto it = std::lower_bound(t.begin(), t.end(), key, [](const CompositionPair& e, uint64_t k) { return e.key < k; });
  return (it != t.end() && it->key == key) ? it->composite : 0;
}

void decompose_into(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    int s = int(cp - kSBase);
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition* d = cp >= 0xC0 ? find_decomposition(cp) : nullptr;
  if (!d) {
    out.push_back(cp);
    return;
  }
  decompose_into(d->first, out);
  if (d->second) decompose_into(d->second, out);
}

// Full canonical decomposition followed by canonical ordering (stable sort of each run of marks).
std::vector<char32_t> decompose_and_order(std::string_view s) {
  std::vector<char32_t> cps;
  cps.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) decompose_into(next_code_point(s, pos), cps);
  for (size_t i = 0; i < cps.size();) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  return cps;
}

bool all_below(std::string_view s, unsigned char limit_lead) {
  // Lead bytes below 0xCC encode code points below U+0300: such text is already in NFC (those characters
  // are all NFC_Quick_Check=Yes and nothing in it can combine with them).
  for (unsigned char c : s)
    if (c >= limit_lead) return false;
  return true;
}

}  // namespace

size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

// Length of the well-formed sequence at s[pos], or 0 when ill-formed; `valid_prefix` receives the length
// of the longest prefix that could still begin a valid sequence (the "maximal subpart").
static size_t well_formed_length(std::string_view s, size_t pos, size_t* valid_prefix) {
  unsigned char b0 = s[pos];
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 < 0x80) {
    if (valid_prefix) *valid_prefix = 1;
    return 1;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    if (valid_prefix) *valid_prefix = 1;
    return 0;
  }
  size_t i = 1;
  for (; i < need; ++i) {
    if (pos + i >= s.size()) break;
    unsigned char b = s[pos + i];
    unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (b < l || b > h) break;
  }
  if (valid_prefix) *valid_prefix = i;
  return i == need ? need : 0;
}

char32_t next_code_point(std::string_view s, size_t& pos) {
  size_t n = well_formed_length(s, pos, nullptr);
  if (n == 0) {
    ++pos;
    return kInvalid;
  }
  unsigned char b0 = s[pos];
  char32_t cp;
  if (n == 1) cp = b0;
  else if (n == 2) cp = b0 & 0x1F;
  else if (n == 3) cp = b0 & 0x0F;
  else cp = b0 & 0x07;
  for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<unsigned char>(s[pos + i]) & 0x3F);
  pos += n;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    size_t n = well_formed_length(s, pos, nullptr);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    size_t prefix = 0;
    size_t n = well_formed_length(bytes, pos, &prefix);
    if (n) {
      out.append(bytes.substr(pos, n));
      pos += n;
    } else {
      append_utf8(out, kInvalid);  // one replacement per maximal ill-formed subpart
      pos += std::max<size_t>(prefix, 1);
    }
  }
  return out;
}

size_t count_code_points(std::string_view s) {
  size_t n = 0;
  for (size_t pos = 0; pos < s.size(); ++n) next_code_point(s, pos);
  return n;
}

bool is_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string nfd(std::string_view s) {
  if (all_below(s, 0x80)) return std::string(s);  // Latin-1 letters do decompose, so only ASCII is a no-op
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : decompose_and_order(s)) append_utf8(out, cp);
  return out;
}

std::string nfc(std::string_view s) {
  if (all_below(s, 0xCC)) return std::string(s);
  std::vector<char32_t> cps = decompose_and_order(s);
  // Canonical composition: each character either composes with the last starter (when not blocked by an
  // intervening mark of equal or higher class) or is kept.
  std::vector<char32_t> out;
  out.reserve(cps.size());
  std::ptrdiff_t starter = -1;
  int last_class = -1;
  for (char32_t cp : cps) {
    int cls = combining_class(cp);
    if (starter >= 0) {
      bool blocked = !out.empty() && size_t(starter) != out.size() - 1 && (last_class == 0 || last_class >= cls);
      if (!blocked) {
        if (char32_t composite = compose_pair(out[starter], cp)) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (cls == 0) {
      starter = std::ptrdiff_t(out.size());
      last_class = -1;
    } else {
      last_class = cls;
    }
    out.push_back(cp);
  }
  std::string result;
  result.reserve(s.size());
  for (char32_t cp : out) append_utf8(result, cp);
  return result;
}

const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? char32_t(b) : next++;
    }
    return t;
  }();
  return table;
}

int char_to_byte(char32_t cp) {
  static const std::vector<int> inverse = [] {
    std::vector<int> inv(324, -1);
    const auto& t = byte_to_char();
    for (int b = 0; b < 256; ++b) inv[t[b]] = b;
    return inv;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

}  // namespace quantllm::unicode
