// The body of POST /v1/completions (OpenAI's legacy completions API) parsed into a plain struct, no torch. Fields
// OpenAI defines that we do not implement (n, logprobs, echo, ...) and unknown fields are ignored, as OpenAI ignores
// unknown ones; a known field of the wrong type or out of range is an error naming it. null means "not given".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bmos::serve {

struct CompletionRequest {
  std::string prompt;              // required; BOS is prepended, as bmos generate does
  int64_t max_tokens = 16;         // tokens to generate, >= 1 (prompt + max_tokens - 1 must fit the context)
  double temperature = 1.0;        // >= 0; 0 = greedy
  double top_p = 1.0;              // (0, 1]; 1 = sample from the whole distribution
  std::optional<uint64_t> seed;    // none: a fresh seed per request
  std::vector<std::string> stop;   // up to 4 non-empty strings; the text ends before the first one seen
  bool stream = false;             // server-sent events, one per decoded delta, then "data: [DONE]"
};

// A request the client must fix: the HTTP status, what is wrong and the field ("" when it is the body as a whole).
struct RequestError {
  int status = 400;
  std::string message;
  std::string param;
};

// Parses and validates the raw body (syntax and ranges; whether the prompt fits the model is the engine's check).
// Returns the error instead of a request when the body is malformed or a field is wrong.
struct ParsedRequest {
  std::optional<CompletionRequest> request;
  RequestError error;
};
ParsedRequest parse_completion_request(const std::string& body);

// OpenAI's error body: {"error":{"message":...,"type":...,"param":...|null,"code":null}}.
std::string error_json(const std::string& message, const std::string& type, const std::string& param = "");

}  // namespace bmos::serve
