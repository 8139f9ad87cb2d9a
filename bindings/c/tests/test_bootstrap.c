/* roam_shm_bootstrap_*: frame codec (good, truncated, wrong magic, too small,
 * too long, bad status) and the fd-passing send/receive over a socketpair. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static void bootstrap_header_sizes(void) {
  CHECK_EQ(roam_shm_bootstrap_request_header_size(), 6);
  CHECK_EQ(roam_shm_bootstrap_response_header_size(), 11);
}

static void bootstrap_request_round_trip(void) {
  uint8_t buf[64];
  uintptr_t n = 0;
  const char *sid = "0123456789abcdef0123456789abcdef";
  CHECK_EQ(roam_shm_bootstrap_request_encode((const uint8_t *)sid, 32, buf, sizeof buf, &n), 0);
  CHECK_EQ(n, 38);
  CHECK(memcmp(buf, "RSH0", 4) == 0);
  CHECK_EQ(buf[4], 32);
  CHECK_EQ(buf[5], 0);
  const uint8_t *out = NULL;
  uint16_t out_len = 0;
  CHECK_EQ(roam_shm_bootstrap_request_decode(buf, n, &out, &out_len), 0);
  CHECK_EQ(out_len, 32);
  CHECK(out == buf + 6);
  /* Empty sid: NULL is fine with length 0. */
  CHECK_EQ(roam_shm_bootstrap_request_encode(NULL, 0, buf, sizeof buf, &n), 0);
  CHECK_EQ(n, 6);
  CHECK_EQ(roam_shm_bootstrap_request_decode(buf, 6, &out, &out_len), 0);
  CHECK_EQ(out_len, 0);
}

static void bootstrap_request_errors(void) {
  uint8_t buf[64];
  uintptr_t n = 0;
  const uint8_t sid[8] = "abcdefgh";
  CHECK_EQ(roam_shm_bootstrap_request_encode(NULL, 8, buf, sizeof buf, &n), -1);
  CHECK_EQ(roam_shm_bootstrap_request_encode(sid, 8, NULL, 64, &n), -1);
  CHECK_EQ(roam_shm_bootstrap_request_encode(sid, 8, buf, sizeof buf, NULL), -1);
  CHECK_EQ(roam_shm_bootstrap_request_encode(sid, 8, buf, 13, &n), -2); /* needs 14 */
  CHECK_EQ(roam_shm_bootstrap_request_encode(sid, 0, buf, 0, &n), -2);
  uint8_t *big = calloc(70000, 1);
  CHECK_EQ(roam_shm_bootstrap_request_encode(big, 65536, big, 70000, &n), -3); /* sid > u16 */
  free(big);
  REQUIRE(roam_shm_bootstrap_request_encode(sid, 8, buf, sizeof buf, &n) == 0);
  const uint8_t *out;
  uint16_t out_len;
  CHECK_EQ(roam_shm_bootstrap_request_decode(NULL, n, &out, &out_len), -1);
  CHECK_EQ(roam_shm_bootstrap_request_decode(buf, n, NULL, &out_len), -1);
  CHECK_EQ(roam_shm_bootstrap_request_decode(buf, n, &out, NULL), -1);
  CHECK_EQ(roam_shm_bootstrap_request_decode(buf, 5, &out, &out_len), -2);     /* truncated header */
  CHECK_EQ(roam_shm_bootstrap_request_decode(buf, n - 1, &out, &out_len), -2); /* truncated sid */
  CHECK_EQ(roam_shm_bootstrap_request_decode(buf, 0, &out, &out_len), -2);
  uint8_t longer[64];
  memcpy(longer, buf, n);
  longer[n] = 'x';
  CHECK_EQ(roam_shm_bootstrap_request_decode(longer, n + 1, &out, &out_len), -2); /* trailing byte */
  buf[0] = 'X';
  CHECK_EQ(roam_shm_bootstrap_request_decode(buf, n, &out, &out_len), -2); /* wrong magic */
  CHECK(strstr(roam_last_error_message(), "magic") != NULL);
}

