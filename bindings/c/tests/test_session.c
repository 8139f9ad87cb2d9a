/* The session API: host and guest in one process (the host runs in a thread),
 * real segment, real sockets. Covers configuration errors, every host and guest
 * call, copy and zero-copy sends of inline/slot/mmap sizes, held views, timeouts,
 * reservations misuse, disconnect (evicted), shutdown (goodbye), use after close. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* ---- helpers ---- */

static void fill(uint8_t *p, size_t len, uint32_t seed) {
  uint32_t x = seed * 2654435761u + (uint32_t)len;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (uint8_t)x;
  }
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

/* ---- configuration and host-only calls ---- */

static void session_config_errors(void) {
  RoamSegmentConfig c;
  CHECK_OK(roam_segment_config_default(&c));
  CHECK_EQ(c.max_guests, 8);
  CHECK_EQ(c.num_classes, 3);
  CHECK(c.classes != NULL);
  RoamHost *h = (RoamHost *)(uintptr_t)1;
  CHECK_STATUS(roam_host_create(NULL, NULL, &h), ROAM_ERR_NULL_POINTER);
  CHECK(h == NULL); /* out-param cleared on failure */
  CHECK_STATUS(roam_host_create(&c, NULL, NULL), ROAM_ERR_NULL_POINTER);
  RoamSegmentConfig bad = c;
  bad.max_guests = 0;
  CHECK_STATUS(roam_host_create(&bad, NULL, &h), ROAM_ERR_INVALID_CONFIG);
  CHECK(strstr(roam_last_error_message(), "max_guests") != NULL);
  bad = c;
  bad.bipbuf_capacity = 1000; /* not a multiple of 64 */
  CHECK_STATUS(roam_host_create(&bad, NULL, &h), ROAM_ERR_INVALID_CONFIG);
  bad = c;
  bad.classes = NULL;
  CHECK_STATUS(roam_host_create(&bad, NULL, &h), ROAM_ERR_NULL_POINTER);
  bad.num_classes = 0;
  CHECK_STATUS(roam_host_create(&bad, NULL, &h), ROAM_ERR_INVALID_CONFIG);
  bad = c;
  bad.inline_threshold = 60000; /* inline frames larger than half the ring */
  CHECK_STATUS(roam_host_create(&bad, NULL, &h), ROAM_ERR_INVALID_CONFIG);
  RoamSizeClass unsorted[2] = {{4096, 4}, {1024, 4}};
  bad = c;
  bad.classes = unsorted;
  bad.num_classes = 2;
  CHECK_STATUS(roam_host_create(&bad, NULL, &h), ROAM_ERR_INVALID_CONFIG);
  CHECK_STATUS(roam_host_create(&c, "", &h), ROAM_ERR_INVALID_ARGUMENT);
  /* A segment file that already exists is refused. */
  char path[128];
  unique_name(path, sizeof path, "/dev/shm/roam-c-test-exists");
  FILE *f = fopen(path, "w");
  REQUIRE(f != NULL);
  fclose(f);
  int s = roam_host_create(&c, path, &h);
  CHECK(s == ROAM_ERR_MAPPING || s == ROAM_ERR_IO);
  CHECK(h == NULL);
  unlink(path);
}

