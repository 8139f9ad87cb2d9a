/* Intentionally empty: this module only carries the link to libroam_shm_swift
 * (see module.modulemap). The API is in roam_shm.h (CRoamShm) and CRoamShmFFI.h. */