static void bootstrap_response_round_trip(void) {
  uint8_t buf[128];
  uintptr_t n = 0;
  const char *path = "/dev/shm/seg";
  CHECK_EQ(roam_shm_bootstrap_response_encode(0, 7, (const uint8_t *)path, 12, buf, sizeof buf, &n), 0);
  CHECK_EQ(n, 23);
  CHECK(memcmp(buf, "RSP0", 4) == 0);
  CHECK_EQ(buf[4], 0);
  CHECK_EQ(buf[5], 7);
  CHECK_EQ(buf[9], 12);
  RoamShmBootstrapResponseInfo info;
  memset(&info, 0xFF, sizeof info);
  const uint8_t *payload = NULL;
  CHECK_EQ(roam_shm_bootstrap_response_decode(buf, n, &info, &payload), 0);
  CHECK_EQ(info.status, 0);
  CHECK_EQ(info.peer_id, 7);
  CHECK_EQ(info.payload_len, 12);
  CHECK(payload == buf + 11);
  /* Error response: peer 0. */
  CHECK_EQ(roam_shm_bootstrap_response_encode(1, 0, (const uint8_t *)"full", 4, buf, sizeof buf, &n), 0);
  CHECK_EQ(roam_shm_bootstrap_response_decode(buf, n, &info, &payload), 0);
  CHECK_EQ(info.status, 1);
  CHECK(memcmp(payload, "full", 4) == 0);
}

static void bootstrap_response_errors(void) {
  uint8_t buf[64];
  uintptr_t n = 0;
  const uint8_t p[4] = "path";
  CHECK_EQ(roam_shm_bootstrap_response_encode(2, 0, p, 4, buf, sizeof buf, &n), -3);   /* bad status */
  CHECK_EQ(roam_shm_bootstrap_response_encode(1, 5, p, 4, buf, sizeof buf, &n), -3);   /* Error with peer */
  CHECK_EQ(roam_shm_bootstrap_response_encode(0, 1, p, 4, buf, 14, &n), -2);           /* needs 15 */
  CHECK_EQ(roam_shm_bootstrap_response_encode(0, 1, NULL, 4, buf, sizeof buf, &n), -1);
  CHECK_EQ(roam_shm_bootstrap_response_encode(0, 1, p, 4, NULL, 64, &n), -1);
  CHECK_EQ(roam_shm_bootstrap_response_encode(0, 1, p, 4, buf, sizeof buf, NULL), -1);
  uint8_t *big = calloc(70000, 1);
  CHECK_EQ(roam_shm_bootstrap_response_encode(0, 1, big, 65536, big, 70000, &n), -3);
  free(big);
  REQUIRE(roam_shm_bootstrap_response_encode(0, 1, p, 4, buf, sizeof buf, &n) == 0);
  RoamShmBootstrapResponseInfo info;
  const uint8_t *payload;
  CHECK_EQ(roam_shm_bootstrap_response_decode(NULL, n, &info, &payload), -1);
  CHECK_EQ(roam_shm_bootstrap_response_decode(buf, n, NULL, &payload), -1);
  CHECK_EQ(roam_shm_bootstrap_response_decode(buf, n, &info, NULL), -1);
  CHECK_EQ(roam_shm_bootstrap_response_decode(buf, 10, &info, &payload), -2);    /* truncated header */
  CHECK_EQ(roam_shm_bootstrap_response_decode(buf, n - 1, &info, &payload), -2); /* truncated payload */
  uint8_t bad[64];
  memcpy(bad, buf, n);
  bad[4] = 9; /* unknown status */
  CHECK_EQ(roam_shm_bootstrap_response_decode(bad, n, &info, &payload), -2);
  memcpy(bad, buf, n);
  bad[4] = 1; /* Error with peer id 1 */
  CHECK_EQ(roam_shm_bootstrap_response_decode(bad, n, &info, &payload), -2);
  memcpy(bad, buf, n);
  memcpy(bad, "RSH0", 4); /* a request magic */
  CHECK_EQ(roam_shm_bootstrap_response_decode(bad, n, &info, &payload), -2);
}

static int fd_is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

