/* roam_bipbuf_*: the seed functions and the _ex extensions over a heap ring. */
#include <stdint.h>
#include <stdlib.h>

#include "harness.h"

#define CAP 1024u

static uint8_t *new_ring(uint32_t cap) {
  uint8_t *h = aligned_alloc(64, 128 + (size_t)cap);
  memset(h, 0xEE, 128 + (size_t)cap); /* garbage: init must set everything */
  roam_bipbuf_init(h, cap);
  return h;
}

/* The cursor words, for emulating a corrupt peer. */
static uint32_t *word(uint8_t *h, size_t off) { return (uint32_t *)(void *)(h + off); }

static void bipbuf_init_and_loads(void) {
  CHECK_EQ(roam_bipbuf_header_size(), 128);
  uint8_t *h = new_ring(CAP);
  CHECK_EQ(roam_bipbuf_capacity(h), CAP);
  CHECK_EQ(roam_bipbuf_load_write_acquire(h), 0);
  CHECK_EQ(roam_bipbuf_load_read_acquire(h), 0);
  CHECK_EQ(roam_bipbuf_load_watermark_acquire(h), 0);
  /* Padding is zeroed by init. */
  for (size_t i = 12; i < 64; i++) CHECK_EQ(h[i], 0);
  free(h);
}

static void bipbuf_rejects_bad_arguments(void) {
  uint8_t *h = aligned_alloc(64, 128 + CAP);
  memset(h, 0, 128 + CAP);
  roam_bipbuf_init(NULL, CAP);   /* no crash */
  roam_bipbuf_init(h + 4, CAP);  /* misaligned: refused */
  roam_bipbuf_init(h, 0);        /* capacity 0: refused */
  CHECK_EQ(roam_bipbuf_capacity(h), 0);
  roam_bipbuf_init(h, CAP);
  uint32_t off = 77, len = 77;
  CHECK_EQ(roam_bipbuf_capacity(NULL), 0);
  CHECK_EQ(roam_bipbuf_capacity(h + 8), 0);
  CHECK_EQ(roam_bipbuf_load_write_acquire(NULL), 0);
  CHECK_EQ(roam_bipbuf_load_read_acquire(NULL), 0);
  CHECK_EQ(roam_bipbuf_load_watermark_acquire(h + 1), 0);
  CHECK_EQ(roam_bipbuf_try_grant(NULL, 8, &off), -1);
  CHECK_EQ(roam_bipbuf_try_grant(h, 8, NULL), -1);
  CHECK_EQ(roam_bipbuf_commit(NULL, 0), -1);
  CHECK_EQ(roam_bipbuf_try_read(NULL, &off, &len), -1);
  CHECK_EQ(roam_bipbuf_try_read(h, NULL, &len), -1);
  CHECK_EQ(roam_bipbuf_try_read(h, &off, NULL), -1);
  CHECK_EQ(roam_bipbuf_release(NULL, 0), -1);
  CHECK_EQ(roam_bipbuf_try_grant_ex(NULL, CAP, 8, &off), -1);
  CHECK_EQ(roam_bipbuf_try_read_ex(h, CAP, NULL, NULL), -1);
  CHECK_EQ(roam_bipbuf_commit_ex(NULL, CAP, 0), -1);
  CHECK_EQ(roam_bipbuf_release_ex(NULL, CAP, 0), -1);
  CHECK_EQ(off, 77);
  CHECK_EQ(len, 77);
  free(h);
}

static void bipbuf_round_trip(void) {
  uint8_t *h = new_ring(CAP);
  uint8_t *data = h + 128;
  uint32_t off, len;
  CHECK_EQ(roam_bipbuf_try_read(h, &off, &len), 0); /* empty */
  CHECK_EQ(roam_bipbuf_try_grant(h, 0, &off), 1);  /* zero-length grant */
  CHECK_EQ(off, 0);
  CHECK_EQ(roam_bipbuf_try_grant(h, CAP + 1, &off), -1); /* oversize */
  REQUIRE(roam_bipbuf_try_grant(h, 5, &off) == 1);
  CHECK_EQ(off, 0);
  memcpy(data + off, "hello", 5);
  CHECK_EQ(roam_bipbuf_commit(h, 5), 0);
  CHECK_EQ(roam_bipbuf_load_write_acquire(h), 5);
  REQUIRE(roam_bipbuf_try_read(h, &off, &len) == 1);
  CHECK_EQ(off, 0);
  CHECK_EQ(len, 5);
  CHECK(memcmp(data + off, "hello", 5) == 0);
  CHECK_EQ(roam_bipbuf_release(h, 6), -1); /* more than readable */
  CHECK_EQ(roam_bipbuf_release(h, 5), 0);
  CHECK_EQ(roam_bipbuf_load_read_acquire(h), 5);
  CHECK_EQ(roam_bipbuf_try_read(h, &off, &len), 0);
  /* Whole capacity can be granted from an empty ring at 5? Only CAP-5 fit before
   * the end; the wrap then needs len < read = 5. */
  CHECK_EQ(roam_bipbuf_try_grant(h, CAP - 5, &off), 1);
  CHECK_EQ(off, 5);
  free(h);
}

static void bipbuf_commit_overflow_is_refused(void) {
  uint8_t *h = new_ring(CAP);
  uint32_t off;
  CHECK_EQ(roam_bipbuf_commit(h, CAP + 1), -1);
  CHECK_EQ(roam_bipbuf_load_write_acquire(h), 0); /* nothing stored */
  CHECK_EQ(roam_bipbuf_try_grant(h, 100, &off), 1);
  CHECK_EQ(roam_bipbuf_commit(h, 100), 0);
  CHECK_EQ(roam_bipbuf_commit(h, CAP - 100 + 1), -1);
  CHECK_EQ(roam_bipbuf_commit_ex(h, CAP, CAP - 100 + 1), -1);
  CHECK_EQ(roam_bipbuf_load_write_acquire(h), 100);
  free(h);
}

