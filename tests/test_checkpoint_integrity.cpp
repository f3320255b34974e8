// Checkpoints prove they are whole: the manifest lists every file with its size and CRC-32, a damaged newest
// checkpoint is named and the previous whole one resumes (to the uninterrupted run's bits), a full disk during a save
// (RLIMIT_FSIZE in the child) leaves the previous checkpoint intact and says so, a resume compares the resolved jobs
// (comments and the eval section do not block it, the recipe does, by key), and a short crash soak (3 SIGKILLs).
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/job/job_config.h"
#include "trainer/job/job_diff.h"

namespace bmos {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Outcome {
  int status = -1;     // exit status, or 128 + signal
  std::string output;  // stdout and stderr
};

// `sh -c cmd` in a child; with file_limit > 0 the child cannot grow any file past that many bytes (RLIMIT_FSIZE) and
// ignores SIGXFSZ, so a write past it fails with EFBIG as a write to a full disk fails with ENOSPC.
Outcome shell(const std::string& cmd, const std::string& log, rlim_t file_limit = 0) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    if (file_limit > 0) {
      signal(SIGXFSZ, SIG_IGN);
      const rlimit lim{file_limit, file_limit};
      setrlimit(RLIMIT_FSIZE, &lim);
    }
    execl("/bin/sh", "sh", "-c", ("OMP_WAIT_POLICY=PASSIVE " + cmd).c_str(), nullptr);
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  Outcome r;
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.output = read_bytes(log);
  std::printf("$ %s -> %d\n%s", cmd.c_str(), r.status, r.output.c_str());
  return r;
}

class CheckpointIntegrity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::temp_dir("ckpt_integrity");
    std::ofstream out(dir_ + "/corpus.txt");
    const char* words[] = {"the cat saw the ball. ", "a dog found a red box. ", "my sister liked the moon. "};
    for (int d = 0; d < 300; ++d) out << words[d % 3] << words[(d / 3) % 3] << words[(d / 9) % 3] << "\n";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // A tiny pretraining job (a fresh model, byte tokenizer): fast, and its checkpoints hold every kind of file.
  static std::string job(const std::string& name, int steps, int every, int keep, const std::string& extra = "") {
    std::ostringstream j;
    j << "run: {name: " << name << ", out_dir: " << dir_ << "/" << name << ", seed: 3, threads: 1}\n"
      << "teacher: {format: random, init: {dim: 32, hidden_dim: 64, n_layers: 2, n_heads: 4, max_seq_len: 32}}\n"
      << "tokenizer: {kind: byte}\n"
      << "quant: {method: none}\n"
      << "data: {seq_len: 32, cache_dir: " << dir_ << "/cache, sources: [{name: toy, format: text, files: [" << dir_
      << "/corpus.txt]}]}\n"
      << "train: {steps: " << steps << ", batch_size: 4, lr: 3.0e-3, log_every: 1}\n"
      << "checkpoint: {every: " << every << ", keep: " << keep << "}\n"
      << extra;
    const std::string path = dir_ + "/" + name + ".yaml";
    std::ofstream(path) << j.str();
    return path;
  }
  static Outcome train(const std::string& job_path, const std::string& flags = "", rlim_t file_limit = 0) {
    return shell(test::build_dir() + "/bmos train " + job_path + " " + flags, dir_ + "/last.log", file_limit);
  }
  static std::string ck(const std::string& name, int step) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "/checkpoints/step_%08d", step);
    return dir_ + "/" + name + buf;
  }
  static std::string dir_;
};
std::string CheckpointIntegrity::dir_;

TEST_F(CheckpointIntegrity, TheManifestListsEveryFileWithItsSizeAndCrc) {
  ASSERT_EQ(train(job("whole", 2, 1, 3)).status, 0);
  const std::string c = ck("whole", 2);
  const nlohmann::json m = nlohmann::json::parse(read_bytes(c + "/manifest.json"));
  std::set<std::string> listed, present;
  for (const auto& f : m.at("files")) {
    listed.insert(f.at("name").get<std::string>());
    EXPECT_EQ(f.at("bytes").get<uint64_t>(), fs::file_size(c + "/" + f.at("name").get<std::string>())) << f.dump();
  }
  for (const auto& e : fs::directory_iterator(c))
    if (e.path().filename() != "manifest.json") present.insert(e.path().filename().string());
  EXPECT_EQ(listed, present) << "the manifest lists exactly the checkpoint's other files";
  for (const char* f : {"checkpoint.json", "model.json", "model.safetensors", "optimizer.rank0.safetensors", "rng.pt",
                        "job.yaml", "tokenizer.byte"})
    EXPECT_TRUE(listed.count(f)) << f;
  const CheckpointCheck ok = check_checkpoint(c);
  EXPECT_TRUE(ok.whole && ok.verified) << ok.problem;
  for (const auto& e : fs::directory_iterator(dir_ + "/whole/checkpoints"))
    EXPECT_EQ(e.path().filename().string().rfind(".tmp-", 0), std::string::npos) << e.path() << " left behind";
}

