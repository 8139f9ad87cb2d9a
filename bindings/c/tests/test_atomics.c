/* roam_atomic_*: values, wrapping, CAS success/failure, NULL and misalignment. */
#include <pthread.h>
#include <stdint.h>

#include "harness.h"

static void atomics_u32(void) {
  uint32_t v = 0;
  roam_atomic_store_u32_release(&v, 41);
  CHECK_EQ(roam_atomic_load_u32_acquire(&v), 41);
  CHECK_EQ(roam_atomic_fetch_add_u32(&v, 1), 41);
  CHECK_EQ(roam_atomic_fetch_add_u32(&v, UINT32_MAX), 42); /* wraps */
  CHECK_EQ(roam_atomic_load_u32_acquire(&v), 41);
  uint32_t expected = 7;
  CHECK_EQ(roam_atomic_compare_exchange_u32(&v, &expected, 9), 0);
  CHECK_EQ(expected, 41); /* actual value reported */
  int r;
  while ((r = roam_atomic_compare_exchange_u32(&v, &expected, 9)) == 0) {}
  CHECK_EQ(r, 1);
  CHECK_EQ(v, 9);
}

static void atomics_u64(void) {
  uint64_t v = 0;
  roam_atomic_store_u64_release(&v, 1ull << 40);
  CHECK(roam_atomic_load_u64_acquire(&v) == (1ull << 40));
  uint64_t expected = 3;
  CHECK_EQ(roam_atomic_compare_exchange_u64(&v, &expected, 5), 0);
  CHECK(expected == (1ull << 40));
  while (roam_atomic_compare_exchange_u64(&v, &expected, UINT64_MAX) == 0) {}
  CHECK(v == UINT64_MAX);
}

static void atomics_reject_null_and_misaligned(void) {
  CHECK_EQ(roam_atomic_load_u32_acquire(NULL), 0);
  roam_atomic_store_u32_release(NULL, 1); /* no crash */
  CHECK_EQ(roam_atomic_fetch_add_u32(NULL, 1), 0);
  CHECK_EQ(roam_atomic_load_u64_acquire(NULL), 0);
  roam_atomic_store_u64_release(NULL, 1);
  uint32_t e32 = 0, v32 = 0;
  uint64_t e64 = 0, v64 = 0;
  CHECK_EQ(roam_atomic_compare_exchange_u32(NULL, &e32, 1), -1);
  CHECK_EQ(roam_atomic_compare_exchange_u32(&v32, NULL, 1), -1);
  CHECK_EQ(roam_atomic_compare_exchange_u64(NULL, &e64, 1), -1);
  CHECK_EQ(roam_atomic_compare_exchange_u64(&v64, NULL, 1), -1);
  /* Misaligned pointers are refused, not dereferenced. */
  _Alignas(8) unsigned char buf[24] = {0};
  uint32_t *mis32 = (uint32_t *)(void *)(buf + 1);
  uint64_t *mis64 = (uint64_t *)(void *)(buf + 4);
  CHECK_EQ(roam_atomic_load_u32_acquire(mis32), 0);
  roam_atomic_store_u32_release(mis32, 0xFFFFFFFFu);
  CHECK_EQ(roam_atomic_fetch_add_u32(mis32, 5), 0);
  CHECK_EQ(roam_atomic_load_u64_acquire(mis64), 0);
  roam_atomic_store_u64_release(mis64, 7);
  CHECK_EQ(roam_atomic_compare_exchange_u64(mis64, &e64, 1), -1);
  for (size_t i = 0; i < sizeof buf; i++) CHECK_EQ(buf[i], 0);
  CHECK(roam_last_error_message() != NULL);
}

static uint32_t g_counter;
static void *adder(void *arg) {
  (void)arg;
  for (int i = 0; i < 100000; i++) roam_atomic_fetch_add_u32(&g_counter, 1);
  for (int i = 0; i < 1000; i++) {
    uint32_t e = roam_atomic_load_u32_acquire(&g_counter);
    while (!roam_atomic_compare_exchange_u32(&g_counter, &e, e + 1)) {}
  }
  return NULL;
}

static void atomics_are_atomic_across_threads(void) {
  g_counter = 0;
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, adder, NULL);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  CHECK_EQ(roam_atomic_load_u32_acquire(&g_counter), 4 * 101000);
}

void suite_atomics(void) {
  fprintf(stderr, "atomics\n");
  RUN(atomics_u32);
  RUN(atomics_u64);
  RUN(atomics_reject_null_and_misaligned);
  RUN(atomics_are_atomic_across_threads);
}