static void bipbuf_wraps_with_watermark(void) {
  uint8_t *h = new_ring(CAP);
  uint8_t *data = h + 128;
  uint32_t off, len;
  /* Fill 800, consume 800, then a 400-byte grant must wrap to offset 0. */
  REQUIRE(roam_bipbuf_try_grant(h, 800, &off) == 1);
  memset(data + off, 'a', 800);
  CHECK_EQ(roam_bipbuf_commit(h, 800), 0);
  REQUIRE(roam_bipbuf_try_read(h, &off, &len) == 1);
  CHECK_EQ(roam_bipbuf_release(h, len), 0);
  REQUIRE(roam_bipbuf_try_grant(h, 400, &off) == 1);
  CHECK_EQ(off, 0);
  CHECK_EQ(roam_bipbuf_load_watermark_acquire(h), 800);
  memset(data + off, 'b', 400);
  CHECK_EQ(roam_bipbuf_commit(h, 400), 0);
  /* The reader finds the tail consumed, resets, and returns the front. */
  REQUIRE(roam_bipbuf_try_read(h, &off, &len) == 1);
  CHECK_EQ(off, 0);
  CHECK_EQ(len, 400);
  CHECK_EQ(data[0], 'b');
  CHECK_EQ(roam_bipbuf_load_watermark_acquire(h), 0);
  CHECK_EQ(roam_bipbuf_release(h, 400), 0);
  free(h);
}

/* Layout notes §13: entries larger than half the ring can stall. The _ex variants
 * report the two outcomes that need a wake-up. */
static void bipbuf_ex_reports_stall_outcomes(void) {
  uint8_t *h = new_ring(CAP);
  uint32_t off, len;
  REQUIRE(roam_bipbuf_try_grant_ex(h, CAP, 600, &off) == ROAM_BIPBUF_GRANTED);
  CHECK_EQ(roam_bipbuf_commit_ex(h, CAP, 600), 0);
  REQUIRE(roam_bipbuf_try_read_ex(h, CAP, &off, &len) == ROAM_BIPBUF_DATA);
  CHECK_EQ(roam_bipbuf_release_ex(h, CAP, 600), 0);
  /* Both cursors at 600: a 600-byte grant wraps but cannot fit before read. */
  CHECK_EQ(roam_bipbuf_try_grant_ex(h, CAP, 600, &off), ROAM_BIPBUF_FULL_WRAPPED);
  CHECK_EQ(roam_bipbuf_try_grant(h, 600, &off), ROAM_BIPBUF_WOULD_BLOCK); /* seed: 0 */
  /* The consumer's read resets the cursors without data: wake the producer. */
  CHECK_EQ(roam_bipbuf_try_read_ex(h, CAP, &off, &len), ROAM_BIPBUF_EMPTY_AFTER_RESET);
  CHECK_EQ(roam_bipbuf_try_read_ex(h, CAP, &off, &len), ROAM_BIPBUF_WOULD_BLOCK);
  CHECK_EQ(roam_bipbuf_try_grant_ex(h, CAP, 600, &off), ROAM_BIPBUF_GRANTED);
  CHECK_EQ(off, 0);
  free(h);
}

static void bipbuf_corrupt_cursors_are_rejected(void) {
  uint8_t *h = new_ring(CAP);
  uint32_t off = 0, len = 0;
  /* A hostile peer stores write beyond the capacity. */
  roam_atomic_store_u32_release(word(h, 0), CAP + 100);
  CHECK_EQ(roam_bipbuf_try_read(h, &off, &len), -1);
  CHECK_EQ(roam_bipbuf_try_grant(h, 8, &off), -1);
  CHECK_EQ(roam_bipbuf_commit(h, 1), -1);
  CHECK_EQ(roam_bipbuf_release(h, 1), -1);
  CHECK(strstr(roam_last_error_message(), "corrupt") != NULL);
  /* Worse: it also rewrites the capacity field. The seed functions can only trust
   * the header; the _ex functions use the caller's capacity and still refuse. */
  roam_atomic_store_u32_release(word(h, 8), 1u << 20);
  roam_atomic_store_u32_release(word(h, 0), 5000);
  CHECK_EQ(roam_bipbuf_try_read_ex(h, CAP, &off, &len), -1);
  CHECK_EQ(roam_bipbuf_try_grant_ex(h, CAP, 8, &off), -1);
  /* A watermark beyond the capacity is corrupt too. */
  roam_atomic_store_u32_release(word(h, 8), CAP);
  roam_atomic_store_u32_release(word(h, 0), 10);
  roam_atomic_store_u32_release(word(h, 4), CAP * 2);
  CHECK_EQ(roam_bipbuf_try_read(h, &off, &len), -1);
  /* A capacity of 0 in the header makes the seed functions fail cleanly. */
  roam_atomic_store_u32_release(word(h, 8), 0);
  CHECK_EQ(roam_bipbuf_try_grant(h, 1, &off), -1);
  free(h);
}

void suite_bipbuf(void) {
  fprintf(stderr, "bipbuf\n");
  RUN(bipbuf_init_and_loads);
  RUN(bipbuf_rejects_bad_arguments);
  RUN(bipbuf_round_trip);
  RUN(bipbuf_commit_overflow_is_refused);
  RUN(bipbuf_wraps_with_watermark);
  RUN(bipbuf_ex_reports_stall_outcomes);
  RUN(bipbuf_corrupt_cursors_are_rejected);
}