TEST_F(CheckpointIntegrity, ADamagedNewestCheckpointIsNamedAndThePreviousWholeOneResumesToTheSameBits) {
  const std::string j = job("damaged", 4, 2, 3);
  ASSERT_EQ(train(j).status, 0);
  const std::string newest = ck("damaged", 4), previous = ck("damaged", 2);
  const std::string weights = read_bytes(newest + "/model.safetensors");
  {
    std::fstream f(newest + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(weights.size() / 2));
    f.put(char(weights[weights.size() / 2] ^ 0x10));
  }
  const Outcome r = train(j, "--resume");
  ASSERT_EQ(r.status, 0);
  EXPECT_HAS(r.output, "resume: " + newest + " is damaged: " + newest +
                           "/model.safetensors: its CRC-32 differs from the manifest's (found ");
  EXPECT_HAS(r.output, ", the manifest says ");
  EXPECT_HAS(r.output, "resume: set " + newest + " aside as " + dir_ + "/damaged/checkpoints/damaged-step_00000004");
  EXPECT_HAS(r.output, "resume: " + previous + " (step 2");
  EXPECT_TRUE(read_bytes(newest + "/model.safetensors") == weights)
      << "steps 3-4 trained again from step 2 give the bits the damaged checkpoint had before the damage";
  EXPECT_FALSE(check_checkpoint(dir_ + "/damaged/checkpoints/damaged-step_00000004").whole);
}

TEST_F(CheckpointIntegrity, TheHalfWrittenFolderOfAKilledSaveIsIgnoredAndReplaced) {
  // What a SIGKILL in the middle of step 4's save leaves: .tmp-step_00000004 with some of its files, cut short.
  const std::string j = job("killed_save", 4, 2, 3);
  ASSERT_EQ(train(j).status, 0);
  const std::string root = dir_ + "/killed_save/checkpoints", half = root + "/.tmp-step_00000004";
  const std::string weights = read_bytes(ck("killed_save", 4) + "/model.safetensors");
  fs::rename(ck("killed_save", 4), half);
  fs::remove(half + "/manifest.json");
  fs::resize_file(half + "/model.safetensors", weights.size() / 3);
  std::ofstream(half + "/model.safetensors.tmp.12345") << "cut";
  EXPECT_EQ(newest_whole_checkpoint(root).dir, ck("killed_save", 2));
  const Outcome r = train(j, "--resume");
  ASSERT_EQ(r.status, 0);
  EXPECT_HAS(r.output, "resume: " + ck("killed_save", 2) + " (step 2");
  EXPECT_EQ(r.output.find("damaged"), std::string::npos) << "a half-written folder is not a damaged checkpoint";
  EXPECT_FALSE(fs::exists(half));
  EXPECT_TRUE(read_bytes(ck("killed_save", 4) + "/model.safetensors") == weights);
}

TEST_F(CheckpointIntegrity, ATruncatedFileIsNamedWithBothSizesAndNoWholeCheckpointIsAnError) {
  const std::string j = job("truncated", 2, 2, 3);
  ASSERT_EQ(train(j).status, 0);
  const std::string c = ck("truncated", 2), f = c + "/optimizer.rank0.safetensors";
  const auto size = fs::file_size(f);
  fs::resize_file(f, size - 100);
  const CheckpointCheck bad = check_checkpoint(c);
  EXPECT_FALSE(bad.whole);
  EXPECT_EQ(bad.problem, f + ": " + std::to_string(size - 100) + " bytes, the manifest says " + std::to_string(size));
  const Outcome r = train(j, "--resume");
  EXPECT_EQ(r.status, 1);
  EXPECT_HAS(r.output, "resume: no whole checkpoint in " + dir_ + "/truncated/checkpoints (newest: " + bad.problem);
}

