// bmos serve: the request parser names every bad field, the text stream keeps UTF-8 whole and cuts at stop strings,
// the server-sent-event framing; and the real server, started as `bmos serve --port 0` and driven by the real curl
// binary: /health, a greedy completion equal to bmos generate's text, the same text streamed, 4xx errors naming the
// field, 16 concurrent completions, 503 from a full queue, and a clean exit on SIGTERM.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tokenizers/tokenizer.h"
#include "tests/test_util.h"
#include "trainer/serve/request.h"
#include "trainer/serve/responses.h"
#include "trainer/serve/text_stream.h"

extern char** environ;

namespace bmos::serve {
namespace {

using nlohmann::json;

// ------------------------------------------------------------------------------------------------ request parsing
TEST(ServeRequest, AFullRequestAndTheDefaults) {
  const ParsedRequest d = parse_completion_request(R"({"prompt": "Once"})");
  ASSERT_TRUE(d.request) << d.error.message;
  EXPECT_EQ(d.request->prompt, "Once");
  EXPECT_EQ(d.request->max_tokens, 16);
  EXPECT_EQ(d.request->temperature, 1.0);
  EXPECT_EQ(d.request->top_p, 1.0);
  EXPECT_FALSE(d.request->seed);
  EXPECT_TRUE(d.request->stop.empty());
  EXPECT_FALSE(d.request->stream);
  // Every known field; OpenAI's fields we do not implement and unknown ones are ignored; null means "not given".
  const ParsedRequest f = parse_completion_request(
      R"({"prompt": "", "max_tokens": 7, "temperature": 0, "top_p": 0.5, "seed": 18446744073709551615,
          "stop": ["\n", "The end"], "stream": true, "model": "any", "n": 1, "echo": false, "whatever": {}})");
  ASSERT_TRUE(f.request) << f.error.message;
  EXPECT_EQ(f.request->prompt, "");
  EXPECT_EQ(f.request->max_tokens, 7);
  EXPECT_EQ(f.request->temperature, 0.0);
  EXPECT_EQ(f.request->top_p, 0.5);
  EXPECT_EQ(*f.request->seed, 18446744073709551615ull);
  EXPECT_EQ(f.request->stop, (std::vector<std::string>{"\n", "The end"}));
  EXPECT_TRUE(f.request->stream);
  const ParsedRequest s = parse_completion_request(R"({"prompt": "a", "stop": "x", "seed": null, "max_tokens": null})");
  ASSERT_TRUE(s.request) << s.error.message;
  EXPECT_EQ(s.request->stop, std::vector<std::string>{"x"});
  EXPECT_FALSE(s.request->seed);
  EXPECT_EQ(s.request->max_tokens, 16);
  // A max_tokens past int64 is no syntax error: it is out of every context, which the engine says.
  const ParsedRequest huge = parse_completion_request(R"({"prompt": "a", "max_tokens": 18446744073709551615})");
  ASSERT_TRUE(huge.request);
  EXPECT_EQ(huge.request->max_tokens, INT64_MAX);
}

TEST(ServeRequest, EachBadFieldIsNamed) {
  struct Case {
    const char* body;
    const char* param;  // "" = the body as a whole
    const char* says;
  };
  const Case cases[] = {
      {"{\"prompt\": ", "", "not valid JSON"},
      {"[1, 2]", "", "must be a JSON object"},
      {"{}", "prompt", "required"},
      {R"({"prompt": null})", "prompt", "required"},
      {R"({"prompt": 3})", "prompt", "must be a string"},
      {R"({"prompt": ["a", "b"]})", "prompt", "must be a string"},
      {R"({"prompt": "a", "max_tokens": "16"})", "max_tokens", "integer"},
      {R"({"prompt": "a", "max_tokens": 1.5})", "max_tokens", "integer"},
      {R"({"prompt": "a", "max_tokens": 0})", "max_tokens", "at least 1"},
      {R"({"prompt": "a", "max_tokens": -4})", "max_tokens", "at least 1"},
      {R"({"prompt": "a", "temperature": "hot"})", "temperature", "number"},
      {R"({"prompt": "a", "temperature": -0.1})", "temperature", ">= 0"},
      {R"({"prompt": "a", "top_p": 0})", "top_p", "(0, 1]"},
      {R"({"prompt": "a", "top_p": 1.01})", "top_p", "(0, 1]"},
      {R"({"prompt": "a", "top_p": true})", "top_p", "number"},
      {R"({"prompt": "a", "seed": -1})", "seed", ">= 0"},
      {R"({"prompt": "a", "seed": 1.5})", "seed", "integer"},
      {R"({"prompt": "a", "seed": "7"})", "seed", "integer"},
      {R"({"prompt": "a", "stop": 3})", "stop", "string or a list"},
      {R"({"prompt": "a", "stop": ["a", 1]})", "stop", "string or a list"},
      {R"({"prompt": "a", "stop": [""]})", "stop", "not be empty"},
      {R"({"prompt": "a", "stop": ["1", "2", "3", "4", "5"]})", "stop", "at most 4"},
      {R"({"prompt": "a", "stream": "yes"})", "stream", "true or false"},
      {R"({"prompt": "a", "stream": 1})", "stream", "true or false"},
  };
  for (const Case& c : cases) {
    const ParsedRequest p = parse_completion_request(c.body);
    EXPECT_FALSE(p.request) << c.body;
    EXPECT_EQ(p.error.status, 400) << c.body;
    EXPECT_EQ(p.error.param, c.param) << c.body;
    EXPECT_HAS(p.error.message, c.says);
  }
}

TEST(ServeRequest, ErrorBodyIsOpenAIs) {
  const json e = json::parse(error_json("'top_p' must be in (0, 1]", "invalid_request_error", "top_p"));
  EXPECT_EQ(e["error"]["message"], "'top_p' must be in (0, 1]");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "top_p");
  EXPECT_TRUE(json::parse(error_json("bad body", "invalid_request_error"))["error"]["param"].is_null());
}

