/* echo_guest: connect to a roam-shm host that echoes (e.g. `roam-shm host --echo`
 * or examples/echo_host.c), send COUNT messages of mixed sizes and check that each
 * echo comes back byte for byte.
 *
 *   echo_guest SOCKET [COUNT]
 *
 * Sizes are mixed so every path is used: small payloads travel inline in the ring,
 * medium ones in a slot of the shared pool, large ones in a separately mapped
 * region. Half the sends copy (roam_guest_try_send), half write in place
 * (roam_guest_reserve + roam_guest_commit). Received messages are zero-copy views,
 * released after checking.
 *
 * Build: cc -std=c11 echo_guest.c $(pkg-config --cflags --libs roam_shm) */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roam_shm.h"

#define WINDOW 16 /* messages in flight at most */

/* Deterministic payload bytes for message `seq` of length `len`. */
static void fill(uint8_t *p, size_t len, uint64_t seq) {
  uint64_t x = seq * 0x9E3779B97F4A7C15ull + len + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (uint8_t)(x >> 24);
  }
}

/* Mixed sizes: mostly small, some medium, a few large. */
static size_t size_of_msg(uint64_t seq) {
  uint64_t r = (seq * 6364136223846793005ull + 1442695040888963407ull) >> 33;
  switch (r % 100) {
    case 0: case 1: case 2: return 262141 + (size_t)(r % 400000); /* mapped region */
    default:
      if (r % 100 < 20) return 257 + (size_t)(r % 200000); /* slot */
      return (size_t)(r % 257);                             /* inline */
  }
}

static int fail(const char *what, int status) {
  const char *detail = roam_last_error_message();
  fprintf(stderr, "echo_guest: %s: %s (%s)\n", what, roam_status_str(status),
          detail ? detail : "no details");
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SOCKET [COUNT]\n", argv[0]);
    return 2;
  }
  const char *socket_path = argv[1];
  uint64_t count = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000;
  signal(SIGPIPE, SIG_IGN); /* a dead host must be an error code, not a signal */

  RoamGuest *guest = NULL;
  int s = roam_guest_connect(socket_path, 5000, &guest);
  if (s != ROAM_OK) return fail("connect", s);
  uint8_t peer = 0;
  roam_guest_peer_id(guest, &peer);

  uint8_t *scratch = malloc(1u << 20);
  uint64_t sent = 0, received = 0, bytes = 0, kinds[4] = {0};
  int rc = 0;
  while (received < count && rc == 0) {
    int progress = 0;
    /* Send while the window allows and the ring has room. */
    while (sent < count && sent - received < WINDOW) {
      size_t len = size_of_msg(sent);
      if (sent % 2 == 0) {
        fill(scratch, len, sent);
        s = roam_guest_try_send(guest, scratch, len);
      } else {
        uint8_t *buf = NULL;
        s = roam_guest_reserve(guest, len, &buf);
        if (s == ROAM_OK) {
          fill(buf, len, sent); /* written in place, in shared memory */
          s = roam_guest_commit(guest);
        }
      }
      if (s == ROAM_ERR_FULL || s == ROAM_ERR_POOL_EXHAUSTED) break; /* backpressure */
      if (s != ROAM_OK) { rc = fail("send", s); break; }
      sent++;
      bytes += len;
      progress = 1;
    }
    /* Receive every echo that is there. */
    for (;;) {
      RoamMessage m;
      s = roam_guest_try_recv(guest, &m);
      if (s == ROAM_ERR_WOULD_BLOCK) break;
      if (s != ROAM_OK) { rc = fail("receive", s); break; }
      size_t len = size_of_msg(received);
      fill(scratch, len, received);
      if (m.len != len || memcmp(m.data, scratch, len) != 0) {
        fprintf(stderr, "echo_guest: echo #%llu differs (%zu bytes, expected %zu)\n",
                (unsigned long long)received, m.len, len);
        rc = 1;
        break;
      }
      if (m.kind < 4) kinds[m.kind]++;
      roam_guest_release(guest);
      received++;
      progress = 1;
    }
    if (!progress && rc == 0) {
      s = roam_guest_wait(guest, 1000); /* the host rings when it echoes or frees room */
      if (s != ROAM_OK && s != ROAM_ERR_TIMEOUT) rc = fail("wait", s);
    }
  }
  if (rc == 0)
    printf("echo_guest: peer %u: %llu messages echoed byte-exact (inline %llu, slot %llu, "
           "mmap %llu), %llu bytes each way\n",
           peer, (unsigned long long)received, (unsigned long long)kinds[ROAM_MESSAGE_INLINE],
           (unsigned long long)kinds[ROAM_MESSAGE_SLOT], (unsigned long long)kinds[ROAM_MESSAGE_MMAP],
           (unsigned long long)bytes);
  free(scratch);
  roam_guest_close(guest);
  roam_guest_destroy(guest);
  return rc;
}