TEST_F(CheckpointIntegrity, AVersion1CheckpointWithoutAManifestResumesWithAWarningAVersion2OneDoesNot) {
  const std::string j = job("old", 2, 2, 3);
  ASSERT_EQ(train(j).status, 0);
  const std::string c = ck("old", 2);
  nlohmann::json meta = nlohmann::json::parse(read_bytes(c + "/checkpoint.json"));
  fs::remove(c + "/manifest.json");
  meta["version"] = 2;
  std::ofstream(c + "/checkpoint.json") << meta.dump(2);
  EXPECT_EQ(check_checkpoint(c).problem, c + "/manifest.json: missing (a version 2 checkpoint lists its files there)");
  meta["version"] = 1;
  std::ofstream(c + "/checkpoint.json") << meta.dump(2);
  const CheckpointCheck v1 = check_checkpoint(c);
  EXPECT_TRUE(v1.whole && !v1.verified);
  const Outcome r = train(j, "--resume");
  EXPECT_EQ(r.status, 0);
  EXPECT_HAS(r.output, "resume: " + c + " predates checkpoint manifests (version 1): its files are not verified");
}

TEST(CheckpointManifest, AMalformedManifestIsAnErrorNamingTheFileAndTheEntry) {
  const std::string p = "ck/manifest.json";
  EXPECT_HAS(test::error_of([&] { parse_checkpoint_manifest("{\"files\": [", p); }), p + ": not valid JSON");
  EXPECT_HAS(test::error_of([&] { parse_checkpoint_manifest("[]", p); }), p + ": expected an object with a \"files\" list");
  EXPECT_HAS(test::error_of([&] { parse_checkpoint_manifest(R"({"files": [{"name": "a", "bytes": -1, "crc32": 0}]})", p); }),
             p + ": files[0]: expected {\"name\": string");
  EXPECT_HAS(test::error_of([&] {
               parse_checkpoint_manifest(R"({"files": [{"name": "a", "bytes": 1, "crc32": 4294967296}]})", p);
             }),
             p + ": files[0]: expected");
  EXPECT_HAS(test::error_of([&] { parse_checkpoint_manifest(R"({"files": [{"name": "../x", "bytes": 1, "crc32": 2}]})", p); }),
             p + ": files[0]: name '../x' is not a file name inside the checkpoint folder");
  EXPECT_HAS(test::error_of([&] {
               parse_checkpoint_manifest(
                   R"({"files": [{"name": "a", "bytes": 1, "crc32": 2}, {"name": "a", "bytes": 1, "crc32": 2}]})", p);
             }),
             p + ": files[1]: 'a' listed twice");
  const auto ok = parse_checkpoint_manifest(R"({"files": [{"name": "a.pt", "bytes": 7, "crc32": 4294967295}]})", p);
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].bytes, 7u);
  EXPECT_EQ(ok[0].crc32, 0xffffffffu);
}

TEST_F(CheckpointIntegrity, AFullDiskDuringASaveLeavesThePreviousCheckpointIntactAndSaysSo) {
  const std::string j = job("full", 4, 2, 2);
  ASSERT_EQ(train(j).status, 0);
  const std::string previous = ck("full", 2), failing = ck("full", 4);
  const std::string weights = read_bytes(failing + "/model.safetensors");
  fs::remove_all(failing);  // the run is back at step 2: its next save is step 4's
  const std::string manifest = read_bytes(previous + "/manifest.json");
  // Room for the logs and the small files, not for the optimiser state (written first, the largest file).
  const rlim_t limit = fs::file_size(previous + "/optimizer.rank0.safetensors") / 2;
  ASSERT_GT(limit, 32u << 10) << "the tiny model's files are too small for this test's limit";
  // keep: 1 (a run-only key: the resume allows it) would delete step 2 once step 4 is whole: it must not before.
  const Outcome r = train(j, "--resume --set checkpoint.keep=1", limit);
  EXPECT_EQ(r.status, 1);
  EXPECT_HAS(r.output, "checkpoint step_00000004 was not written: ");
  EXPECT_HAS(r.output, "/checkpoints/.tmp-step_00000004/optimizer.rank0.safetensors");
  EXPECT_HAS(r.output, "The disk is full");
  EXPECT_HAS(r.output, "The previous checkpoint " + previous + " is intact; free space, then continue with --resume");
  EXPECT_FALSE(fs::exists(failing)) << "no half checkpoint under a step_ name";
  EXPECT_FALSE(fs::exists(dir_ + "/full/checkpoints/.tmp-step_00000004")) << "the half-written folder is removed";
  const CheckpointCheck still = check_checkpoint(previous);
  EXPECT_TRUE(still.whole) << still.problem;
  EXPECT_EQ(read_bytes(previous + "/manifest.json"), manifest);
  // With room again the run goes on from step 2 to the bits of the run that never stopped.
  ASSERT_EQ(train(j, "--resume --set checkpoint.keep=1").status, 0);
  EXPECT_TRUE(read_bytes(failing + "/model.safetensors") == weights);
  EXPECT_FALSE(fs::exists(previous)) << "keep: 1 deletes step 2 once step 4 is whole";
}

