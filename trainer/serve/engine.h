// What the HTTP server needs from a model (no torch here, so the server and its tests build without it): a name, the
// check that a request fits, and one completion at a time.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "trainer/serve/request.h"
#include "trainer/serve/responses.h"

namespace bmos::serve {

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string model_name() const = 0;
  // Whether the prompt and max_tokens fit the model's context: an error naming "prompt" or "max_tokens" when not.
  // Safe to call from any thread, while complete() runs.
  virtual std::optional<RequestError> check(const CompletionRequest& request) const = 0;
  // Generates one completion, handing each text delta to on_delta as it is decoded; on_delta returns false to end it
  // early (the client went away). Not thread-safe: the server calls it from its one worker thread.
  virtual CompletionResult complete(const CompletionRequest& request,
                                    const std::function<bool(const std::string& delta)>& on_delta) = 0;
};

}  // namespace bmos::serve
