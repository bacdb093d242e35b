#include "tiers/warm_restart.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>

#include "common/crc32c.h"
#include "common/log.h"

namespace strata::tiers {
namespace {

constexpr std::string_view kMagic = "strata-hot-keys 1\n";
constexpr size_t kBatch = 64;

void PutCrc(std::string* out) {
  uint32_t crc = common::Crc32c(out->data(), out->size());
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
}

// Counts the promotions of one batch.
struct BatchDone final : SsdReadDone {
  std::atomic<uint64_t>* promoted = nullptr;
  void OnSsdRead(ItemRef item) override {
    if (item) promoted->fetch_add(1, std::memory_order_relaxed);
  }
};

constexpr std::string_view kSketchMagic = "strata-sketch 1\n";
constexpr std::string_view kCasMagic = "strata-cas 1\n";

// Writes `data` to `path` under a temporary name, fsynced, then renamed.
common::Status WriteAtomically(const std::string& data, const std::string& path);

// Reads and removes `path`; checks the magic line and the trailing crc32c.
// Returns the bytes between them, or nullopt (*why set for a file that
// exists).
std::optional<std::string> ReadOnce(const std::string& path, std::string_view magic,
                                    const char* what, std::string* why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  unlink(path.c_str());  // used once: a later crash must not replay it
  auto fail = [&](const std::string& reason) -> std::optional<std::string> {
    if (why != nullptr) *why = reason;
    return std::nullopt;
  };
  if (data.size() < magic.size() + 4 || data.compare(0, magic.size(), magic) != 0) {
    return fail(std::string("not a ") + what);
  }
  size_t body = data.size() - 4;
  uint32_t crc = 0;
  for (int i = 0; i < 4; ++i) crc |= uint32_t{static_cast<uint8_t>(data[body + i])} << (8 * i);
  if (common::Crc32c(data.data(), body) != crc) return fail("checksum mismatch");
  return data.substr(magic.size(), body - magic.size());
}

}  // namespace

std::string HotKeysPath(const std::string& ssd_path) { return ssd_path + ".hot"; }
std::string CasPath(const std::string& ssd_path) { return ssd_path + ".cas"; }

common::Status SaveCasHighWater(uint64_t cas, const std::string& path) {
  std::string data(kCasMagic);
  for (int i = 0; i < 8; ++i) data.push_back(static_cast<char>((cas >> (8 * i)) & 0xff));
  PutCrc(&data);
  return WriteAtomically(data, path);
}

std::optional<uint64_t> LoadCasHighWater(const std::string& path, std::string* why) {
  auto body = ReadOnce(path, kCasMagic, "saved CAS high-water mark", why);
  if (!body) return std::nullopt;
  if (body->size() != 8) {
    if (why != nullptr) *why = "not a saved CAS high-water mark";
    return std::nullopt;
  }
  uint64_t cas = 0;
  for (int i = 0; i < 8; ++i) cas |= uint64_t{static_cast<uint8_t>((*body)[i])} << (8 * i);
  return cas;
}
std::string SketchPath(const std::string& ssd_path) { return ssd_path + ".sketch"; }

common::Status SaveSketch(const FrequencySketch& sketch, const std::string& path) {
  std::string data(kSketchMagic);
  data += sketch.Serialize();
  PutCrc(&data);
  return WriteAtomically(data, path);
}

bool LoadSketch(FrequencySketch* sketch, const std::string& path, std::string* why) {
  auto body = ReadOnce(path, kSketchMagic, "saved sketch", why);
  if (!body) return false;
  if (!sketch->Restore(*body)) {
    if (why != nullptr) *why = "saved for another RAM tier size";
    return false;
  }
  return true;
}

common::Status SaveHotKeys(const std::vector<std::string>& keys, const std::string& path) {
  std::string data(kMagic);
  for (const std::string& k : keys) {
    if (k.empty() || k.size() > 255) continue;
    data.push_back(static_cast<char>(k.size()));
    data.append(k);
  }
  PutCrc(&data);
  return WriteAtomically(data, path);
}

namespace {

common::Status WriteAtomically(const std::string& data, const std::string& path) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return common::Status::IoError(tmp + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string msg = tmp + ": " + std::strerror(errno);
      close(fd);
      unlink(tmp.c_str());
      return common::Status::IoError(msg);
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    std::string msg = tmp + ": " + std::strerror(errno);
    unlink(tmp.c_str());
    return common::Status::IoError(msg);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    std::string msg = path + ": " + std::strerror(errno);
    unlink(tmp.c_str());
    return common::Status::IoError(msg);
  }
  return common::Status::Ok();
}

}  // namespace

std::vector<std::string> LoadHotKeys(const std::string& path, std::string* why) {
  std::vector<std::string> keys;
  auto body = ReadOnce(path, kMagic, "hot-key list", why);
  if (!body) return keys;
  for (size_t pos = 0; pos < body->size();) {
    size_t len = static_cast<uint8_t>((*body)[pos]);
    if (len == 0 || pos + 1 + len > body->size()) {
      if (why != nullptr) *why = "truncated entry";
      return {};
    }
    keys.emplace_back(*body, pos + 1, len);
    pos += 1 + len;
  }
  return keys;
}

WarmUp::WarmUp(TieredCache& cache, BlockDevice& device, std::vector<std::string> keys,
               double fill)
    : cache_(cache), device_(device), keys_(std::move(keys)), fill_(fill) {
  thread_ = std::thread([this] { Run(); });
}

WarmUp::~WarmUp() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

void WarmUp::Wait() {
  if (thread_.joinable()) thread_.join();
}

WarmUpStats WarmUp::stats() const {
  WarmUpStats s;
  s.keys = keys_.size();
  s.promoted = promoted_.load(std::memory_order_relaxed);
  s.done = done_.load(std::memory_order_relaxed);
  s.finished = finished_.load(std::memory_order_acquire);
  s.ram_full = ram_full_.load(std::memory_order_relaxed);
  s.seconds = static_cast<double>(nanos_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

void WarmUp::Run() {
  auto t0 = std::chrono::steady_clock::now();
  auto queue = device_.NewQueue(kBatch);
  BatchDone done;
  done.promoted = &promoted_;
  RamTier& ram = cache_.ram();
  size_t i = 0;
  while (i < keys_.size() && !stop_.load(std::memory_order_relaxed)) {
    if (static_cast<double>(ram.Stats().bytes) >= fill_ * static_cast<double>(ram.limit())) {
      ram_full_.store(true, std::memory_order_relaxed);
      break;
    }
    size_t end = std::min(keys_.size(), i + kBatch);
    for (; i < end; ++i) {
      if (cache_.NeedsPromotion(keys_[i])) cache_.Promote(keys_[i], *queue, &done);
    }
    DrainQueue(*queue);
    done_.store(i, std::memory_order_relaxed);
  }
  nanos_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::steady_clock::now() - t0)
                   .count(),
               std::memory_order_relaxed);
  WarmUpStats st = stats();
  common::Log(common::LogLevel::kInfo,
              "warm restart: promoted %llu of %llu saved keys in %.2f s%s",
              static_cast<unsigned long long>(st.promoted),
              static_cast<unsigned long long>(st.keys), st.seconds,
              st.ram_full ? " (stopped: RAM tier full)"
              : stop_.load(std::memory_order_relaxed) && st.done < st.keys ? " (stopped: shutdown)"
                                                                          : "");
  finished_.store(true, std::memory_order_release);
}

}  // namespace strata::tiers
