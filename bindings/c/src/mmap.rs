//! `roam_mmap_*`: the mmap control channel (layout notes §7). A host announces each
//! region it maps for MMAP_REF frames with `roam_mmap_control_send`; a guest keeps a
//! `RoamMmapAttachments` registry that receives the announcements and resolves
//! `(map_id, generation, offset, len)` to pointers.
//!
//! Stricter than roam: a datagram of the wrong length, a missing fd, `MSG_CTRUNC`,
//! a mapping longer than its file, or a duplicate `(map_id, generation)` is a
//! terminal error (sticky: later drains fail too) instead of being mapped or
//! ignored; mappings are read-only (the guest never writes a host's payload).
//! The registry works on its own duplicate of the control fd, so the caller keeps
//! ownership of the fd it passed (as with roam) and may close it at any time.
//!
//! Thread safety: every function is thread-safe (the registry has a mutex).
//! Pointers from `resolve_ptr` stay valid until `roam_mmap_attachments_destroy`.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Mutex;

use roam_shm::segment::mmap_ctrl::{self, MmapAttachments};

use crate::status::{ffi_guard, set_last_error};

/// Opaque guest-side registry of the regions a host attached, resolved by
/// `(map_id, map_generation)`.
#[derive(Debug)]
pub struct RoamMmapAttachments {
    inner: Mutex<MmapAttachments>,
}

impl RoamMmapAttachments {
    fn lock(&self) -> std::sync::MutexGuard<'_, MmapAttachments> {
        // A panic inside a registry call leaves it consistent (maps are inserted
        // whole), so a poisoned lock is taken over.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Send one attach message (16 bytes: map id, generation, mapping length) with
/// `mapping_fd` in `SCM_RIGHTS` over the datagram control socket. Returns 0, or -1
/// on a negative fd, a full socket queue (`EAGAIN`: retry later), a closed peer or
/// any other send failure. `mapping_fd` stays owned by the caller.
///
/// Thread-safe.
///
/// # Safety
/// The fds, if >= 0, must be open for the duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_mmap_control_send(
    control_fd: i32,
    mapping_fd: i32,
    map_id: u32,
    map_generation: u32,
    mapping_length: u64,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_mmap_control_send";
        if control_fd < 0 || mapping_fd < 0 {
            set_last_error(format!(
                "{f}: invalid fd (control {control_fd}, mapping {mapping_fd})"
            ));
            return -1;
        }
        // SAFETY: both >= 0 and open for the call (caller contract).
        let (ctl, fd) = unsafe {
            (
                BorrowedFd::borrow_raw(control_fd),
                BorrowedFd::borrow_raw(mapping_fd),
            )
        };
        match mmap_ctrl::send_attach(ctl, fd, map_id, map_generation, mapping_length) {
            Ok(()) => 0,
            Err(e) => {
                set_last_error(format!("{f}: {e}"));
                -1
            }
        }
    })
}

/// Create a guest-side registry reading attach messages from `control_fd` (the
/// guest's end of the control socketpair; set non-blocking here). The registry works
/// on a close-on-exec duplicate of the fd, so the caller still owns `control_fd`.
/// Returns NULL on a negative or invalid fd.
///
/// Thread-safe.
///
/// # Safety
/// `control_fd`, if >= 0, must be open for the duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_mmap_attachments_create(control_fd: i32) -> *mut RoamMmapAttachments {
    ffi_guard(std::ptr::null_mut(), || {
        let f = "roam_mmap_attachments_create";
        if control_fd < 0 {
            set_last_error(format!("{f}: invalid fd {control_fd}"));
            return std::ptr::null_mut();
        }
        // SAFETY: >= 0 and open for the call (caller contract).
        let fd = unsafe { BorrowedFd::borrow_raw(control_fd) };
        let owned = match fd.try_clone_to_owned() {
            Ok(o) => o,
            Err(e) => {
                set_last_error(format!("{f}: dup({control_fd}): {e}"));
                return std::ptr::null_mut();
            }
        };
        // Only a socket can carry attach messages; reject anything else up front.
        if let Err(e) = check_socket(owned.as_fd()) {
            set_last_error(format!("{f}: fd {control_fd}: {e}"));
            return std::ptr::null_mut();
        }
        match MmapAttachments::new(owned) {
            Ok(a) => Box::into_raw(Box::new(RoamMmapAttachments {
                inner: Mutex::new(a),
            })),
            Err(e) => {
                set_last_error(format!("{f}: {e}"));
                std::ptr::null_mut()
            }
        }
    })
}

