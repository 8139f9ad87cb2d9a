/* A tiny test harness: RUN(fn) runs one test function; CHECK* macros record
 * failures without stopping the test. main() (in test_main.c) prints the summary
 * "N passed, N failed" as its last line and exits non-zero on any failure. */
#ifndef ROAM_TEST_HARNESS_H
#define ROAM_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

#include "roam_shm.h"

extern int h_passed, h_failed, h_current_failures;

void h_run(const char *name, void (*fn)(void));
void h_fail(const char *file, int line, const char *fmt, ...);

#define RUN(fn) h_run(#fn, fn)

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (!(cond)) h_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);            \
  } while (0)

#define CHECK_EQ(a, b)                                                      \
  do {                                                                      \
    long long h_a_ = (long long)(a), h_b_ = (long long)(b);                 \
    if (h_a_ != h_b_)                                                       \
      h_fail(__FILE__, __LINE__, "%s == %s (%lld != %lld)", #a, #b, h_a_,  \
             h_b_);                                                         \
  } while (0)

/* A session call expected to return `want` (a RoamStatus). */
#define CHECK_STATUS(expr, want)                                            \
  do {                                                                      \
    int h_s_ = (int)(expr);                                                 \
    if (h_s_ != (int)(want)) {                                              \
      const char *h_m_ = roam_last_error_message();                         \
      h_fail(__FILE__, __LINE__, "%s -> %s, expected %s (last error: %s)",  \
             #expr, roam_status_str(h_s_), roam_status_str((int)(want)),    \
             h_m_ ? h_m_ : "(none)");                                       \
    }                                                                       \
  } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, ROAM_OK)

/* Stop the current test (after a failure that makes the rest meaningless). */
#define REQUIRE(cond)                                                       \
  do {                                                                      \
    if (!(cond)) {                                                          \
      h_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond);                     \
      return;                                                               \
    }                                                                       \
  } while (0)

/* Suites, one per file. */
void suite_status(void);
void suite_atomics(void);
void suite_bipbuf(void);
void suite_var_pool(void);
void suite_bootstrap(void);
void suite_mmap(void);
void suite_session(void);
void suite_roam_compat(void);

/* Helpers shared by suites. */
void unique_name(char *buf, size_t len, const char *prefix);

#endif