static void session_host_calls_without_guests(void) {
  RoamSegmentConfig c;
  CHECK_OK(roam_segment_config_default(&c));
  char path[128], sock[128];
  unique_name(path, sizeof path, "/dev/shm/roam-c-test-seg");
  unique_name(sock, sizeof sock, "/tmp/roam-c-test-sock");
  RoamHost *h = NULL;
  CHECK_OK(roam_host_create(&c, path, &h));
  REQUIRE(h != NULL);
  struct stat st;
  CHECK(stat(path, &st) == 0); /* file-backed */
  uint8_t peer = 0;
  CHECK_STATUS(roam_host_accept(h, &peer), ROAM_ERR_INVALID_STATE); /* not listening */
  CHECK_STATUS(roam_host_listen(h, NULL), ROAM_ERR_NULL_POINTER);
  CHECK_STATUS(roam_host_listen(NULL, sock), ROAM_ERR_NULL_POINTER);
  CHECK_OK(roam_host_listen(h, sock));
  CHECK_STATUS(roam_host_accept(h, &peer), ROAM_ERR_WOULD_BLOCK);
  CHECK_STATUS(roam_host_accept(h, NULL), ROAM_ERR_NULL_POINTER);
  char buf[256];
  uintptr_t n = 0;
  CHECK_STATUS(roam_host_segment_path(h, buf, 4, &n), ROAM_ERR_BUFFER_TOO_SMALL);
  CHECK_EQ(n, strlen(path));
  CHECK_STATUS(roam_host_segment_path(h, NULL, 0, &n), ROAM_ERR_BUFFER_TOO_SMALL);
  CHECK_STATUS(roam_host_segment_path(h, buf, sizeof buf, NULL), ROAM_ERR_NULL_POINTER);
  CHECK_OK(roam_host_segment_path(h, buf, sizeof buf, &n));
  CHECK(strcmp(buf, path) == 0);
  RoamHostEvent ev[4];
  uintptr_t count = 99;
  CHECK_STATUS(roam_host_poll(h, 0, ev, 0, &count), ROAM_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(roam_host_poll(h, 0, NULL, 4, &count), ROAM_ERR_NULL_POINTER);
  CHECK_STATUS(roam_host_poll(h, 0, ev, 4, NULL), ROAM_ERR_NULL_POINTER);
  double t0 = now_s();
  CHECK_OK(roam_host_poll(h, 30, ev, 4, &count));
  CHECK_EQ(count, 0);
  CHECK(now_s() - t0 >= 0.025); /* it waited */
  uint8_t data[4] = {1, 2, 3, 4};
  RoamMessage m;
  uint8_t *out = NULL;
  CHECK_STATUS(roam_host_try_send(h, 1, data, 4), ROAM_ERR_UNKNOWN_PEER);
  CHECK_STATUS(roam_host_send(h, 0, data, 4, 10), ROAM_ERR_UNKNOWN_PEER);
  CHECK_STATUS(roam_host_try_send(h, 1, NULL, 4), ROAM_ERR_NULL_POINTER);
  CHECK_STATUS(roam_host_reserve(h, 1, 4, &out), ROAM_ERR_UNKNOWN_PEER);
  CHECK_STATUS(roam_host_reserve(h, 1, 4, NULL), ROAM_ERR_NULL_POINTER);
  CHECK_STATUS(roam_host_commit(h, 1), ROAM_ERR_NO_RESERVATION);
  CHECK_STATUS(roam_host_cancel(h, 1), ROAM_ERR_NO_RESERVATION);
  CHECK_STATUS(roam_host_try_recv(h, 1, &m), ROAM_ERR_UNKNOWN_PEER);
  CHECK_STATUS(roam_host_try_recv(h, 1, NULL), ROAM_ERR_NULL_POINTER);
  CHECK_STATUS(roam_host_release(h, 1), ROAM_ERR_UNKNOWN_PEER);
  CHECK_STATUS(roam_host_disconnect(h, 1), ROAM_ERR_UNKNOWN_PEER);
  CHECK_STATUS(roam_host_disconnect(h, 0), ROAM_ERR_UNKNOWN_PEER);
  CHECK_STATUS(roam_host_shutdown(NULL), ROAM_ERR_NULL_POINTER);
  CHECK_OK(roam_host_shutdown(h));
  CHECK_OK(roam_host_shutdown(h)); /* idempotent */
  CHECK(access(sock, F_OK) != 0);  /* socket removed */
  roam_host_destroy(h);
  roam_host_destroy(NULL);
  CHECK(access(path, F_OK) != 0); /* segment file removed */
}

/* ---- a host thread that echoes and obeys a few commands ---- */

typedef struct {
  RoamHost *host;
  atomic_int stop;
  atomic_int connected, gone, errors, pushed;
  atomic_int last_gone_reason;
} HostThread;

static void host_check(HostThread *t, int ok, const char *what) {
  if (!ok) {
    const char *m = roam_last_error_message();
    fprintf(stderr, "    host thread: %s failed (%s)\n", what, m ? m : "");
    atomic_fetch_add(&t->errors, 1);
  }
}

static void host_push(HostThread *t, uint8_t peer) {
  RoamHost *h = t->host;
  /* try_send, send, and a zero-copy reserve/commit. */
  host_check(t, roam_host_try_send(h, peer, (const uint8_t *)"p0", 2) == ROAM_OK, "try_send p0");
  host_check(t, roam_host_send(h, peer, (const uint8_t *)"p1", 2, 1000) == ROAM_OK, "send p1");
  uint8_t *buf = NULL;
  host_check(t, roam_host_reserve(h, peer, 2, &buf) == ROAM_OK && buf != NULL, "reserve");
  /* Misuse while reserved: a second reservation and a poll are refused. */
  uint8_t *buf2 = NULL;
  host_check(t, roam_host_reserve(h, peer, 2, &buf2) == ROAM_ERR_RESERVATION_PENDING, "double reserve");
  host_check(t, buf2 == NULL, "out_buf cleared");
  RoamHostEvent ev[1];
  uintptr_t n;
  host_check(t, roam_host_poll(h, 0, ev, 1, &n) == ROAM_ERR_RESERVATION_PENDING, "poll while reserved");
  memcpy(buf, "p2", 2);
  host_check(t, roam_host_commit(h, peer) == ROAM_OK, "commit p2");
  /* A cancelled reservation sends nothing. */
  host_check(t, roam_host_reserve(h, peer, 100000, &buf) == ROAM_OK, "reserve slot");
  host_check(t, roam_host_cancel(h, peer) == ROAM_OK, "cancel");
  atomic_fetch_add(&t->pushed, 1);
}

/* Echo everything `peer` sent, zero-copy from the received view into a reservation. */
static void host_serve(HostThread *t, uint8_t peer) {
  RoamHost *h = t->host;
  for (;;) {
    RoamMessage m, again;
    int s = roam_host_try_recv(h, peer, &m);
    if (s == ROAM_ERR_WOULD_BLOCK || s == ROAM_ERR_UNKNOWN_PEER) return;
    if (s != ROAM_OK) {
      host_check(t, 0, "try_recv");
      return;
    }
    /* A held message is returned again until released. */
    host_check(t, roam_host_try_recv(h, peer, &again) == ROAM_OK && again.data == m.data &&
                      again.len == m.len, "held view");
    if (m.len == 4 && memcmp(m.data, "push", 4) == 0) {
      roam_host_release(h, peer);
      host_push(t, peer);
      continue;
    }
    if (m.len == 4 && memcmp(m.data, "kick", 4) == 0) {
      roam_host_release(h, peer);
      host_check(t, roam_host_disconnect(h, peer) == ROAM_OK, "disconnect");
      return;
    }
    if (m.len == 8 && memcmp(m.data, "shutdown", 8) == 0) {
      roam_host_release(h, peer);
      host_check(t, roam_host_shutdown(h) == ROAM_OK, "shutdown");
      continue;
    }
    uint8_t *buf = NULL;
    s = roam_host_reserve(h, peer, m.len, &buf);
    if (s == ROAM_ERR_FULL || s == ROAM_ERR_POOL_EXHAUSTED) return; /* keep it held */
    if (s != ROAM_OK) {
      host_check(t, 0, "echo reserve");
      roam_host_release(h, peer);
      return;
    }
    memcpy(buf, m.data, m.len);
    host_check(t, roam_host_commit(h, peer) == ROAM_OK, "echo commit");
    host_check(t, roam_host_release(h, peer) == ROAM_OK, "release");
  }
}

static void *host_main(void *arg) {
  HostThread *t = arg;
  while (!atomic_load(&t->stop)) {
    RoamHostEvent ev[2]; /* small on purpose: exercises the queue */
    uintptr_t n = 0;
    if (roam_host_poll(t->host, 10, ev, 2, &n) != ROAM_OK) {
      host_check(t, 0, "poll");
      break;
    }
    for (uintptr_t i = 0; i < n; i++) {
      switch (ev[i].kind) {
        case ROAM_EVENT_CONNECTED: atomic_fetch_add(&t->connected, 1); break;
        case ROAM_EVENT_READABLE: host_serve(t, (uint8_t)ev[i].peer_id); break;
        case ROAM_EVENT_PEER_GONE:
          atomic_store(&t->last_gone_reason, (int)ev[i].reason);
          atomic_fetch_add(&t->gone, 1);
          break;
        default: host_check(t, 0, "unknown event kind");
      }
    }
  }
  return NULL;
}

static HostThread g_ht;
static pthread_t g_thread;
static char g_sock[128];

static int start_host(void) {
  RoamSegmentConfig c;
  if (roam_segment_config_default(&c) != ROAM_OK) return 0;
  memset(&g_ht, 0, sizeof g_ht);
  unique_name(g_sock, sizeof g_sock, "/tmp/roam-c-test-echo");
  if (roam_host_create(&c, NULL, &g_ht.host) != ROAM_OK) return 0; /* memfd */
  if (roam_host_listen(g_ht.host, g_sock) != ROAM_OK) return 0;
  return pthread_create(&g_thread, NULL, host_main, &g_ht) == 0;
}

static void stop_host(void) {
  atomic_store(&g_ht.stop, 1);
  pthread_join(g_thread, NULL);
  roam_host_destroy(g_ht.host);
  g_ht.host = NULL;
}

static int wait_for(atomic_int *v, int want, double secs) {
  double end = now_s() + secs;
  while (atomic_load(v) < want && now_s() < end) usleep(1000);
  return atomic_load(v) >= want;
}

static uint32_t expected_kind(size_t len) {
  if (len <= 256) return ROAM_MESSAGE_INLINE;
  if (len <= 256 * 1024 - 4) return ROAM_MESSAGE_SLOT;
  return ROAM_MESSAGE_MMAP;
}

static void session_guest_echo(void) {
  RoamGuest *g = (RoamGuest *)(uintptr_t)1;
  CHECK_STATUS(roam_guest_connect(NULL, 0, &g), ROAM_ERR_NULL_POINTER);
  CHECK(g == NULL);
  CHECK_STATUS(roam_guest_connect("/nonexistent/roam.sock", 100, &g), ROAM_ERR_IO);
  CHECK_STATUS(roam_guest_connect(g_sock, 0, NULL), ROAM_ERR_NULL_POINTER);
  REQUIRE(roam_guest_connect(g_sock, 5000, &g) == ROAM_OK);
  CHECK(wait_for(&g_ht.connected, 1, 5));
  uint8_t peer = 0;
  CHECK_OK(roam_guest_peer_id(g, &peer));
  CHECK(peer >= 1);
  CHECK_STATUS(roam_guest_peer_id(g, NULL), ROAM_ERR_NULL_POINTER);
  CHECK_OK(roam_guest_check_host(g));
  RoamMessage m;
  CHECK_STATUS(roam_guest_try_recv(g, &m), ROAM_ERR_WOULD_BLOCK);
  CHECK_STATUS(roam_guest_try_recv(g, NULL), ROAM_ERR_NULL_POINTER);
  CHECK_STATUS(roam_guest_recv(g, 20, &m), ROAM_ERR_TIMEOUT);
  CHECK_OK(roam_guest_release(g)); /* nothing held: fine */

  static const size_t sizes[] = {0, 1, 100, 256, 257, 1000, 1020, 1021, 5000, 16380, 16381,
                                 100000, 262140, 262141, 300000, 2u << 20};
  static uint8_t want[2u << 20];
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t len = sizes[i];
    fill(want, len, (uint32_t)i);
    switch (i % 3) {
      case 0: CHECK_OK(roam_guest_send(g, want, len, 5000)); break;
      case 1: {
        int s;
        double end = now_s() + 5;
        while ((s = roam_guest_try_send(g, want, len)) == ROAM_ERR_FULL && now_s() < end)
          roam_guest_wait(g, 10);
        CHECK_OK(s);
        break;
      }
      default: {
        uint8_t *buf = NULL;
        CHECK_OK(roam_guest_reserve(g, len, &buf));
        REQUIRE(buf != NULL);
        memcpy(buf, want, len);
        CHECK_OK(roam_guest_commit(g));
      }
    }
    REQUIRE(roam_guest_recv(g, 5000, &m) == ROAM_OK);
    CHECK_EQ(m.len, len);
    CHECK(m.data != NULL);
    CHECK(m.len == len && memcmp(m.data, want, len) == 0);
    CHECK_EQ(m.kind, expected_kind(len));
    RoamMessage again;
    CHECK_OK(roam_guest_try_recv(g, &again)); /* held: same view */
    CHECK(again.data == m.data);
    CHECK_OK(roam_guest_release(g));
  }

  /* Reservation misuse. */
  uint8_t *buf = NULL, *buf2 = NULL;
  CHECK_STATUS(roam_guest_commit(g), ROAM_ERR_NO_RESERVATION);
  CHECK_STATUS(roam_guest_cancel(g), ROAM_ERR_NO_RESERVATION);
  CHECK_OK(roam_guest_reserve(g, 10, &buf));
  CHECK_STATUS(roam_guest_reserve(g, 10, &buf2), ROAM_ERR_RESERVATION_PENDING);
  CHECK(buf2 == NULL);
  CHECK_STATUS(roam_guest_try_send(g, want, 10), ROAM_ERR_RESERVATION_PENDING);
  CHECK_OK(roam_guest_cancel(g));
  CHECK_STATUS(roam_guest_reserve(g, 10, NULL), ROAM_ERR_NULL_POINTER);
  /* Size and argument errors. */
  CHECK_STATUS(roam_guest_try_send(g, want, (16u << 20) + 1), ROAM_ERR_TOO_LARGE);
  CHECK_STATUS(roam_guest_reserve(g, (16u << 20) + 1, &buf), ROAM_ERR_TOO_LARGE);
  CHECK_STATUS(roam_guest_try_send(g, NULL, 3), ROAM_ERR_NULL_POINTER);
  CHECK_OK(roam_guest_try_send(g, NULL, 0)); /* empty message, NULL allowed */
  CHECK_OK(roam_guest_recv(g, 5000, &m));
  CHECK_EQ(m.len, 0);
  CHECK_OK(roam_guest_release(g));

  /* The host pushes three messages on request (try_send, send, reserve/commit). */
  CHECK_OK(roam_guest_send(g, (const uint8_t *)"push", 4, 1000));
  for (int i = 0; i < 3; i++) {
    char exp[3] = {'p', (char)('0' + i), 0};
    REQUIRE(roam_guest_recv(g, 5000, &m) == ROAM_OK);
    CHECK(m.len == 2 && memcmp(m.data, exp, 2) == 0);
    CHECK_OK(roam_guest_release(g));
  }
  CHECK(wait_for(&g_ht.pushed, 1, 5));
  CHECK_STATUS(roam_guest_try_recv(g, &m), ROAM_ERR_WOULD_BLOCK); /* the cancelled one never came */

  /* Drain pending doorbell rings, then a wait times out. */
  int s = ROAM_OK;
  for (int i = 0; i < 100 && s == ROAM_OK; i++) s = roam_guest_wait(g, 0);
  CHECK_EQ(s, ROAM_ERR_TIMEOUT);

  /* Close: later calls are refused; the host sees the guest go. */
  CHECK_OK(roam_guest_close(g));
  CHECK_OK(roam_guest_close(g)); /* idempotent */
  CHECK_STATUS(roam_guest_try_send(g, want, 1), ROAM_ERR_INVALID_STATE);
  CHECK_STATUS(roam_guest_recv(g, 0, &m), ROAM_ERR_INVALID_STATE);
  CHECK_STATUS(roam_guest_wait(g, 0), ROAM_ERR_INVALID_STATE);
  CHECK_STATUS(roam_guest_wait_for_space(g, 0), ROAM_ERR_INVALID_STATE);
  CHECK_OK(roam_guest_peer_id(g, &peer));
  roam_guest_destroy(g);
  roam_guest_destroy(NULL);
  CHECK(wait_for(&g_ht.gone, 1, 5));
  CHECK(atomic_load(&g_ht.last_gone_reason) == ROAM_GONE_GOODBYE ||
        atomic_load(&g_ht.last_gone_reason) == ROAM_GONE_DOORBELL_CLOSED);
  CHECK_EQ(atomic_load(&g_ht.errors), 0);
}

