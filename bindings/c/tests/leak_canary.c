/* Leak canary for scripts/test-c.sh: leaks one RoamVarSlotPool on purpose. Run under
 * ASan it must fail with a LeakSanitizer report; this proves that the suite's
 * "no leaks" result comes from a working leak checker (the Rust allocations go
 * through the same malloc that LeakSanitizer intercepts). */
#include <stdint.h>
#include <stdlib.h>

#include "roam_shm.h"

int main(void) {
  static const RoamSizeClass classes[1] = {{64, 4}};
  uint64_t size = roam_var_slot_pool_calculate_size(classes, 1);
  uint8_t *region = aligned_alloc(64, (size_t)size);
  RoamVarSlotPool *pool = roam_var_slot_pool_attach(region, (size_t)size, 0, classes, 1);
  free(region);
  return pool == NULL; /* pool is never destroyed: a leak */
}
