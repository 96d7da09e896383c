// Helpers of the tokenizer stages' JSON readers (pretokenizers.cpp, decoders.cpp): typed access to a
// component's fields with the file and component named in errors.
#pragma once

#include "core/error.h"
#include "tokenizer/stages.h"
#include "tokenizer/unicode.h"

#include <nlohmann/json.hpp>

#include <string>

namespace quantllm::stages {

using json = nlohmann::json;

enum class PrependScheme { Always, First, Never };

inline std::string type_of(const json& spec, const std::string& context) {
  if (!spec.is_object()) fail("{}: must be an object", context);
  auto it = spec.find("type");
  if (it == spec.end() || !it->is_string()) fail("{}: missing \"type\"", context);
  return it->get<std::string>();
}

inline const json& member(const json& spec, const char* key, const std::string& context) {
  auto it = spec.find(key);
  if (it == spec.end()) fail("{}: missing \"{}\"", context, key);
  return *it;
}

inline std::string get_string(const json& spec, const char* key, const std::string& context) {
  const json& v = member(spec, key, context);
  if (!v.is_string()) fail("{}: \"{}\" must be a string", context, key);
  return v.get<std::string>();
}

inline std::string get_string_or(const json& spec, const char* key, const std::string& fallback, const std::string& context) {
  auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return fallback;
  if (!it->is_string()) fail("{}: \"{}\" must be a string", context, key);
  return it->get<std::string>();
}

inline bool get_bool_or(const json& spec, const char* key, bool fallback, const std::string& context) {
  auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail("{}: \"{}\" must be true or false", context, key);
  return it->get<bool>();
}

inline const json& get_array(const json& spec, const char* key, const std::string& context) {
  const json& v = member(spec, key, context);
  if (!v.is_array()) fail("{}: \"{}\" must be an array", context, key);
  return v;
}

inline char32_t single_char(const std::string& s, const std::string& context, const char* key) {
  size_t pos = 0;
  if (s.empty()) fail("{}: \"{}\" must be one character", context, key);
  char32_t cp = unicode::next_code_point(s, pos);
  if (pos != s.size()) fail("{}: \"{}\" must be one character", context, key);
  return cp;
}

inline PrependScheme parse_prepend_scheme(const json& spec, const std::string& context) {
  auto it = spec.find("prepend_scheme");
  if (it != spec.end() && !it->is_null()) {
    if (!it->is_string()) fail("{}: \"prepend_scheme\" must be a string", context);
    std::string s = it->get<std::string>();
    if (s == "always") return PrependScheme::Always;
    if (s == "first") return PrependScheme::First;
    if (s == "never") return PrependScheme::Never;
    fail("{}: unknown prepend_scheme '{}'", context, s);
  }
  // Files from before prepend_scheme existed carry add_prefix_space instead.
  return get_bool_or(spec, "add_prefix_space", true, context) ? PrependScheme::Always : PrependScheme::Never;
}


}  // namespace quantllm::stages
