#include "trainer/serve/request.h"

#include <cmath>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace bmos::serve {

namespace {

using nlohmann::json;

ParsedRequest fail(const std::string& param, const std::string& message) {
  return {std::nullopt, {400, message, param}};
}

}  // namespace

ParsedRequest parse_completion_request(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e400 (fuzz_serve_request)
    return fail("", std::string("the body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) return fail("", "the body must be a JSON object, e.g. {\"prompt\": \"Once upon a time\"}");
  CompletionRequest r;
  const auto given = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };

  if (!given("prompt")) return fail("prompt", "'prompt' is required (a string)");
  if (!j["prompt"].is_string()) return fail("prompt", "'prompt' must be a string (lists of prompts are not served)");
  r.prompt = j["prompt"].get<std::string>();

  if (given("max_tokens")) {
    const json& v = j["max_tokens"];
    if (!v.is_number_integer()) return fail("max_tokens", "'max_tokens' must be an integer");
    const bool huge = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX);  // past any context
    if (!huge && v.get<int64_t>() < 1) return fail("max_tokens", "'max_tokens' must be at least 1, got " + v.dump());
    r.max_tokens = huge ? INT64_MAX : v.get<int64_t>();
  }
  if (given("temperature")) {
    const json& v = j["temperature"];
    if (!v.is_number()) return fail("temperature", "'temperature' must be a number");
    r.temperature = v.get<double>();
    if (!(r.temperature >= 0) || !std::isfinite(r.temperature))
      return fail("temperature", "'temperature' must be >= 0 (0 = greedy), got " + v.dump());
  }
  if (given("top_p")) {
    const json& v = j["top_p"];
    if (!v.is_number()) return fail("top_p", "'top_p' must be a number");
    r.top_p = v.get<double>();
    if (!(r.top_p > 0 && r.top_p <= 1)) return fail("top_p", "'top_p' must be in (0, 1], got " + v.dump());
  }
  if (given("seed")) {
    const json& v = j["seed"];
    if (!v.is_number_integer()) return fail("seed", "'seed' must be an integer");
    if (v.is_number_unsigned()) r.seed = v.get<uint64_t>();
    else if (v.get<int64_t>() < 0) return fail("seed", "'seed' must be >= 0, got " + v.dump());
    else r.seed = uint64_t(v.get<int64_t>());
  }
  if (given("stop")) {
    const json& v = j["stop"];
    if (v.is_string()) {
      r.stop = {v.get<std::string>()};
    } else if (v.is_array()) {
      for (const json& s : v) {
        if (!s.is_string()) return fail("stop", "'stop' must be a string or a list of strings");
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      return fail("stop", "'stop' must be a string or a list of strings");
    }
    if (r.stop.size() > 4) return fail("stop", "'stop' takes at most 4 strings, got " + std::to_string(r.stop.size()));
    for (const auto& s : r.stop)
      if (s.empty()) return fail("stop", "'stop' strings must not be empty");
  }
  if (given("stream")) {
    if (!j["stream"].is_boolean()) return fail("stream", "'stream' must be true or false");
    r.stream = j["stream"].get<bool>();
  }
  return {r, {}};
}

std::string error_json(const std::string& message, const std::string& type, const std::string& param) {
  json e = {{"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", nullptr}};
  return json{{"error", e}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace bmos::serve