static void session_guest_evicted_by_disconnect(void) {
  RoamGuest *g = NULL;
  REQUIRE(roam_guest_connect(g_sock, 5000, &g) == ROAM_OK);
  CHECK_OK(roam_guest_send(g, (const uint8_t *)"kick", 4, 1000));
  int s = ROAM_OK;
  double end = now_s() + 5;
  while ((s = roam_guest_check_host(g)) == ROAM_OK && now_s() < end) usleep(1000);
  CHECK_EQ(s, ROAM_ERR_EVICTED);
  RoamMessage m;
  s = roam_guest_recv(g, 1000, &m);
  CHECK(s == ROAM_ERR_EVICTED || s == ROAM_ERR_PEER_GONE);
  CHECK_STATUS(roam_guest_try_send(g, (const uint8_t *)"x", 1), ROAM_ERR_EVICTED);
  roam_guest_destroy(g);
  CHECK_EQ(atomic_load(&g_ht.errors), 0);
}

static void session_guest_sees_host_goodbye(void) {
  RoamGuest *g = NULL;
  REQUIRE(roam_guest_connect(g_sock, 5000, &g) == ROAM_OK);
  CHECK_OK(roam_guest_send(g, (const uint8_t *)"shutdown", 8, 1000));
  int s = ROAM_OK;
  double end = now_s() + 5;
  while ((s = roam_guest_check_host(g)) == ROAM_OK && now_s() < end) usleep(1000);
  CHECK_EQ(s, ROAM_ERR_HOST_GOODBYE);
  CHECK_STATUS(roam_guest_try_send(g, (const uint8_t *)"x", 1), ROAM_ERR_HOST_GOODBYE);
  RoamMessage m;
  CHECK_STATUS(roam_guest_recv(g, 100, &m), ROAM_ERR_HOST_GOODBYE);
  /* The listener is gone: new guests cannot connect. */
  RoamGuest *g2 = NULL;
  CHECK_STATUS(roam_guest_connect(g_sock, 500, &g2), ROAM_ERR_IO);
  roam_guest_destroy(g);
  CHECK_EQ(atomic_load(&g_ht.errors), 0);
}