static void bootstrap_send_recv_with_fds(void) {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  int pipefd[2];
  REQUIRE(pipe(pipefd) == 0);
  int memfd = memfd_create("roam-test", 0);
  REQUIRE(memfd >= 0);
  REQUIRE(ftruncate(memfd, 4096) == 0);
  const char *path = "/dev/shm/x";
  CHECK_EQ(roam_shm_bootstrap_response_send_unix(sv[0], 0, 3, (const uint8_t *)path, 10, pipefd[0], memfd, pipefd[1]), 0);
  uint8_t payload[256];
  RoamShmBootstrapResponseInfo info;
  int db = -2, seg = -2, ctl = -2;
  CHECK_EQ(roam_shm_bootstrap_response_recv_unix(sv[1], payload, sizeof payload, &info, &db, &seg, &ctl), 0);
  CHECK_EQ(info.status, 0);
  CHECK_EQ(info.peer_id, 3);
  CHECK_EQ(info.payload_len, 10);
  CHECK(memcmp(payload, path, 10) == 0);
  CHECK(db >= 0 && seg >= 0 && ctl >= 0);
  /* The segment fd is the memfd (same size), in order. */
  struct stat st;
  CHECK(fstat(seg, &st) == 0 && st.st_size == 4096);
  CHECK(fcntl(db, F_GETFD) & FD_CLOEXEC);
  close(db);
  close(seg);
  close(ctl);

  /* Error response: no fds, all outputs -1. */
  CHECK_EQ(roam_shm_bootstrap_response_send_unix(sv[0], 1, 0, (const uint8_t *)"no", 2, -1, -1, -1), 0);
  db = seg = ctl = 99;
  CHECK_EQ(roam_shm_bootstrap_response_recv_unix(sv[1], payload, sizeof payload, &info, &db, &seg, &ctl), 0);
  CHECK_EQ(info.status, 1);
  CHECK_EQ(db, -1);
  CHECK_EQ(seg, -1);
  CHECK_EQ(ctl, -1);

  /* Fds that do not match the status are refused before anything is sent. */
  CHECK_EQ(roam_shm_bootstrap_response_send_unix(sv[0], 0, 3, NULL, 0, -1, memfd, pipefd[1]), -1);
  CHECK_EQ(roam_shm_bootstrap_response_send_unix(sv[0], 1, 0, NULL, 0, pipefd[0], -1, -1), -1);
  CHECK_EQ(roam_shm_bootstrap_response_send_unix(sv[0], 7, 0, NULL, 0, -1, -1, -1), -1);
  CHECK_EQ(roam_shm_bootstrap_response_send_unix(-1, 1, 0, NULL, 0, -1, -1, -1), -1);
  CHECK_EQ(roam_shm_bootstrap_response_send_unix(sv[0], 1, 0, NULL, 5, -1, -1, -1), -1);

  /* Payload larger than the caller's buffer: -2, and the received fds are closed. */
  CHECK_EQ(roam_shm_bootstrap_response_send_unix(sv[0], 0, 3, (const uint8_t *)path, 10, pipefd[0], memfd, pipefd[1]), 0);
  int before = dup(0);
  close(before); /* the next free fd number */
  CHECK_EQ(roam_shm_bootstrap_response_recv_unix(sv[1], payload, 4, &info, &db, &seg, &ctl), -2);
  CHECK_EQ(db, -1);
  CHECK(!fd_is_open(before)); /* nothing leaked into the lowest free slot */

  /* NULL arguments. */
  CHECK_EQ(roam_shm_bootstrap_response_recv_unix(sv[1], payload, sizeof payload, NULL, &db, &seg, &ctl), -1);
  CHECK_EQ(roam_shm_bootstrap_response_recv_unix(sv[1], payload, sizeof payload, &info, NULL, &seg, &ctl), -1);
  CHECK_EQ(roam_shm_bootstrap_response_recv_unix(sv[1], NULL, 10, &info, &db, &seg, &ctl), -1);
  CHECK_EQ(roam_shm_bootstrap_response_recv_unix(-1, payload, 10, &info, &db, &seg, &ctl), -1);

  /* A malformed frame (wrong magic) with fds attached: -1, fds closed. */
  uint8_t junk[11] = "XSP0\0\1\0\0\0\0\0";
  CHECK_EQ(write(sv[0], junk, sizeof junk), (long)sizeof junk);
  CHECK_EQ(roam_shm_bootstrap_response_recv_unix(sv[1], payload, sizeof payload, &info, &db, &seg, &ctl), -1);
  CHECK(strstr(roam_last_error_message(), "magic") != NULL);

  /* A truncated frame followed by EOF: -1. */
  CHECK_EQ(write(sv[0], "RSP0\0", 5), 5);
  close(sv[0]);
  CHECK_EQ(roam_shm_bootstrap_response_recv_unix(sv[1], payload, sizeof payload, &info, &db, &seg, &ctl), -1);
  /* EOF: -1. */
  CHECK_EQ(roam_shm_bootstrap_response_recv_unix(sv[1], payload, sizeof payload, &info, &db, &seg, &ctl), -1);
  /* Sending on a dead peer: -1, no SIGPIPE. */
  int sv2[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2) == 0);
  close(sv2[1]);
  CHECK_EQ(roam_shm_bootstrap_response_send_unix(sv2[0], 1, 0, NULL, 0, -1, -1, -1), -1);
  close(sv2[0]);
  close(sv[1]);
  close(pipefd[0]);
  close(pipefd[1]);
  close(memfd);
}

void suite_bootstrap(void) {
  fprintf(stderr, "bootstrap\n");
  RUN(bootstrap_header_sizes);
  RUN(bootstrap_request_round_trip);
  RUN(bootstrap_request_errors);
  RUN(bootstrap_response_round_trip);
  RUN(bootstrap_response_errors);
  RUN(bootstrap_send_recv_with_fds);
}
