#include "stress/channel.h"

#include <openssl/crypto.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace sigrace::stress {

Channel::~Channel() {
  if (fd_ >= 0) close(fd_);
}

Status Channel::Send(char type, std::string_view a, std::string_view b,
                     int pass_fd) const {
  if (1 + a.size() + b.size() > kMaxMessage) {
    return InvalidArgumentError("control message too large");
  }
  iovec iov[3];
  iov[0].iov_base = &type;
  iov[0].iov_len = 1;
  iov[1].iov_base = const_cast<char*>(a.data());
  iov[1].iov_len = a.size();
  iov[2].iov_base = const_cast<char*>(b.data());
  iov[2].iov_len = b.size();
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 3;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (pass_fd >= 0) {
    std::memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  while (true) {
    const ssize_t n = sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n >= 0) return Status::Ok();
    if (errno == EINTR) continue;
    return ErrnoError("control channel send", errno);
  }
}

StatusOr<Message> Channel::Recv(int timeout_ms) const {
  pollfd p{fd_, POLLIN, 0};
  while (true) {
    const int r = poll(&p, 1, timeout_ms);
    if (r > 0) break;
    if (r == 0) return UnavailableError("control channel timed out");
    if (errno == EINTR) continue;
    return ErrnoError("control channel poll", errno);
  }
  std::vector<char> buf(kMaxMessage);
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  while (true) {
    n = recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return NotFoundError("worker closed the channel");
    return ErrnoError("control channel receive", errno);
  }
  if (n == 0) return NotFoundError("worker closed the channel");
  Message m;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      std::memcpy(&m.fd, CMSG_DATA(c), sizeof(int));
    }
  }
  m.type = buf[0];
  m.payload.assign(buf.data() + 1, static_cast<size_t>(n) - 1);
  // The buffer may have held a key: wipe before it goes back to the heap.
  OPENSSL_cleanse(buf.data(), static_cast<size_t>(n));
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    if (m.fd >= 0) close(m.fd);
    return DataLossError("control message truncated");
  }
  return m;
}

Status MakeChannelPair(int* driver_end, int* worker_end) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return ErrnoError("socketpair", errno);
  }
  *driver_end = sv[0];
  *worker_end = sv[1];
  return Status::Ok();
}

}  // namespace sigrace::stress