// -------------------------------------------------------------------------------------------------- text stream
std::vector<std::string> push_all(TextStream& t, const std::vector<std::string>& pieces) {
  std::vector<std::string> out;
  for (const auto& p : pieces) out.push_back(t.push(p));
  out.push_back(t.finish());
  return out;
}

TEST(ServeTextStream, ACharacterSplitOverTokensGoesOutWhole) {
  TextStream t;
  // U+201C (E2 80 9C) as three byte-fallback tokens, then ASCII.
  EXPECT_EQ(push_all(t, {"\xE2", "\x80", "\x9C", "Hi"}), (std::vector<std::string>{"", "", "\xE2\x80\x9C", "Hi", ""}));
  TextStream cut;  // generation that ends mid-character sends the bytes it has (the JSON writer makes them U+FFFD)
  EXPECT_EQ(push_all(cut, {"a\xF0\x9F", "\x98"}), (std::vector<std::string>{"a", "", "\xF0\x9F\x98"}));
  EXPECT_EQ(complete_utf8_prefix("ab\xC3"), 2u);
  EXPECT_EQ(complete_utf8_prefix("ab\xC3\xA9"), 4u);
  EXPECT_EQ(complete_utf8_prefix("\x80\x80\x80\x80\x80"), 5u);  // no character start: not UTF-8, nothing to wait for
}

TEST(ServeTextStream, StopStringsCutTheTextAndHoldOnlyWhatMayStartOne) {
  TextStream t({"The end"});
  // "Th" and "The e" may start the stop string: held; "The end" arrives: nothing of it goes out.
  EXPECT_EQ(push_all(t, {"Hello. Th", "e e", "nd. More", "text"}),
            (std::vector<std::string>{"Hello. ", "", "", "", ""}));
  EXPECT_TRUE(t.stopped());
  TextStream no({"The end"});
  EXPECT_EQ(push_all(no, {"Hello T", "here", " T"}), (std::vector<std::string>{"Hello ", "There", " ", "T"}));
  EXPECT_FALSE(no.stopped());
  TextStream two({"\n", "cat"});  // several stop strings: the first one seen
  EXPECT_EQ(push_all(two, {"a c", "at\nb"}), (std::vector<std::string>{"a ", "", ""}));
}

// Whether `s` is whole UTF-8 characters (the test's own check, independent of complete_utf8_prefix).
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const size_t n = c < 0x80 ? 1 : c >> 5 == 0x6 ? 2 : c >> 4 == 0xE ? 3 : c >> 3 == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

