/* roam_mmap_*: control messages with real memfds, resolve codes, malformed
 * datagrams (wrong length, missing fd, file too small), sticky failure. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static int memfd_with(const char *text, size_t size) {
  int fd = memfd_create("roam-mmap-test", 0);
  if (fd < 0) return -1;
  if (ftruncate(fd, (off_t)size) != 0) return -1;
  if (pwrite(fd, text, strlen(text), 0) != (ssize_t)strlen(text)) return -1;
  return fd;
}

static void mmap_attach_and_resolve(void) {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  RoamMmapAttachments *a = roam_mmap_attachments_create(sv[1]);
  REQUIRE(a != NULL);
  CHECK_EQ(roam_mmap_attachments_drain_control(a), 0); /* nothing queued */
  int fd = memfd_with("hello mmap", 8192);
  REQUIRE(fd >= 0);
  CHECK_EQ(roam_mmap_control_send(sv[0], fd, 4, 0, 8192), 0);
  int fd2 = memfd_with("second", 4096);
  CHECK_EQ(roam_mmap_control_send(sv[0], fd2, 5, 1, 4096), 0);
  close(fd); /* the receiver has its own reference */
  close(fd2);
  CHECK_EQ(roam_mmap_attachments_drain_control(a), 2);
  const uint8_t *p = NULL;
  CHECK_EQ(roam_mmap_attachments_resolve_ptr(a, 4, 0, 0, 10, &p), 0);
  REQUIRE(p != NULL);
  CHECK(memcmp(p, "hello mmap", 10) == 0);
  CHECK_EQ(roam_mmap_attachments_resolve_ptr(a, 5, 1, 0, 6, &p), 0);
  CHECK(memcmp(p, "second", 6) == 0);
  CHECK_EQ(roam_mmap_attachments_resolve_ptr(a, 4, 0, 8192, 0, &p), 0); /* empty at end */
  /* roam's codes. */
  CHECK_EQ(roam_mmap_attachments_resolve_ptr(a, 9, 0, 0, 1, &p), -2);       /* unknown id */
  CHECK_EQ(roam_mmap_attachments_resolve_ptr(a, 4, 1, 0, 1, &p), -2);       /* unknown gen */
  CHECK_EQ(roam_mmap_attachments_resolve_ptr(a, 4, 0, UINT64_MAX, 2, &p), -3); /* overflow */
  CHECK_EQ(roam_mmap_attachments_resolve_ptr(a, 4, 0, 8000, 193, &p), -4);  /* out of bounds */
  CHECK_EQ(roam_mmap_attachments_resolve_ptr(NULL, 4, 0, 0, 1, &p), -1);
  CHECK_EQ(roam_mmap_attachments_resolve_ptr(a, 4, 0, 0, 1, NULL), -1);
  /* The caller keeps its fd: closing it does not affect the registry. */
  close(sv[1]);
  CHECK_EQ(roam_mmap_attachments_drain_control(a), 0);
  roam_mmap_attachments_destroy(a);
  roam_mmap_attachments_destroy(NULL);
  close(sv[0]);
}

static void mmap_rejects_bad_fds(void) {
  CHECK(roam_mmap_attachments_create(-1) == NULL);
  int pipefd[2];
  REQUIRE(pipe(pipefd) == 0);
  CHECK(roam_mmap_attachments_create(pipefd[0]) == NULL); /* not a socket */
  CHECK_EQ(roam_mmap_control_send(-1, pipefd[0], 0, 0, 1), -1);
  CHECK_EQ(roam_mmap_control_send(pipefd[1], -1, 0, 0, 1), -1);
  CHECK_EQ(roam_mmap_control_send(pipefd[1], pipefd[0], 0, 0, 1), -1); /* not a socket */
  CHECK_EQ(roam_mmap_attachments_drain_control(NULL), -1);
  close(pipefd[0]);
  close(pipefd[1]);
}

static void mmap_malformed_messages_are_terminal(void) {
  /* A datagram of the wrong length. */
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  RoamMmapAttachments *a = roam_mmap_attachments_create(sv[1]);
  REQUIRE(a != NULL);
  CHECK_EQ(send(sv[0], "short", 5, 0), 5);
  CHECK_EQ(roam_mmap_attachments_drain_control(a), -1);
  /* Sticky: even a good message is not accepted afterwards. */
  int fd = memfd_with("x", 4096);
  CHECK_EQ(roam_mmap_control_send(sv[0], fd, 1, 0, 4096), 0);
  CHECK_EQ(roam_mmap_attachments_drain_control(a), -1);
  roam_mmap_attachments_destroy(a);
  close(sv[0]);
  close(sv[1]);

  /* A well-sized message without an fd. */
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  a = roam_mmap_attachments_create(sv[1]);
  REQUIRE(a != NULL);
  uint8_t msg[16] = {0};
  msg[8] = 1;
  CHECK_EQ(send(sv[0], msg, 16, 0), 16);
  CHECK_EQ(roam_mmap_attachments_drain_control(a), -1);
  CHECK(strstr(roam_last_error_message(), "fd") != NULL);
  roam_mmap_attachments_destroy(a);
  close(sv[0]);
  close(sv[1]);

  /* A mapping longer than its file. */
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  a = roam_mmap_attachments_create(sv[1]);
  REQUIRE(a != NULL);
  CHECK_EQ(roam_mmap_control_send(sv[0], fd, 2, 0, 1 << 20), 0);
  CHECK_EQ(roam_mmap_attachments_drain_control(a), -1);
  const uint8_t *p;
  CHECK_EQ(roam_mmap_attachments_resolve_ptr(a, 2, 0, 0, 1, &p), -2);
  roam_mmap_attachments_destroy(a);

  /* The same (id, generation) twice. */
  close(sv[1]);
  close(sv[0]);
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  a = roam_mmap_attachments_create(sv[1]);
  REQUIRE(a != NULL);
  CHECK_EQ(roam_mmap_control_send(sv[0], fd, 3, 0, 4096), 0);
  CHECK_EQ(roam_mmap_control_send(sv[0], fd, 3, 0, 4096), 0);
  CHECK_EQ(roam_mmap_attachments_drain_control(a), -1);
  roam_mmap_attachments_destroy(a);
  close(sv[0]);
  close(sv[1]);
  close(fd);
}

void suite_mmap(void) {
  fprintf(stderr, "mmap\n");
  RUN(mmap_attach_and_resolve);
  RUN(mmap_rejects_bad_fds);
  RUN(mmap_malformed_messages_are_terminal);
}
