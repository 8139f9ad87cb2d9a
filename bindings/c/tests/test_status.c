/* roam_status_str, roam_last_error_message, roam_last_error_clear. */
#include <stdlib.h>

#include "harness.h"

static void status_strings_name_every_code(void) {
  static const int codes[] = {
      ROAM_OK, ROAM_ERR_NULL_POINTER, ROAM_ERR_INVALID_ARGUMENT,
      ROAM_ERR_INVALID_CONFIG, ROAM_ERR_BUFFER_TOO_SMALL, ROAM_ERR_TOO_LARGE,
      ROAM_ERR_UNKNOWN_PEER, ROAM_ERR_RESERVATION_PENDING,
      ROAM_ERR_NO_RESERVATION, ROAM_ERR_INVALID_STATE, ROAM_ERR_WOULD_BLOCK,
      ROAM_ERR_FULL, ROAM_ERR_POOL_EXHAUSTED, ROAM_ERR_TIMEOUT,
      ROAM_ERR_NO_FREE_PEER, ROAM_ERR_PEER_GONE, ROAM_ERR_HOST_GOODBYE,
      ROAM_ERR_EVICTED, ROAM_ERR_REJECTED, ROAM_ERR_PROTOCOL, ROAM_ERR_CORRUPT,
      ROAM_ERR_BAD_SEGMENT, ROAM_ERR_SEGMENT_TRUNCATED, ROAM_ERR_IO,
      ROAM_ERR_MAPPING, ROAM_ERR_PANIC, ROAM_ERR_INTERNAL};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const char *s = roam_status_str(codes[i]);
    REQUIRE(s != NULL);
    CHECK(strncmp(s, "ROAM_", 5) == 0);
    CHECK(strstr(s, "unknown") == NULL);
    /* Distinct codes have distinct strings. */
    for (size_t j = 0; j < i; j++) CHECK(strcmp(s, roam_status_str(codes[j])) != 0);
  }
  CHECK(strncmp(roam_status_str(ROAM_OK), "ROAM_OK:", 8) == 0);
  CHECK(strncmp(roam_status_str(ROAM_ERR_FULL), "ROAM_ERR_FULL:", 14) == 0);
  /* Grouping by hundreds is part of the contract. */
  CHECK_EQ(ROAM_ERR_NULL_POINTER / 100, 1);
  CHECK_EQ(ROAM_ERR_WOULD_BLOCK / 100, 2);
  CHECK_EQ(ROAM_ERR_PEER_GONE / 100, 3);
  CHECK_EQ(ROAM_ERR_CORRUPT / 100, 4);
  CHECK_EQ(ROAM_ERR_IO / 100, 5);
  CHECK_EQ(ROAM_ERR_PANIC / 100, 9);
}

static void status_str_unknown_codes(void) {
  CHECK(strcmp(roam_status_str(-1), "unknown roam status") == 0);
  CHECK(strcmp(roam_status_str(1), "unknown roam status") == 0);
  CHECK(strcmp(roam_status_str(99999), "unknown roam status") == 0);
}

static void last_error_set_and_cleared(void) {
  roam_last_error_clear();
  CHECK(roam_last_error_message() == NULL);
  CHECK_STATUS(roam_segment_config_default(NULL), ROAM_ERR_NULL_POINTER);
  const char *m = roam_last_error_message();
  REQUIRE(m != NULL);
  CHECK(strstr(m, "out_config") != NULL);
  /* A success does not clear it (errno-style). */
  RoamSegmentConfig c;
  CHECK_OK(roam_segment_config_default(&c));
  CHECK(roam_last_error_message() != NULL);
  roam_last_error_clear();
  CHECK(roam_last_error_message() == NULL);
  /* Seed functions set it too. */
  CHECK_EQ(roam_bipbuf_capacity(NULL), 0);
  m = roam_last_error_message();
  REQUIRE(m != NULL);
  CHECK(strstr(m, "roam_bipbuf_capacity") != NULL);
}

void suite_status(void) {
  fprintf(stderr, "status\n");
  RUN(status_strings_name_every_code);
  RUN(status_str_unknown_codes);
  RUN(last_error_set_and_cleared);
}
