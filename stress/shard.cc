#include "stress/shard.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

namespace sigrace::stress {
namespace {

// A decimal number 0..kMaxShards, nothing else.
std::optional<uint32_t> ParseCount(const std::string& s) {
  if (s.empty() || s.size() > 6 ||
      s.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const unsigned long v = std::stoul(s);
  if (v > kMaxShards) return std::nullopt;
  return static_cast<uint32_t>(v);
}

Status CheckRange(const ShardSpec& s, const std::string& what) {
  if (s.count < 1 || s.count > kMaxShards) {
    return InvalidArgumentError(what + ": shard count " +
                                std::to_string(s.count) + " out of range 1.." +
                                std::to_string(kMaxShards));
  }
  if (s.index >= s.count) {
    return InvalidArgumentError(what + ": shard index " +
                                std::to_string(s.index) + " out of range 0.." +
                                std::to_string(s.count - 1));
  }
  return Status::Ok();
}

StatusOr<std::optional<ShardSpec>> FromGtest(const EnvLookup& env) {
  const char* total = env("GTEST_TOTAL_SHARDS");
  const char* index = env("GTEST_SHARD_INDEX");
  if (total == nullptr && index == nullptr) return std::optional<ShardSpec>();
  if (total == nullptr || index == nullptr) {
    return InvalidArgumentError(
        std::string(total ? "GTEST_TOTAL_SHARDS" : "GTEST_SHARD_INDEX") +
        " is set without " +
        (total ? "GTEST_SHARD_INDEX" : "GTEST_TOTAL_SHARDS"));
  }
  const std::optional<uint32_t> n = ParseCount(total);
  const std::optional<uint32_t> i = ParseCount(index);
  if (!n) {
    return InvalidArgumentError("GTEST_TOTAL_SHARDS='" + std::string(total) +
                                "' is not a count 1.." +
                                std::to_string(kMaxShards));
  }
  if (!i) {
    return InvalidArgumentError("GTEST_SHARD_INDEX='" + std::string(index) +
                                "' is not an index");
  }
  ShardSpec s{.index = *i, .count = *n, .source = "gtest"};
  SIGRACE_RETURN_IF_ERROR(
      CheckRange(s, "GTEST_SHARD_INDEX/GTEST_TOTAL_SHARDS"));
  return std::optional<ShardSpec>(s);
}

StatusOr<std::optional<ShardSpec>> FromK8s(uint32_t count_flag,
                                           const EnvLookup& env) {
  const char* index = env("JOB_COMPLETION_INDEX");
  const char* count_env = env("SIGRACE_SHARD_COUNT");
  if (index == nullptr) {
    if (count_flag != 0 || count_env != nullptr) {
      return InvalidArgumentError(
          std::string(count_flag != 0 ? "--shard-count"
                                      : "SIGRACE_SHARD_COUNT") +
          " is set without JOB_COMPLETION_INDEX (or use --shard I/N)");
    }
    return std::optional<ShardSpec>();
  }
  const std::optional<uint32_t> i = ParseCount(index);
  if (!i) {
    return InvalidArgumentError("JOB_COMPLETION_INDEX='" + std::string(index) +
                                "' is not an index");
  }
  uint32_t n = count_flag;
  if (count_env != nullptr) {
    const std::optional<uint32_t> e = ParseCount(count_env);
    if (!e) {
      return InvalidArgumentError(
          "SIGRACE_SHARD_COUNT='" + std::string(count_env) +
          "' is not a count 1.." + std::to_string(kMaxShards));
    }
    if (count_flag != 0 && *e != count_flag) {
      return InvalidArgumentError(
          "--shard-count " + std::to_string(count_flag) +
          " conflicts with SIGRACE_SHARD_COUNT=" + std::to_string(*e));
    }
    n = *e;
  }
  if (n == 0) {
    return InvalidArgumentError(
        "JOB_COMPLETION_INDEX is set but the shard count is not (give "
        "--shard-count N or SIGRACE_SHARD_COUNT)");
  }
  ShardSpec s{.index = *i, .count = n, .source = "k8s"};
  SIGRACE_RETURN_IF_ERROR(CheckRange(s, "JOB_COMPLETION_INDEX"));
  return std::optional<ShardSpec>(s);
}

int NoteCallback(dl_phdr_info* info, size_t, void* data) {
  // The first object is the main program.
  auto* out = static_cast<std::string*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
    const char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      ElfW(Nhdr) nh;
      std::memcpy(&nh, p, sizeof(nh));
      const char* name = p + sizeof(nh);
      const char* desc = name + ((nh.n_namesz + 3) & ~3u);
      const char* next = desc + ((nh.n_descsz + 3) & ~3u);
      if (next > end) break;
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
          std::memcmp(name, "GNU", 4) == 0) {
        static const char kHex[] = "0123456789abcdef";
        for (uint32_t k = 0; k < nh.n_descsz; ++k) {
          const auto b = static_cast<unsigned char>(desc[k]);
          out->push_back(kHex[b >> 4]);
          out->push_back(kHex[b & 15]);
        }
        return 1;
      }
      p = next;
    }
  }
  return 1;  // only the main program
}