static void session_guest_sees_host_death(void) {
  /* A second host, destroyed while the guest waits: PEER_GONE, never SIGPIPE. */
  REQUIRE(start_host());
  RoamGuest *g = NULL;
  REQUIRE(roam_guest_connect(g_sock, 5000, &g) == ROAM_OK);
  stop_host();
  RoamMessage m;
  int s = roam_guest_recv(g, 2000, &m);
  CHECK(s == ROAM_ERR_PEER_GONE || s == ROAM_ERR_HOST_GOODBYE);
  s = roam_guest_send(g, (const uint8_t *)"x", 1, 100);
  CHECK(s == ROAM_ERR_PEER_GONE || s == ROAM_ERR_HOST_GOODBYE);
  roam_guest_destroy(g);
}

static void session_blocked_sender_that_never_reads_sees_host_death(void) {
  /* The echo host fills our receive ring (we never read) and then stops taking
   * from our send ring: room never comes. Then the host dies. */
  REQUIRE(start_host());
  RoamGuest *g = NULL;
  REQUIRE(roam_guest_connect(g_sock, 5000, &g) == ROAM_OK);
  uint8_t payload[100];
  fill(payload, sizeof payload, 7);
  int s = ROAM_OK, sent = 0;
  double full_since = 0, end = now_s() + 10;
  while (now_s() < end) {
    s = roam_guest_try_send(g, payload, sizeof payload);
    if (s == ROAM_OK) {
      sent++;
      full_since = 0;
    } else if (s == ROAM_ERR_FULL) {
      if (full_since == 0) full_since = now_s();
      if (now_s() - full_since > 0.2) break; /* full for good */
      usleep(1000);
    } else {
      break;
    }
  }
  CHECK_EQ(s, ROAM_ERR_FULL);
  CHECK(sent > 0);
  stop_host();
  /* roam_guest_wait returns at once while echoes wait to be read, so a sender
   * that loops on it never learns of the death; wait_for_space does (after at
   * most the rings already queued on the doorbell). */
  for (int i = 0; i < 3; i++) CHECK_OK(roam_guest_wait(g, 1000));
  s = ROAM_OK;
  for (int i = 0; i < 100 && s == ROAM_OK; i++) s = roam_guest_wait_for_space(g, 2000);
  CHECK_EQ(s, ROAM_ERR_PEER_GONE);
  s = roam_guest_send(g, payload, sizeof payload, 2000);
  CHECK(s == ROAM_ERR_PEER_GONE || s == ROAM_ERR_HOST_GOODBYE);
  CHECK_STATUS(roam_guest_wait_for_space(NULL, 0), ROAM_ERR_NULL_POINTER);
  roam_guest_destroy(g);
}

void suite_session(void) {
  fprintf(stderr, "session\n");
  RUN(session_config_errors);
  RUN(session_host_calls_without_guests);
  if (!start_host()) {
    h_fail(__FILE__, __LINE__, "could not start the host thread: %s", roam_last_error_message());
    h_failed++;
    return;
  }
  RUN(session_guest_echo);
  RUN(session_guest_evicted_by_disconnect);
  RUN(session_guest_sees_host_goodbye);
  stop_host();
  RUN(session_guest_sees_host_death);
  RUN(session_blocked_sender_that_never_reads_sees_host_death);
}
