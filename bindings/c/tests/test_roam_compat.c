/* Compile-time proof that code written against roam 7.x's roam_shm_ffi.h works with
 * roam_shm.h: each seed function is redeclared here with roam's exact prototype
 * (types, constness, pointer levels). C requires redeclarations to be compatible,
 * so any drift in a signature is a compile error. The structs are checked the same
 * way: roam's layouts, field by field. */
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

uint32_t roam_bipbuf_header_size(void);
void roam_bipbuf_init(void *header_ptr, uint32_t capacity);
uint32_t roam_bipbuf_capacity(const void *header_ptr);
uint32_t roam_bipbuf_load_write_acquire(const void *header_ptr);
uint32_t roam_bipbuf_load_read_acquire(const void *header_ptr);
uint32_t roam_bipbuf_load_watermark_acquire(const void *header_ptr);
int32_t roam_bipbuf_try_grant(void *header_ptr, uint32_t len, uint32_t *out_offset);
int32_t roam_bipbuf_commit(void *header_ptr, uint32_t len);
int32_t roam_bipbuf_try_read(void *header_ptr, uint32_t *out_offset, uint32_t *out_len);
int32_t roam_bipbuf_release(void *header_ptr, uint32_t len);
struct RoamVarSlotPool *roam_var_slot_pool_attach(uint8_t *region_ptr, uintptr_t region_len,
                                                  uint64_t base_offset,
                                                  const struct RoamSizeClass *classes,
                                                  uintptr_t num_classes);
void roam_var_slot_pool_init(struct RoamVarSlotPool *pool);
void roam_var_slot_pool_update_region(struct RoamVarSlotPool *pool, uint8_t *region_ptr,
                                      uintptr_t region_len);
int32_t roam_var_slot_pool_alloc(const struct RoamVarSlotPool *pool, uint32_t size, uint8_t owner,
                                 struct RoamVarSlotHandle *out_handle);
int32_t roam_var_slot_pool_mark_in_flight(const struct RoamVarSlotPool *pool,
                                          struct RoamVarSlotHandle handle);
int32_t roam_var_slot_pool_free(const struct RoamVarSlotPool *pool, struct RoamVarSlotHandle handle);
int32_t roam_var_slot_pool_free_allocated(const struct RoamVarSlotPool *pool,
                                          struct RoamVarSlotHandle handle);
uint8_t *roam_var_slot_pool_payload_ptr(const struct RoamVarSlotPool *pool,
                                        struct RoamVarSlotHandle handle);
int32_t roam_var_slot_pool_slot_state(const struct RoamVarSlotPool *pool,
                                      struct RoamVarSlotHandle handle);
uint32_t roam_var_slot_pool_slot_size(const struct RoamVarSlotPool *pool, uint8_t class_idx);
void roam_var_slot_pool_recover_peer(const struct RoamVarSlotPool *pool, uint8_t peer_id);
uint64_t roam_var_slot_pool_calculate_size(const struct RoamSizeClass *classes,
                                           uintptr_t num_classes);
void roam_var_slot_pool_destroy(struct RoamVarSlotPool *pool);
int32_t roam_mmap_control_send(int32_t control_fd, int32_t mapping_fd, uint32_t map_id,
                               uint32_t map_generation, uint64_t mapping_length);
struct RoamMmapAttachments *roam_mmap_attachments_create(int32_t control_fd);
int32_t roam_mmap_attachments_drain_control(struct RoamMmapAttachments *attachments);
int32_t roam_mmap_attachments_resolve_ptr(const struct RoamMmapAttachments *attachments,
                                          uint32_t map_id, uint32_t map_generation,
                                          uint64_t map_offset, uint32_t payload_len,
                                          const uint8_t **out_ptr);
