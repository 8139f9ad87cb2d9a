/* roam_var_slot_pool_*: attach/init/alloc/free over a heap region, handle checks,
 * InFlight tracking, recovery, update_region, calculate_size. */
#include <stdint.h>
#include <stdlib.h>

#include "harness.h"

static const RoamSizeClass CLASSES[2] = {{64, 4}, {256, 2}};

typedef struct {
  uint8_t *region;
  size_t len;
  RoamVarSlotPool *pool;
} Fixture;

static Fixture fixture(void) {
  Fixture f;
  uint64_t size = roam_var_slot_pool_calculate_size(CLASSES, 2);
  f.len = (size_t)size + 128;
  f.region = aligned_alloc(64, f.len);
  memset(f.region, 0xAB, f.len);
  f.pool = roam_var_slot_pool_attach(f.region, f.len, 128, CLASSES, 2);
  roam_var_slot_pool_init(f.pool);
  return f;
}

static void fixture_free(Fixture *f) {
  roam_var_slot_pool_destroy(f->pool);
  free(f->region);
}

static void pool_calculate_size(void) {
  /* 2 class headers (128) + class 0: meta 64 + data 256; class 1: meta 64 + data 512. */
  CHECK_EQ(roam_var_slot_pool_calculate_size(CLASSES, 2), 128 + 64 + 256 + 64 + 512);
  CHECK_EQ(roam_var_slot_pool_calculate_size(NULL, 2), 0);
  CHECK_EQ(roam_var_slot_pool_calculate_size(CLASSES, 0), 0);
  RoamSizeClass huge = {UINT32_MAX, UINT32_MAX};
  RoamSizeClass many[2] = {huge, huge};
  CHECK_EQ(roam_var_slot_pool_calculate_size(many, 2), 0); /* overflows u64 */
  CHECK(strstr(roam_last_error_message(), "overflow") != NULL);
}

static void pool_attach_rejects_bad_input(void) {
  uint8_t *region = aligned_alloc(64, 4096);
  CHECK(roam_var_slot_pool_attach(NULL, 4096, 0, CLASSES, 2) == NULL);
  CHECK(roam_var_slot_pool_attach(region, 4096, 0, NULL, 2) == NULL);
  CHECK(roam_var_slot_pool_attach(region, 4096, 0, CLASSES, 0) == NULL);
  CHECK(roam_var_slot_pool_attach(region, 100, 0, CLASSES, 2) == NULL);   /* too small */
  CHECK(roam_var_slot_pool_attach(region, 4096, 4000, CLASSES, 2) == NULL); /* past end */
  CHECK(roam_var_slot_pool_attach(region, 4096, 8, CLASSES, 2) == NULL);  /* misaligned */
  RoamSizeClass zero[1] = {{0, 4}};
  CHECK(roam_var_slot_pool_attach(region, 4096, 0, zero, 1) == NULL);
  CHECK(roam_var_slot_pool_attach(region, 4096, UINT64_MAX, CLASSES, 2) == NULL);
  CHECK(roam_last_error_message() != NULL);
  roam_var_slot_pool_destroy(NULL); /* accepted */
  roam_var_slot_pool_init(NULL);
  roam_var_slot_pool_update_region(NULL, region, 4096);
  roam_var_slot_pool_recover_peer(NULL, 1);
  free(region);
}

