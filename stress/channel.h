// The control channel between `sigrace stress` (the driver, which scans)
// and its worker process `sigrace stress-child` (which holds the signer,
// the crash handler and the workload threads).
//
// Why two processes: the scanner's index holds every form of every key,
// and a process's dump holds its heap. A driver that scanned in the same
// process it dumps would find its own oracle in every dump. So the process
// that is dumped never holds a derived form: it hands each private key
// (PKCS#8 DER, straight from the signer's published oracle page) to the
// driver over this socket, in memory only, never to disk or output.
//
// Transport: an AF_UNIX SOCK_SEQPACKET socketpair, inherited by the worker
// as a numbered fd. One message = one record: a type byte then a payload;
// a live dump's memfd travels with its result as SCM_RIGHTS.
//   driver -> worker: 'T' {"trial":N}   run trial N
//                     'Q'               finish and exit 0
//   worker -> driver: 'H' {json}        ready (pid, window, tids)
//                     'A' {json}        a key about to be generated (kid,
//                                       alg, generation, stream; no bytes)
//                     'K' u16 kid_len, kid, DER   one private key (once)
//                     'R' {json} [+fd]  a trial's dump (see worker.cc)
//                     'E' text          a harness error; the worker exits 2
//
// Thread safety: a Channel is used by one thread at a time, except Send(),
// which may run on several threads at once (each message is one atomic
// sendmsg on a SEQPACKET socket).
// Not async-signal-safe.

#ifndef SIGRACE_STRESS_CHANNEL_H_
#define SIGRACE_STRESS_CHANNEL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace sigrace::stress {

inline constexpr size_t kMaxMessage = size_t{64} * 1024;

struct Message {
  char type = 0;
  std::string payload;  // 'K' payloads hold key bytes: wipe after use
  int fd = -1;          // received descriptor (owned by the receiver)
};

class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  int fd() const { return fd_; }
  // Sends type + a + b as one message (two parts so a key can go out
  // straight from where it lies, with no copy); passes `pass_fd` if >= 0.
  Status Send(char type, std::string_view a, std::string_view b = {},
              int pass_fd = -1) const;
  // Waits up to timeout_ms (< 0: forever). NotFound on orderly EOF (the
  // peer exited), Unavailable on timeout.
  StatusOr<Message> Recv(int timeout_ms) const;

 private:
  int fd_;
};

// Creates the socketpair; both ends close-on-exec.
Status MakeChannelPair(int* driver_end, int* worker_end);

}  // namespace sigrace::stress

#endif  // SIGRACE_STRESS_CHANNEL_H_