void roam_mmap_attachments_destroy(struct RoamMmapAttachments *attachments);
uint32_t roam_atomic_load_u32_acquire(const uint32_t *ptr);
void roam_atomic_store_u32_release(uint32_t *ptr, uint32_t value);
int32_t roam_atomic_compare_exchange_u32(uint32_t *ptr, uint32_t *expected, uint32_t desired);
uint32_t roam_atomic_fetch_add_u32(uint32_t *ptr, uint32_t value);
uint64_t roam_atomic_load_u64_acquire(const uint64_t *ptr);
void roam_atomic_store_u64_release(uint64_t *ptr, uint64_t value);
int32_t roam_atomic_compare_exchange_u64(uint64_t *ptr, uint64_t *expected, uint64_t desired);
/* Bootstrap (layout notes §10). */
uint32_t roam_shm_bootstrap_request_header_size(void);
uint32_t roam_shm_bootstrap_response_header_size(void);
int32_t roam_shm_bootstrap_request_encode(const uint8_t *sid, uintptr_t sid_len, uint8_t *out,
                                          uintptr_t out_len, uintptr_t *written);
int32_t roam_shm_bootstrap_request_decode(const uint8_t *buf, uintptr_t len, const uint8_t **sid,
                                          uint16_t *sid_len);
int32_t roam_shm_bootstrap_response_encode(uint8_t status, uint32_t peer_id,
                                           const uint8_t *payload, uintptr_t payload_len,
                                           uint8_t *out, uintptr_t out_len, uintptr_t *written);
int32_t roam_shm_bootstrap_response_decode(const uint8_t *buf, uintptr_t len,
                                           struct RoamShmBootstrapResponseInfo *info,
                                           const uint8_t **payload);
int32_t roam_shm_bootstrap_response_send_unix(int32_t control_fd, uint8_t status, uint32_t peer_id,
                                              const uint8_t *payload, uintptr_t payload_len,
                                              int32_t doorbell_fd, int32_t segment_fd,
                                              int32_t mmap_control_fd);
int32_t roam_shm_bootstrap_response_recv_unix(int32_t control_fd, uint8_t *payload_buf,
                                              uintptr_t payload_len,
                                              struct RoamShmBootstrapResponseInfo *info,
                                              int32_t *doorbell_fd, int32_t *segment_fd,
                                              int32_t *mmap_control_fd);

/* roam's struct layouts. */
_Static_assert(sizeof(struct RoamSizeClass) == 8, "RoamSizeClass");
_Static_assert(offsetof(struct RoamSizeClass, slot_size) == 0, "slot_size");
_Static_assert(offsetof(struct RoamSizeClass, count) == 4, "count");
_Static_assert(sizeof(struct RoamVarSlotHandle) == 12, "RoamVarSlotHandle");
_Static_assert(offsetof(struct RoamVarSlotHandle, extent_idx) == 1, "extent_idx");
_Static_assert(offsetof(struct RoamVarSlotHandle, slot_idx) == 4, "slot_idx");
_Static_assert(offsetof(struct RoamVarSlotHandle, generation) == 8, "generation");
_Static_assert(sizeof(struct RoamShmBootstrapResponseInfo) == 12, "ResponseInfo");
_Static_assert(offsetof(struct RoamShmBootstrapResponseInfo, status) == 0, "status");
_Static_assert(offsetof(struct RoamShmBootstrapResponseInfo, peer_id) == 4, "peer_id");
_Static_assert(offsetof(struct RoamShmBootstrapResponseInfo, payload_len) == 8, "payload_len");

/* The typedef'd spellings work too (style "both"). */
static void roam_compat_spellings(void) {
  RoamVarSlotHandle h = {0, 0, 0, 0};
  struct RoamVarSlotHandle *p = &h;
  RoamSizeClass c = {64, 1};
  RoamShmBootstrapResponseInfo info = {0, 0, 0};
  CHECK(p->class_idx == 0 && c.count == 1 && info.status == 0);
  CHECK_EQ(roam_var_slot_pool_calculate_size(&c, 1), 64 + 64 + 64);
}

void suite_roam_compat(void) {
  fprintf(stderr, "roam compatibility\n");
  RUN(roam_compat_spellings);
}