static void pool_alloc_free_cycle(void) {
  Fixture f = fixture();
  REQUIRE(f.pool != NULL);
  CHECK_EQ(roam_var_slot_pool_slot_size(f.pool, 0), 64);
  CHECK_EQ(roam_var_slot_pool_slot_size(f.pool, 1), 256);
  CHECK_EQ(roam_var_slot_pool_slot_size(f.pool, 2), 0);
  CHECK_EQ(roam_var_slot_pool_slot_size(NULL, 0), 0);
  RoamVarSlotHandle h;
  REQUIRE(roam_var_slot_pool_alloc(f.pool, 60, 3, &h) == 1);
  CHECK_EQ(h.class_idx, 0);
  CHECK_EQ(h.extent_idx, 0);
  CHECK_EQ(h.slot_idx, 0);
  CHECK_EQ(h.generation, 1);
  CHECK_EQ(roam_var_slot_pool_slot_state(f.pool, h), 1);
  uint8_t *p = roam_var_slot_pool_payload_ptr(f.pool, h);
  REQUIRE(p != NULL);
  CHECK(p >= f.region && p + 64 <= f.region + f.len);
  memset(p, 0x5A, 64); /* whole slot writable */
  CHECK_EQ(roam_var_slot_pool_free(f.pool, h), 0);
  CHECK_EQ(roam_var_slot_pool_slot_state(f.pool, h), 0);
  /* Double free and stale handles are refused. */
  CHECK_EQ(roam_var_slot_pool_free(f.pool, h), -1);
  CHECK_EQ(roam_var_slot_pool_free_allocated(f.pool, h), -1);
  RoamVarSlotHandle h2;
  REQUIRE(roam_var_slot_pool_alloc(f.pool, 60, 3, &h2) == 1);
  CHECK_EQ(h2.slot_idx, 0);
  CHECK_EQ(h2.generation, 2);
  CHECK_EQ(roam_var_slot_pool_free(f.pool, h), -1);       /* stale generation */
  CHECK_EQ(roam_var_slot_pool_slot_state(f.pool, h), -1); /* stale */
  CHECK_EQ(roam_var_slot_pool_slot_state(f.pool, h2), 1);
  CHECK_EQ(roam_var_slot_pool_free_allocated(f.pool, h2), 0);
  /* NULL arguments. */
  CHECK_EQ(roam_var_slot_pool_alloc(NULL, 1, 0, &h), -1);
  CHECK_EQ(roam_var_slot_pool_alloc(f.pool, 1, 0, NULL), -1);
  CHECK_EQ(roam_var_slot_pool_free(NULL, h), -1);
  CHECK_EQ(roam_var_slot_pool_free_allocated(NULL, h), -1);
  CHECK_EQ(roam_var_slot_pool_mark_in_flight(NULL, h), -1);
  CHECK_EQ(roam_var_slot_pool_slot_state(NULL, h), -1);
  CHECK(roam_var_slot_pool_payload_ptr(NULL, h) == NULL);
  fixture_free(&f);
}

static void pool_out_of_range_handles(void) {
  Fixture f = fixture();
  REQUIRE(f.pool != NULL);
  RoamVarSlotHandle bad_class = {9, 0, 0, 1};
  RoamVarSlotHandle bad_extent = {0, 1, 0, 1};
  RoamVarSlotHandle bad_slot = {0, 0, 4, 1}; /* class 0 has slots 0..3 */
  RoamVarSlotHandle huge_slot = {1, 0, UINT32_MAX, 1};
  const RoamVarSlotHandle *all[] = {&bad_class, &bad_extent, &bad_slot, &huge_slot};
  for (int i = 0; i < 4; i++) {
    CHECK(roam_var_slot_pool_payload_ptr(f.pool, *all[i]) == NULL);
    CHECK_EQ(roam_var_slot_pool_free(f.pool, *all[i]), -1);
    CHECK_EQ(roam_var_slot_pool_slot_state(f.pool, *all[i]), -1);
    CHECK_EQ(roam_var_slot_pool_mark_in_flight(f.pool, *all[i]), -1);
  }
  fixture_free(&f);
}

static void pool_exhaustion_and_fallthrough(void) {
  Fixture f = fixture();
  REQUIRE(f.pool != NULL);
  RoamVarSlotHandle hs[6];
  for (int i = 0; i < 6; i++) CHECK_EQ(roam_var_slot_pool_alloc(f.pool, 10, 0, &hs[i]), 1);
  /* 4 small slots, then fell through to the 2 big ones. */
  CHECK_EQ(hs[3].class_idx, 0);
  CHECK_EQ(hs[4].class_idx, 1);
  CHECK_EQ(hs[5].class_idx, 1);
  RoamVarSlotHandle h;
  CHECK_EQ(roam_var_slot_pool_alloc(f.pool, 10, 0, &h), 0);   /* exhausted */
  CHECK_EQ(roam_var_slot_pool_alloc(f.pool, 1000, 0, &h), 0); /* no class fits */
  for (int i = 0; i < 6; i++) CHECK_EQ(roam_var_slot_pool_free(f.pool, hs[i]), 0);
  CHECK_EQ(roam_var_slot_pool_alloc(f.pool, 200, 0, &h), 1);
  CHECK_EQ(h.class_idx, 1);
  fixture_free(&f);
}

