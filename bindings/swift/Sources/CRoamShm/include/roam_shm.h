/* Placeholder until the C ABI (bindings/c/include/roam_shm.h) is merged. */