// Against the plain reference (join everything, cut at the stop string's first occurrence) over random splits of
// text with 2-, 3- and 4-byte characters, the splits falling anywhere, mid-character included.
TEST(ServeTextStream, RandomSplitsEqualTheJoinedText) {
  const std::vector<std::string> words = {"a", " b", "é", "“", "😀", "The", " end", "ñ", "\n", "xyz"};
  std::mt19937 rng(5);
  for (int trial = 0; trial < 500; ++trial) {
    std::string text;
    for (int i = 0; i < 20; ++i) text += words[rng() % words.size()];
    const std::vector<std::string> stops = {"", "The end", "😀", "\n"};
    const std::string stop = stops[trial % stops.size()];
    std::vector<std::string> pieces;
    for (size_t at = 0; at < text.size();) {
      const size_t n = std::min<size_t>(1 + rng() % 5, text.size() - at);
      pieces.push_back(text.substr(at, n));
      at += n;
    }
    TextStream t(stop.empty() ? std::vector<std::string>{} : std::vector<std::string>{stop});
    std::string joined;
    for (const auto& d : push_all(t, pieces)) {
      EXPECT_TRUE(valid_utf8(d)) << "a delta splits a character in trial " << trial;
      joined += d;
    }
    const size_t cut = stop.empty() ? std::string::npos : text.find(stop);
    ASSERT_EQ(joined, text.substr(0, cut)) << "trial " << trial << ", stop '" << stop << "'";
    EXPECT_EQ(t.stopped(), cut != std::string::npos);
  }
}