std::string ComputeBuildId() {
  std::string id;
  dl_iterate_phdr(NoteCallback, &id);
  if (!id.empty()) return id;
  const int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "unknown";
  uint64_t h = 1469598103934665603ull;
  char buf[1 << 16];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
    for (ssize_t k = 0; k < n; ++k) {
      h = (h ^ static_cast<unsigned char>(buf[k])) * 1099511628211ull;
    }
  }
  close(fd);
  char out[32];
  std::snprintf(out, sizeof(out), "fnv1a64:%016llx",
                static_cast<unsigned long long>(h));
  return out;
}

}  // namespace

std::string ShardSpec::ToString() const {
  return std::to_string(index) + "/" + std::to_string(count);
}

StatusOr<ShardSpec> ResolveShard(const std::string& shard_flag,
                                 uint32_t shard_count_flag,
                                 const EnvLookup& env) {
  if (!shard_flag.empty()) {
    const size_t slash = shard_flag.find('/');
    const auto bad = [&](const std::string& why) {
      return InvalidArgumentError("--shard '" + shard_flag + "': " + why +
                                  " (I/N: shard I of N, 0 <= I < N <= " +
                                  std::to_string(kMaxShards) + ")");
    };
    if (slash == std::string::npos) return bad("no '/'");
    const std::optional<uint32_t> i = ParseCount(shard_flag.substr(0, slash));
    const std::optional<uint32_t> n = ParseCount(shard_flag.substr(slash + 1));
    if (!i || !n) return bad("not two numbers");
    if (*n == 0) return bad("N must be at least 1");
    if (*i >= *n) return bad("I must be below N");
    if (shard_count_flag != 0 && shard_count_flag != *n) {
      return InvalidArgumentError("--shard " + shard_flag +
                                  " conflicts with --shard-count " +
                                  std::to_string(shard_count_flag));
    }
    return ShardSpec{.index = *i, .count = *n, .source = "flag"};
  }
  StatusOr<std::optional<ShardSpec>> g = FromGtest(env);
  if (!g.ok()) return g.status();
  StatusOr<std::optional<ShardSpec>> k = FromK8s(shard_count_flag, env);
  if (!k.ok()) return k.status();
  if (*g && *k && ((*g)->index != (*k)->index || (*g)->count != (*k)->count)) {
    return InvalidArgumentError("GTEST_SHARD_INDEX/GTEST_TOTAL_SHARDS (" +
                                (*g)->ToString() +
                                ") conflict with JOB_COMPLETION_INDEX (" +
                                (*k)->ToString() + "); give --shard I/N");
  }
  if (*g) return **g;
  if (*k) return **k;
  return ShardSpec{};
}

Status TouchShardStatusFile(const EnvLookup& env) {
  const char* path = env("GTEST_SHARD_STATUS_FILE");
  if (path == nullptr || *path == '\0') return Status::Ok();
  const int fd =
      open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0) {
    return ErrnoError("GTEST_SHARD_STATUS_FILE " + std::string(path), errno);
  }
  close(fd);
  return Status::Ok();
}

uint64_t ShardTrialCount(uint64_t trials, uint32_t index, uint32_t count) {
  if (count <= 1) return trials;
  if (trials <= index) return 0;
  return (trials - index + count - 1) / count;
}

const std::string& BuildId() {
  static const std::string id = ComputeBuildId();
  return id;
}

}  // namespace sigrace::stress
