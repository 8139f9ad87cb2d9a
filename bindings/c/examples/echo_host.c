/* echo_host: host a roam-shm segment and echo every message back to its sender,
 * zero-copy from the received view into a send reservation.
 *
 *   echo_host SOCKET [--segment /dev/shm/NAME] [--guests N]
 *
 * Without --segment the segment is an anonymous memfd (roam-shm guests only; roam
 * 7.x guests need a file). Exits after N guests (default 1) have come and gone, or on
 * SIGINT/SIGTERM.
 *
 * Build: cc -std=c11 echo_host.c $(pkg-config --cflags --libs roam_shm) */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roam_shm.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* Echo what `peer` sent. A message whose echo does not fit yet stays held and is
 * retried on the next poll (which returns at once while it is held). */
static uint64_t echo_peer(RoamHost *host, uint8_t peer) {
  uint64_t n = 0;
  for (;;) {
    RoamMessage m;
    int s = roam_host_try_recv(host, peer, &m);
    if (s != ROAM_OK) {
      if (s != ROAM_ERR_WOULD_BLOCK)
        fprintf(stderr, "echo_host: peer %u: receive: %s\n", peer, roam_status_str(s));
      if (s == ROAM_ERR_CORRUPT) roam_host_disconnect(host, peer);
      return n;
    }
    uint8_t *buf = NULL;
    s = roam_host_reserve(host, peer, m.len, &buf);
    if (s == ROAM_ERR_FULL || s == ROAM_ERR_POOL_EXHAUSTED) return n; /* keep it held */
    if (s != ROAM_OK) {
      fprintf(stderr, "echo_host: peer %u: reserve: %s\n", peer, roam_status_str(s));
      roam_host_release(host, peer);
      return n;
    }
    memcpy(buf, m.data, m.len);
    s = roam_host_commit(host, peer);
    if (s != ROAM_OK) fprintf(stderr, "echo_host: peer %u: commit: %s\n", peer, roam_status_str(s));
    roam_host_release(host, peer);
    n++;
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SOCKET [--segment PATH] [--guests N]\n", argv[0]);
    return 2;
  }
  const char *socket_path = argv[1], *segment = NULL;
  unsigned guests = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--segment") == 0) segment = argv[i + 1];
    else if (strcmp(argv[i], "--guests") == 0) guests = (unsigned)strtoul(argv[i + 1], NULL, 10);
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  RoamSegmentConfig config;
  roam_segment_config_default(&config);
  RoamHost *host = NULL;
  int s = roam_host_create(&config, segment, &host);
  if (s == ROAM_OK) s = roam_host_listen(host, socket_path);
  if (s != ROAM_OK) {
    fprintf(stderr, "echo_host: %s (%s)\n", roam_status_str(s), roam_last_error_message());
    roam_host_destroy(host);
    return 1;
  }
  printf("echo_host: listening on %s\n", socket_path);
  fflush(stdout);

  unsigned connected = 0, gone = 0;
  uint64_t echoed = 0;
  int rc = 0;
  while (!stop && gone < guests) {
    RoamHostEvent events[16];
    uintptr_t n = 0;
    s = roam_host_poll(host, 100, events, 16, &n);
    if (s != ROAM_OK) {
      fprintf(stderr, "echo_host: poll: %s (%s)\n", roam_status_str(s), roam_last_error_message());
      rc = 1;
      break;
    }
    for (uintptr_t i = 0; i < n; i++) {
      uint8_t peer = (uint8_t)events[i].peer_id;
      switch (events[i].kind) {
        case ROAM_EVENT_CONNECTED: connected++; break;
        case ROAM_EVENT_READABLE: echoed += echo_peer(host, peer); break;
        case ROAM_EVENT_PEER_GONE:
          gone++;
          printf("echo_host: guest %u gone (reason %u; %u slots reclaimed)\n", peer,
                 events[i].reason, events[i].reclaimed_slots);
          break;
      }
    }
  }
  printf("echo_host: %u guests served, %llu messages echoed\n", connected,
         (unsigned long long)echoed);
  roam_host_destroy(host);
  return rc;
}