fn check_socket(fd: BorrowedFd<'_>) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open (borrowed) and `st` is a valid, writable stat buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err("not a socket".into());
    }
    Ok(())
}

/// Receive every queued attach message (until the socket would block or reports
/// EOF) and map each region read-only. Returns how many were mapped, or -1 on a NULL
/// argument or a terminal error (malformed message, missing fd, mapping failure);
/// a terminal error is sticky: every later call returns -1 too.
///
/// Thread-safe.
///
/// # Safety
/// `attachments` is NULL or a live pointer from `roam_mmap_attachments_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_mmap_attachments_drain_control(
    attachments: *mut RoamMmapAttachments,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_mmap_attachments_drain_control";
        if attachments.is_null() {
            set_last_error(format!("{f}: attachments is NULL"));
            return -1;
        }
        // SAFETY: non-null and live (contract); shared access (the mutex serializes).
        let a = unsafe { &*attachments };
        match a.lock().drain_control() {
            Ok(n) => i32::try_from(n).unwrap_or(i32::MAX),
            Err(e) => {
                set_last_error(format!("{f}: {e}"));
                -1
            }
        }
    })
}

/// Resolve an MMAP_REF to a pointer to its `payload_len` bytes. Returns 0 and
/// writes `*out_ptr`; -1 on a NULL argument or an offset beyond the address space;
/// -2 if `(map_id, map_generation)` is not attached (drain first); -3 if
/// `offset + len` overflows; -4 if it is past the end of the mapping.
///
/// Thread-safe. The pointer stays valid until `roam_mmap_attachments_destroy`; the
/// bytes are read-only.
///
/// # Safety
/// `attachments` is NULL or live; `out_ptr` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_mmap_attachments_resolve_ptr(
    attachments: *const RoamMmapAttachments,
    map_id: u32,
    map_generation: u32,
    map_offset: u64,
    payload_len: u32,
    out_ptr: *mut *const u8,
) -> i32 {
    ffi_guard(-1, || {
        let f = "roam_mmap_attachments_resolve_ptr";
        if attachments.is_null() || out_ptr.is_null() {
            set_last_error(format!("{f}: attachments or out_ptr is NULL"));
            return -1;
        }
        // SAFETY: non-null and live (contract).
        let a = unsafe { &*attachments };
        match a
            .lock()
            .resolve(map_id, map_generation, map_offset, payload_len)
        {
            Ok(p) => {
                // SAFETY: non-null (checked) and writable (contract).
                unsafe { out_ptr.write(p) };
                0
            }
            Err(e) => {
                set_last_error(format!(
                    "{f}: ({map_id}, {map_generation}, {map_offset}, {payload_len}): {e}"
                ));
                e.code()
            }
        }
    })
}

/// Destroy a registry: unmap every region and close its fd duplicate. NULL is
/// accepted and ignored. Pointers from `resolve_ptr` become invalid.
///
/// Not thread-safe with other calls on the same registry.
///
/// # Safety
/// `attachments` is NULL or a live pointer from `roam_mmap_attachments_create`, not
/// used again afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roam_mmap_attachments_destroy(attachments: *mut RoamMmapAttachments) {
    ffi_guard((), || {
        if !attachments.is_null() {
            // SAFETY: from Box::into_raw in create, not freed before (contract).
            drop(unsafe { Box::from_raw(attachments) });
        }
    })
}