// ------------------------------------------------------------------------------------------------ SSE and bodies
TEST(ServeSse, EventsAndBodies) {
  EXPECT_EQ(sse_event("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_event("two\nlines"), "data: two\ndata: lines\n\n");  // the SSE rule for data with newlines
  EXPECT_EQ(std::string(kSseDone), "data: [DONE]\n\n");
  const CompletionId id{"cmpl-1", 1700000000, "stories260K.bin"};
  const json c = json::parse(chunk_json(id, "Hi\n\"there\""));
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["choices"][0]["text"], "Hi\n\"there\"");
  EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunk_json(id, "x").find('\n'), std::string::npos);  // one JSON line per event
  EXPECT_EQ(json::parse(chunk_json(id, "", "length"))["choices"][0]["finish_reason"], "length");
  CompletionResult r{"text \xF0\x9F", "stop", 5, 3};  // ends mid-character: U+FFFD, not an exception
  const json b = json::parse(completion_json(id, r));
  EXPECT_EQ(b["id"], "cmpl-1");
  EXPECT_EQ(b["created"], 1700000000);
  EXPECT_EQ(b["model"], "stories260K.bin");
  EXPECT_EQ(b["choices"][0]["text"], "text \xEF\xBF\xBD");
  EXPECT_EQ(b["choices"][0]["index"], 0);
  EXPECT_EQ(b["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(b["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(b["usage"]["completion_tokens"], 3);
  EXPECT_EQ(b["usage"]["total_tokens"], 8);
}

// ------------------------------------------------------------------------------------------- the server, by curl
struct Shell {
  int status = -1;
  std::string out;
};

Shell shell(const std::string& cmd) {
  Shell r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  for (size_t n; (n = fread(buf.data(), 1, buf.size(), p)) > 0;) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string quote(const std::string& s) {  // for sh: '...'
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// `bmos serve ... --port 0` as a child; the port from its first line.
class Server {
 public:
  Server(const std::string& args, const std::string& dir) : out_(dir + "/serve.out"), err_(dir + "/serve.err") {
    const std::string cmd = "exec env OMP_WAIT_POLICY=PASSIVE " + test::build_dir() + "/bmos serve " + args +
                            " --port 0 >" + out_ + " 2>" + err_;
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    if (posix_spawn(&pid_, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) pid_ = -1;
    const auto t0 = std::chrono::steady_clock::now();
    while (pid_ > 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30)) {
      const std::string out = read_file(out_);
      const std::string mark = "listening on http://127.0.0.1:";
      if (out.find(mark) == 0 && out.find('\n') != std::string::npos) {
        port_ = std::stoi(out.substr(mark.size()));
        return;
      }
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~Server() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  std::string stderr_text() const { return read_file(err_); }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  // SIGTERM, then the exit status (-1: still running after 10 s, or killed by a signal).
  int terminate() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 1000; ++i) {
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

 private:
  std::string out_, err_;
  pid_t pid_ = -1;
  int port_ = 0;
};

struct Http {
  int code = 0;
  std::string body;
};

// curl [extra] URL: the body and the status code (curl's -w after a newline of ours).
Http curl(const std::string& url, const std::string& extra = "") {
  const Shell r = shell("curl -sS --max-time 60 -w '\\n%{http_code}' " + extra + " " + quote(url));
  Http h;
  const size_t nl = r.out.rfind('\n');
  if (r.status != 0 || nl == std::string::npos) {
    ADD_FAILURE() << "curl " << url << " failed (" << r.status << "): " << r.out;
    return h;
  }
  h.code = std::stoi(r.out.substr(nl + 1));
  h.body = r.out.substr(0, nl);
  return h;
}

Http post(const Server& s, const json& body, const std::string& extra = "") {
  return curl(s.url("/v1/completions"), "-H 'Content-Type: application/json' " + extra + " -d " + quote(body.dump()));
}

json parsed(const Http& h) {
  try {
    return json::parse(h.body);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON: " << h.body;
    return json();
  }
}

#define BMOS_REQUIRE_CURL()                                                                          \
  if (shell("command -v curl >/dev/null").status != 0) {                                             \
    GTEST_SKIP() << "SKIPPED: no curl binary (apt-get install curl; scripts/setup.sh installs it)"; \
  }

TEST(ServeHttp, CurlAgainstTheRealServer) {
  BMOS_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(tok_path, "models/stories260K/tok512.model");
  BMOS_REQUIRE_CURL();
  const std::string dir = test::temp_dir("serve");
  Server server("--model " + model + " --tokenizer " + tok_path + " --threads 1 --max_queue 20", dir);
  ASSERT_GT(server.port(), 0) << "no 'listening on' line; stderr:\n" << server.stderr_text();

  const Http health = curl(server.url("/health"));
  EXPECT_EQ(health.code, 200);
  EXPECT_EQ(parsed(health), (json{{"status", "ok"}, {"model", "stories260K.bin"}}));

  // Greedy: the text bmos generate prints after the prompt, for as many positions.
  const std::string prompt = "Once upon a time";
  const int64_t max_tokens = 24;
  const Http plain = post(server, {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}});
  ASSERT_EQ(plain.code, 200) << plain.body;
  const json pj = parsed(plain);
  const std::string text = pj["choices"][0]["text"];
  const int64_t prompt_tokens = int64_t(encode_with(*load_tokenizer(tok_path), prompt, true, false).size());
  EXPECT_EQ(pj["usage"]["prompt_tokens"], prompt_tokens);
  EXPECT_EQ(pj["usage"]["completion_tokens"], max_tokens);
  EXPECT_EQ(pj["usage"]["total_tokens"], prompt_tokens + max_tokens);
  EXPECT_EQ(pj["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(pj["object"], "text_completion");
  const Shell gen = shell("OMP_WAIT_POLICY=PASSIVE " + test::build_dir() + "/bmos generate --model " + model +
                        " --tokenizer " + tok_path + " --prompt " + quote(prompt) + " --temperature 0 --threads 1" +
                        " --steps " + std::to_string(prompt_tokens + max_tokens - 1) + " 2>/dev/null");
  ASSERT_EQ(gen.status, 0);
  EXPECT_EQ(gen.out, prompt + text + "\n") << "bmos generate and bmos serve disagree";
  std::printf("greedy completion: %s\n", text.c_str());

  // The same request streamed: deltas that join to the same text, a last chunk with the finish reason, [DONE].
  const Http sse = post(server, {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", true}},
                        "-N");
  ASSERT_EQ(sse.code, 200) << sse.body;
  std::vector<std::string> events;
  for (size_t at = 0; at < sse.body.size();) {
    const size_t end = sse.body.find("\n\n", at);
    ASSERT_NE(end, std::string::npos) << "an event without its blank line: " << sse.body.substr(at);
    const std::string ev = sse.body.substr(at, end - at);
    ASSERT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    events.push_back(ev.substr(6));
    at = end + 2;
  }
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string joined;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json c = json::parse(events[i]);
    joined += c["choices"][0]["text"].get<std::string>();
    if (i + 2 < events.size()) EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
    else EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  }
  EXPECT_EQ(joined, text);
  EXPECT_GT(events.size(), 5u) << "the text came in one piece, not streamed";

  // A stop string taken from the greedy text: the text ends before it, finish "stop".
  const std::string stop = " named";
  ASSERT_NE(text.find(stop), std::string::npos) << "pick a stop word from: " << text;
  const json st = parsed(post(server, {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0},
                                       {"stop", {stop, "zzz"}}}));
  EXPECT_EQ(st["choices"][0]["text"], text.substr(0, text.find(stop)));
  EXPECT_EQ(st["choices"][0]["finish_reason"], "stop");

  // Errors: 4xx JSON naming the field.
  for (const auto& [body, param] : std::vector<std::pair<json, std::string>>{
           {{{"prompt", "x"}, {"temperature", -1}}, "temperature"},
           {{{"prompt", "x"}, {"max_tokens", 100000}}, "max_tokens"},
           {{{"max_tokens", 4}}, "prompt"}}) {
    const Http bad = post(server, body);
    EXPECT_EQ(bad.code, 400) << bad.body;
    EXPECT_EQ(parsed(bad)["error"]["param"], param) << bad.body;
    EXPECT_EQ(parsed(bad)["error"]["type"], "invalid_request_error");
  }
  const Http malformed = curl(server.url("/v1/completions"), "-d '{\"prompt\": '");
  EXPECT_EQ(malformed.code, 400);
  EXPECT_HAS(parsed(malformed)["error"]["message"].get<std::string>(), "not valid JSON");
  EXPECT_EQ(curl(server.url("/v1/nothing")).code, 404);
  EXPECT_TRUE(parsed(curl(server.url("/v1/nothing"))).contains("error"));
  EXPECT_EQ(curl(server.url("/v1/completions")).code, 405);  // GET
  EXPECT_EQ(curl(server.url("/health"), "-X POST").code, 405);

  // 16 at once, each with its own seed; one seed asked twice gives one text.
  std::string script;
  for (int i = 0; i < 16; ++i) {
    const json body = {{"prompt", "Once"}, {"max_tokens", 32}, {"temperature", 1.0}, {"seed", i % 8}};
    script += "curl -sS --max-time 60 -o " + dir + "/c" + std::to_string(i) + " -w '%{http_code}' -d " +
              quote(body.dump()) + " " + server.url("/v1/completions") + " >" + dir + "/code" + std::to_string(i) +
              " & ";
  }
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(shell(script + "wait").status, 0);
  std::printf("16 concurrent completions of 32 tokens: %.2f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  std::vector<std::string> texts;
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(read_file(dir + "/code" + std::to_string(i)), "200") << "request " << i;
    const json c = json::parse(read_file(dir + "/c" + std::to_string(i)), nullptr, false);
    ASSERT_FALSE(c.is_discarded()) << "request " << i;
    EXPECT_GE(c["usage"]["completion_tokens"].get<int>(), 1);
    EXPECT_LE(c["usage"]["completion_tokens"].get<int>(), 32);
    texts.push_back(c["choices"][0]["text"]);
  }
  for (int i = 0; i < 8; ++i) EXPECT_EQ(texts[i], texts[i + 8]) << "seed " << i;
  EXPECT_NE(texts[0], texts[1]) << "seeds 0 and 1 gave one text";

  EXPECT_EQ(server.terminate(), 0) << server.stderr_text();
  EXPECT_HAS(server.stderr_text(), "stopped by");
  std::filesystem::remove_all(dir);
}

TEST(ServeHttp, AFullQueueAnswers503AtOnce) {
  BMOS_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(tok_path, "models/stories260K/tok512.model");
  BMOS_REQUIRE_CURL();
  const std::string dir = test::temp_dir("serve_queue");
  Server server("--model " + model + " --tokenizer " + tok_path + " --threads 1 --max_queue 1", dir);
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  // Six long completions at once: one runs, one waits, the others find the queue full.
  const json body = {{"prompt", "Once"}, {"max_tokens", 400}, {"temperature", 0}};
  std::string script;
  for (int i = 0; i < 6; ++i)
    script += "curl -sS --max-time 60 -o " + dir + "/c" + std::to_string(i) + " -w '%{http_code}' -d " +
              quote(body.dump()) + " " + server.url("/v1/completions") + " >" + dir + "/code" + std::to_string(i) +
              " & ";
  ASSERT_EQ(shell(script + "wait").status, 0);
  int ok = 0, busy = 0;
  for (int i = 0; i < 6; ++i) {
    const std::string code = read_file(dir + "/code" + std::to_string(i));
    if (code == "200") ++ok;
    if (code == "503") {
      ++busy;
      const json e = json::parse(read_file(dir + "/c" + std::to_string(i)));
      EXPECT_HAS(e["error"]["message"].get<std::string>(), "queue is full");
    }
  }
  std::printf("%d answered, %d refused with 503\n", ok, busy);
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, 1);
  EXPECT_EQ(ok + busy, 6);
  EXPECT_EQ(server.terminate(), 0) << server.stderr_text();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace bmos::serve