TEST_F(CheckpointIntegrity, ARealFullFilesystemGivesTheSameStopAndMessage) {
  // The same on a small tmpfs (ENOSPC, not EFBIG), in a mount namespace of its own: needs root or CAP_SYS_ADMIN.
  const std::string probe = dir_ + "/probe";
  fs::create_directories(probe);
  if (shell("unshare -m sh -c 'mount -t tmpfs -o size=64k tmpfs " + probe + "'", dir_ + "/probe.log").status != 0)
    GTEST_SKIP() << "SKIPPED: cannot mount a tmpfs in a mount namespace here (unshare -m needs root or CAP_SYS_ADMIN); "
                    "AFullDiskDuringASaveLeavesThePreviousCheckpointIntactAndSaysSo covers the full disk with "
                    "RLIMIT_FSIZE";
  const std::string j = job("enospc", 4, 2, 2);
  ASSERT_EQ(train(j).status, 0);
  const std::string root = dir_ + "/enospc/checkpoints", saved = dir_ + "/enospc_step2";
  fs::remove_all(ck("enospc", 4));
  fs::rename(ck("enospc", 2), saved);
  uintmax_t kib = 120;  // room for everything but the optimiser state (written first, the largest file)
  for (const auto& e : fs::directory_iterator(saved)) kib += (e.file_size() + 4095) / 4096 * 4;
  ASSERT_GT(fs::file_size(saved + "/optimizer.rank0.safetensors"), 120u << 10);
  const Outcome r = shell("unshare -m sh -c 'mount -t tmpfs -o size=" + std::to_string(kib) + "k tmpfs " + root +
                              " && cp -r " + saved + " " + root + "/step_00000002 && OMP_WAIT_POLICY=PASSIVE " +
                              test::build_dir() + "/bmos train " + j + " --resume; echo exit $?; ls -a " + root +
                              "; cp -r " + root + "/step_00000002 " + dir_ + "/enospc_after'",
                          dir_ + "/enospc.log");
  EXPECT_HAS(r.output, "checkpoint step_00000004 was not written: ");
  EXPECT_HAS(r.output, "The disk is full (");
  EXPECT_HAS(r.output, "The previous checkpoint " + root + "/step_00000002 is intact");
  EXPECT_HAS(r.output, "exit 1\n.\n..\nstep_00000002\n") << "nothing but the previous checkpoint is left";
  const CheckpointCheck after = check_checkpoint(dir_ + "/enospc_after");
  EXPECT_TRUE(after.whole) << after.problem;
}

// -------------------------------------------------------------------------------------------- resume semantics
std::string base_job(const std::string& extra = "", const std::string& train_extra = "") {
  return "run: {name: r, out_dir: runs/r, seed: 3}\n"
         "teacher: {path: teacher/}\n"
         "quant: {method: binarymos, experts: 4}\n"
         "data: {seq_len: 64, sources: [{name: a, format: text, files: [a.txt]}]}\n"
         "train: {steps: 10, lr: 3.0e-3" + train_extra + "}\n" + extra;
}
std::vector<JobChange> changes(const std::string& before, const std::string& after) {
  return job_changes(parse_job(before, "before.yaml", ""), parse_job(after, "after.yaml", ""));
}

