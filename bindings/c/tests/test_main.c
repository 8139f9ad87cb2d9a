#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

int h_passed, h_failed, h_current_failures;

void h_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "    FAIL %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  h_current_failures++;
}

void h_run(const char *name, void (*fn)(void)) {
  h_current_failures = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  fn();
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
  if (h_current_failures == 0) {
    h_passed++;
    fprintf(stderr, "  ok   %s (%.0f ms)\n", name, ms);
  } else {
    h_failed++;
    fprintf(stderr, "  FAIL %s (%d failed checks)\n", name, h_current_failures);
  }
}

void unique_name(char *buf, size_t len, const char *prefix) {
  static unsigned counter;
  snprintf(buf, len, "%s-%ld-%u", prefix, (long)getpid(), counter++);
}

int main(void) {
  /* A peer that dies must show up as ROAM_ERR_PEER_GONE, never as SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);
  fprintf(stderr, "roam-shm C test suite\n");
  suite_status();
  suite_atomics();
  suite_bipbuf();
  suite_var_pool();
  suite_bootstrap();
  suite_mmap();
  suite_session();
  suite_roam_compat();
  printf("%d passed, %d failed\n", h_passed, h_failed);
  return h_failed == 0 ? 0 : 1;
}