static void pool_in_flight_tracking(void) {
  Fixture f = fixture();
  REQUIRE(f.pool != NULL);
  RoamVarSlotHandle h;
  REQUIRE(roam_var_slot_pool_alloc(f.pool, 8, 1, &h) == 1);
  CHECK_EQ(roam_var_slot_pool_mark_in_flight(f.pool, h), 0);
  CHECK_EQ(roam_var_slot_pool_slot_state(f.pool, h), 2);
  CHECK_EQ(roam_var_slot_pool_mark_in_flight(f.pool, h), -1); /* already */
  CHECK_EQ(roam_var_slot_pool_free_allocated(f.pool, h), -1); /* in flight */
  CHECK_EQ(roam_var_slot_pool_free(f.pool, h), 0);
  CHECK_EQ(roam_var_slot_pool_mark_in_flight(f.pool, h), -1); /* freed */
  /* A slot allocated by "another process" (a second view) is Allocated for us,
   * but we cannot mark it in flight. */
  RoamVarSlotPool *other = roam_var_slot_pool_attach(f.region, f.len, 128, CLASSES, 2);
  REQUIRE(other != NULL);
  RoamVarSlotHandle o;
  REQUIRE(roam_var_slot_pool_alloc(other, 8, 2, &o) == 1);
  CHECK_EQ(roam_var_slot_pool_slot_state(f.pool, o), 1);
  CHECK_EQ(roam_var_slot_pool_mark_in_flight(f.pool, o), -1);
  CHECK_EQ(roam_var_slot_pool_free(f.pool, o), 0); /* the receiver frees */
  CHECK_EQ(roam_var_slot_pool_slot_state(other, o), 0);
  roam_var_slot_pool_destroy(other);
  fixture_free(&f);
}

static void pool_recover_peer(void) {
  Fixture f = fixture();
  REQUIRE(f.pool != NULL);
  RoamVarSlotHandle a, b, c;
  REQUIRE(roam_var_slot_pool_alloc(f.pool, 8, 5, &a) == 1);
  REQUIRE(roam_var_slot_pool_alloc(f.pool, 8, 5, &b) == 1);
  REQUIRE(roam_var_slot_pool_alloc(f.pool, 8, 6, &c) == 1);
  CHECK_EQ(roam_var_slot_pool_mark_in_flight(f.pool, b), 0);
  roam_var_slot_pool_recover_peer(f.pool, 5);
  CHECK_EQ(roam_var_slot_pool_slot_state(f.pool, a), 0);
  CHECK_EQ(roam_var_slot_pool_slot_state(f.pool, b), 0);
  CHECK_EQ(roam_var_slot_pool_slot_state(f.pool, c), 1);
  CHECK_EQ(roam_var_slot_pool_free(f.pool, a), -1); /* already reclaimed */
  CHECK_EQ(roam_var_slot_pool_free(f.pool, c), 0);
  fixture_free(&f);
}

static void pool_update_region(void) {
  Fixture f = fixture();
  REQUIRE(f.pool != NULL);
  RoamVarSlotHandle h;
  REQUIRE(roam_var_slot_pool_alloc(f.pool, 8, 0, &h) == 1);
  /* "Remap": copy the bytes elsewhere and re-point the pool. */
  uint8_t *copy = aligned_alloc(64, f.len);
  memcpy(copy, f.region, f.len);
  roam_var_slot_pool_update_region(f.pool, copy, f.len);
  uint8_t *p = roam_var_slot_pool_payload_ptr(f.pool, h);
  CHECK(p >= copy && p < copy + f.len);
  /* A too-small region is refused and the pool keeps the previous one. */
  roam_var_slot_pool_update_region(f.pool, f.region, 64);
  roam_var_slot_pool_update_region(f.pool, NULL, f.len);
  CHECK(roam_var_slot_pool_payload_ptr(f.pool, h) == p);
  CHECK_EQ(roam_var_slot_pool_free(f.pool, h), 0);
  roam_var_slot_pool_destroy(f.pool);
  free(copy);
  free(f.region);
}

static void pool_corrupt_free_list_is_detected(void) {
  Fixture f = fixture();
  REQUIRE(f.pool != NULL);
  /* Each class's free_head (u64 at header + 8): point it past the slot count. */
  for (int c = 0; c < 2; c++) {
    uint64_t *head = (uint64_t *)(void *)(f.region + 128 + 64 * c + 8);
    roam_atomic_store_u64_release(head, 1000);
  }
  RoamVarSlotHandle h;
  CHECK_EQ(roam_var_slot_pool_alloc(f.pool, 60, 0, &h), -1);
  CHECK(strstr(roam_last_error_message(), "corrupt") != NULL);
  fixture_free(&f);
}

void suite_var_pool(void) {
  fprintf(stderr, "var_slot_pool\n");
  RUN(pool_calculate_size);
  RUN(pool_attach_rejects_bad_input);
  RUN(pool_alloc_free_cycle);
  RUN(pool_out_of_range_handles);
  RUN(pool_exhaustion_and_fallthrough);
  RUN(pool_in_flight_tracking);
  RUN(pool_recover_peer);
  RUN(pool_update_region);
  RUN(pool_corrupt_free_list_is_detected);
}