TEST(ResumeJob, CommentsTheEvalSectionAndRunOnlyKeysDoNotBlockTheRecipeDoesByKey) {
  EXPECT_TRUE(changes(base_job(), "# a comment\n" + base_job()).empty());
  EXPECT_TRUE(changes(base_job(), base_job("", ", clip: 1.0, betas: [0.9, 0.999]")).empty())
      << "a default written out is the same job";
  const auto run_only = changes(base_job(), base_job("eval: {every: 50, limit: 10}\ncheckpoint: {every: 5, keep: 1}\n",
                                                     ", log_every: 2"));
  ASSERT_FALSE(run_only.empty());
  for (const auto& c : run_only) EXPECT_FALSE(c.blocks) << c.key;
  EXPECT_EQ(describe_changes(run_only, false),
            "checkpoint.every 500 -> 5, checkpoint.keep 3 -> 1, eval.every 0 -> 50, eval.limit 0 -> 10, "
            "train.log_every 10 -> 2");
  const auto threads = changes(base_job(), base_job("", ", attention_chunk: 16"));
  ASSERT_EQ(threads.size(), 1u);
  EXPECT_TRUE(!threads[0].blocks && threads[0].rounding);

  std::string recipe = base_job("", ", batch_size: 4");
  recipe.replace(recipe.find("lr: 3.0e-3"), 10, "lr: 2.0e-3");
  recipe.replace(recipe.find("experts: 4"), 10, "experts: 2");
  EXPECT_EQ(describe_changes(changes(base_job(), recipe), true),
            "quant.experts 4 -> 2, train.batch_size 8 -> 4, train.lr 0.003 -> 0.002");
  std::string data = base_job();
  data.replace(data.find("}]}"), 3, "}, {name: b, format: text, files: [b.txt], weight: 2}]}");
  const std::string more_data = describe_changes(changes(base_job(), data), true);
  EXPECT_HAS(more_data, "data.sources[1].files (absent) -> [b.txt]");
  EXPECT_HAS(more_data, "data.sources[1].weight (absent) -> 2");
  std::string seed = base_job();
  seed.replace(seed.find("seed: 3"), 7, "seed: 4");
  EXPECT_EQ(describe_changes(changes(base_job(), seed), true), "run.seed 3 -> 4");
}

TEST_F(CheckpointIntegrity, AResumeGoesOnAfterAnEditedCommentAndEvalSectionAndStopsAtAChangedRecipe) {
  const std::string j = job("edit", 2, 1, 2);
  ASSERT_EQ(train(j).status, 0);
  std::string text = read_bytes(j);
  text = "# edited after the run started\n" + text + "eval: {every: 10}\n";
  text.replace(text.find("log_every: 1"), 12, "log_every: 2");
  std::ofstream(j) << text;
  const Outcome ok = train(j, "--resume");
  EXPECT_EQ(ok.status, 0);
  EXPECT_HAS(ok.output, "resume: job changes that leave the training as it was: eval.every 0 -> 10, "
                        "train.log_every 1 -> 2");
  text.replace(text.find("lr: 3.0e-3"), 10, "lr: 1.0e-3");
  text.replace(text.find("steps: 2"), 8, "steps: 3");
  std::ofstream(j) << text;
  const Outcome refused = train(j, "--resume");
  EXPECT_EQ(refused.status, 1);
  EXPECT_HAS(refused.output, ck("edit", 2) + ": was trained with another job: train.lr 0.003 -> 0.001, train.steps 2 -> 3"
                             " (these change what the run computes); resume with the job as it was (" +
                             ck("edit", 2) + "/job.yaml), or use a new run.out_dir");
}

// ------------------------------------------------------------------------------------------------- crash soak
TEST(CrashSoak, ThreeSigkillsOneAimedAtACheckpointWriteResumeToTheUninterruptedBits) {
  const std::string work = test::temp_dir("crash_soak");
  const Outcome r = shell("BMOS=" + test::build_dir() + "/bmos bash " + std::string(BMOS_SOURCE_DIR) +
                          "/experiments/crash_soak.sh --kills 3 --steps 24 --seed 5 --work " + work + "/soak",
                      work + ".log");
  fs::remove_all(work);
  fs::remove(work + ".log");
  EXPECT_EQ(r.status, 0);
  EXPECT_HAS(r.output, "3 of 3 kills landed");
  EXPECT_HAS(r.output, "crash soak: PASS");
}

}  // namespace
}  // namespace bmos
