//! Address-stable mapping of a segment file or memfd.
//!
//! A segment can grow (the host ftruncates it and stores the new `current_size`),
//! and every process then maps the new tail. If growing moved the mapping, every raw
//! pointer into it (ring headers, the pool, payload views handed to C, Python and
//! Swift) would dangle. So a [`SegmentMapping`] first reserves a large range of
//! address space (`PROT_NONE`, `MAP_NORESERVE`: it costs no memory) and maps the
//! segment with `MAP_FIXED` at the start of that reservation; growing maps the longer
//! file over the same start address. The base address never changes for the life of
//! the mapping.
//!
//! A file shorter than what is being mapped would raise SIGBUS on access; every map
//! and remap therefore checks the file's length first (`fstat`) and fails with
//! [`MappingError::TooShort`]. Memfd-backed segments are sealed against shrinking
//! (`F_SEAL_SHRINK`) so that no process can truncate them under the others.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Mutex;

use crate::region::Region;

/// Default address-space reservation for one segment: 64 GiB of virtual addresses
/// (no memory), so a segment can grow up to that size without moving.
pub const DEFAULT_RESERVATION: usize = 64 << 30;

/// Errors of creating, opening, mapping or growing a segment.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// A system call failed.
    #[error("{op} failed{}: {source}", path.as_ref().map(|p| format!(" for {}", p.display())).unwrap_or_default())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file involved, if any.
        path: Option<PathBuf>,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is shorter than the length that must be mapped.
    #[error(
        "segment file is {actual} bytes, but {required} bytes must be mapped (truncated or not a segment)"
    )]
    TooShort {
        /// Bytes required.
        required: u64,
        /// Bytes the file has.
        actual: u64,
    },
    /// The requested length is zero or exceeds the address-space reservation.
    #[error("segment length {len} is invalid (must be 1..={max} bytes)")]
    BadLength {
        /// Requested length.
        len: u64,
        /// Largest length this mapping can grow to.
        max: u64,
    },
}

fn io_err(op: &'static str, path: Option<&Path>) -> impl FnOnce(std::io::Error) -> MappingError {
    let path = path.map(Path::to_path_buf);
    move |source| MappingError::Io { op, path, source }
}

fn last_os(op: &'static str, path: Option<&Path>) -> MappingError {
    io_err(op, path)(std::io::Error::last_os_error())
}

/// What happens to a file-backed segment's path when the creating mapping is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathCleanup {
    /// Unlink the file (the host owns it; attached processes keep their mappings).
    Delete,
    /// Leave the file in place (e.g. `roam-shm segment create`).
    Keep,
}

/// An address-stable shared mapping of a segment (see the module docs).
pub struct SegmentMapping {
    base: NonNull<u8>,
    reservation: usize,
    /// Currently mapped length (grows only). Guarded so `&self` can remap.
    mapped: Mutex<usize>,
    fd: OwnedFd,
    path: Option<PathBuf>,
    cleanup: PathCleanup,
    guard: super::sigbus::Guard,
}

// SAFETY: the mapping is MAP_SHARED memory whose contents are only accessed through
// atomics and algorithm-owned ranges (see `Region`); the struct's own mutable state
// (`mapped`) is behind a Mutex, and base/reservation/fd are immutable.
unsafe impl Send for SegmentMapping {}
// SAFETY: see `Send`.
unsafe impl Sync for SegmentMapping {}

impl std::fmt::Debug for SegmentMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentMapping")
            .field("base", &self.base)
            .field("len", &self.len())
            .field("path", &self.path)
            .finish()
    }
}

fn file_len(fd: BorrowedFd<'_>, path: Option<&Path>) -> Result<u64, MappingError> {
    // SAFETY: fstat writes into the zeroed stat struct we own; fd is a valid open fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(last_os("fstat", path));
    }
    Ok(st.st_size as u64)
}

impl SegmentMapping {
    /// Create a new segment file at `path` (O_CREAT|O_EXCL, `mode`, e.g. 0o600),
    /// size it to `len` bytes (zero-filled) and map it.
    pub fn create_file(
        path: &Path,
        len: u64,
        mode: u32,
        cleanup: PathCleanup,
    ) -> Result<SegmentMapping, MappingError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(io_err("create segment file", Some(path)))?;
        // The umask may have removed bits the caller asked for: set the mode exactly.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod segment file", Some(path)))?;
        let fd: OwnedFd = file.into();
        // On failure the half-built mapping is dropped; remove the file whatever the
        // cleanup policy, since it never became a segment.
        Self::map_fd(fd, len, Some(path.to_path_buf()), cleanup, true).inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        })
    }

    /// Create an anonymous segment (memfd on Linux, an immediately unlinked POSIX
    /// shm object elsewhere) of `len` bytes, sealed against shrinking where possible.
    /// Its fd can be passed to other processes; on Linux `/proc/<pid>/fd/<fd>` is
    /// also a path other processes of the same user can open.
    pub fn create_anonymous(name: &str, len: u64) -> Result<SegmentMapping, MappingError> {
        let cname = CString::new(name.replace('\0', "_")).unwrap_or_else(|_| c"roam-shm".into());
        #[cfg(target_os = "linux")]
        let fd = {
            // SAFETY: cname is a valid NUL-terminated string; flags are valid.
            let raw = unsafe {
                libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
            };
            if raw < 0 {
                return Err(last_os("memfd_create", None));
            }
            // SAFETY: memfd_create returned a new fd that we now own.
            unsafe { OwnedFd::from_raw_fd(raw) }
        };
        #[cfg(not(target_os = "linux"))]
        let fd = {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let unique =
                CString::new(format!("/roam-{}-{nanos}", std::process::id())).expect("no NUL");
            let _ = &cname;
            // SAFETY: valid C string, standard flags.
            let raw = unsafe {
                libc::shm_open(
                    unique.as_ptr(),
                    libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )
            };
            if raw < 0 {
                return Err(last_os("shm_open", None));
            }
            // SAFETY: valid C string; the object stays alive through `raw`.
            unsafe { libc::shm_unlink(unique.as_ptr()) };
            // SAFETY: shm_open returned a new fd that we now own.
            unsafe { OwnedFd::from_raw_fd(raw) }
        };
        let m = Self::map_fd(fd, len, None, PathCleanup::Keep, true)?;
        #[cfg(target_os = "linux")]
        {
            // SAFETY: F_ADD_SEALS on our own memfd; no memory is touched.
            let r =
                unsafe { libc::fcntl(m.fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) };
            if r != 0 {
                return Err(last_os("fcntl(F_ADD_SEALS)", None));
            }
        }
        Ok(m)
    }

    /// Map an existing segment file by path (read-write, shared), `min_len` bytes at
    /// least (typically the header first, then [`SegmentMapping::remap`]).
    pub fn open_path(path: &Path, min_len: u64) -> Result<SegmentMapping, MappingError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err("open segment file", Some(path)))?;
        Self::map_fd(
            file.into(),
            min_len,
            Some(path.to_path_buf()),
            PathCleanup::Keep,
            false,
        )
    }

    /// Map a segment received as a file descriptor (bootstrap), `min_len` bytes at least.
    pub fn from_fd(fd: OwnedFd, min_len: u64) -> Result<SegmentMapping, MappingError> {
        Self::map_fd(fd, min_len, None, PathCleanup::Keep, false)
    }

    fn map_fd(
        fd: OwnedFd,
        len: u64,
        path: Option<PathBuf>,
        cleanup: PathCleanup,
        size_it: bool,
    ) -> Result<SegmentMapping, MappingError> {
        let reservation = DEFAULT_RESERVATION;
        if len == 0 || len > reservation as u64 {
            return Err(MappingError::BadLength {
                len,
                max: reservation as u64,
            });
        }
        if size_it {
            // SAFETY: ftruncate on an fd we own.
            if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
                return Err(last_os("ftruncate", path.as_deref()));
            }
        }
        // SAFETY: an anonymous PROT_NONE reservation at an address of the kernel's
        // choosing; it touches no existing mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reservation,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(last_os("mmap (reserve)", path.as_deref()));
        }
        let m = SegmentMapping {
            guard: super::sigbus::register(base as usize, reservation),
            base: NonNull::new(base.cast()).expect("mmap returned non-null"),
            reservation,
            mapped: Mutex::new(0),
            fd,
            path,
            cleanup,
        };
        m.remap(len)?;
        Ok(m)
    }

    /// Map the first `new_len` bytes of the file at the same base address (growing
    /// the mapped length; a smaller `new_len` than already mapped is a no-op). Fails
    /// with [`MappingError::TooShort`] if the file is shorter, instead of SIGBUS later.
    pub fn remap(&self, new_len: u64) -> Result<usize, MappingError> {
        let mut mapped = self.mapped.lock().unwrap_or_else(|p| p.into_inner());
        if new_len <= *mapped as u64 {
            return Ok(*mapped);
        }
        if new_len > self.reservation as u64 {
            return Err(MappingError::BadLength {
                len: new_len,
                max: self.reservation as u64,
            });
        }
        let actual = file_len(self.fd.as_fd(), self.path.as_deref())?;
        if actual < new_len {
            return Err(MappingError::TooShort {
                required: new_len,
                actual,
            });
        }
        let len = new_len as usize;
        // SAFETY: [base, base+len) lies inside our own reservation (len <= reservation),
        // so MAP_FIXED replaces only our PROT_NONE pages or our previous mapping of
        // the same file at the same offsets (same contents: MAP_SHARED of one file).
        let p = unsafe {
            libc::mmap(
                self.base.as_ptr().cast(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                self.fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last_os("mmap (fixed)", self.path.as_deref()));
        }
        debug_assert_eq!(p.cast::<u8>(), self.base.as_ptr());
        *mapped = len;
        Ok(len)
    }

    /// Grow the file to `new_len` bytes (ftruncate) and map it. Host side.
    pub fn grow(&self, new_len: u64) -> Result<usize, MappingError> {
        if new_len > self.reservation as u64 {
            return Err(MappingError::BadLength {
                len: new_len,
                max: self.reservation as u64,
            });
        }
        let actual = file_len(self.fd.as_fd(), self.path.as_deref())?;
        if new_len > actual {
            // SAFETY: ftruncate on our own fd, growing only.
            if unsafe { libc::ftruncate(self.fd.as_raw_fd(), new_len as libc::off_t) } != 0 {
                return Err(last_os("ftruncate (grow)", self.path.as_deref()));
            }
        }
        self.remap(new_len)
    }

    /// The mapped bytes. The base address is stable for the mapping's whole life.
    pub fn region(&self) -> Region<'_> {
        let len = *self.mapped.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: [base, base+len) is mapped read-write until `self` is dropped, and
        // never unmapped or moved before (remap only extends it at the same base).
        unsafe { Region::from_raw(self.base.as_ptr(), len) }
    }

    /// Base address of the mapping.
    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Currently mapped length.
    pub fn len(&self) -> usize {
        *self.mapped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether nothing is mapped (never true for a successfully created mapping).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's current length (fstat).
    pub fn file_len(&self) -> Result<u64, MappingError> {
        file_len(self.fd.as_fd(), self.path.as_deref())
    }

    /// The segment's file descriptor (to pass to guests).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The file path, for file-backed segments.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A path other processes can open to map this segment: the file path, or for
    /// an anonymous segment on Linux `/proc/<pid>/fd/<fd>`.
    pub fn shareable_path(&self) -> PathBuf {
        match &self.path {
            Some(p) => p.clone(),
            None => PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                self.fd.as_raw_fd()
            )),
        }
    }

    /// Whether the file was truncated under this mapping: a SIGBUS on access was
    /// absorbed (see [`super::sigbus`]) and the lost pages now read as zeros.
    /// Everything read from such a mapping must be treated as garbage.
    pub fn is_truncated(&self) -> bool {
        self.guard.truncated()
    }

    /// Change what happens to the file path on drop.
    pub fn set_cleanup(&mut self, cleanup: PathCleanup) {
        self.cleanup = cleanup;
    }
}

impl Drop for SegmentMapping {
    fn drop(&mut self) {
        // Unguard first: once unmapped, the address range may go to another mapping.
        self.guard.unregister();
        // SAFETY: [base, base+reservation) is exactly our reservation (which contains
        // the file mapping); nothing derived from it outlives self (Regions borrow self).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.reservation) };
        if let (Some(path), PathCleanup::Delete) = (&self.path, self.cleanup) {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("roam-map-{tag}-{}", std::process::id()))
    }

    #[test]
    fn file_mapping_is_0600_stable_on_growth_and_deleted() {
        let path = tmp_path("grow");
        let m = SegmentMapping::create_file(&path, 4096, 0o600, PathCleanup::Delete).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let base = m.base();
        // SAFETY: 4096 bytes are mapped.
        unsafe { *m.base().add(100) = 7 };
        m.grow(1 << 20).unwrap();
        assert_eq!(m.base(), base, "growth must not move the mapping");
        assert_eq!(m.len(), 1 << 20);
        // SAFETY: now 1 MiB is mapped.
        unsafe {
            assert_eq!(*m.base().add(100), 7);
            *m.base().add((1 << 20) - 1) = 9;
        }
        let other = SegmentMapping::open_path(&path, 1 << 20).unwrap();
        // SAFETY: both map the same file.
        unsafe { assert_eq!(*other.base().add((1 << 20) - 1), 9) };
        drop(other);
        drop(m);
        assert!(!path.exists());
    }

    #[test]
    fn short_file_is_an_error_not_sigbus() {
        let path = tmp_path("short");
        let m = SegmentMapping::create_file(&path, 4096, 0o600, PathCleanup::Delete).unwrap();
        let err = SegmentMapping::open_path(&path, 8192).unwrap_err();
        assert!(
            matches!(
                err,
                MappingError::TooShort {
                    required: 8192,
                    actual: 4096
                }
            ),
            "{err}"
        );
        assert!(matches!(
            m.remap(1 << 20),
            Err(MappingError::TooShort { .. })
        ));
        assert!(SegmentMapping::create_file(&path, 4096, 0o600, PathCleanup::Keep).is_err());
    }

    #[test]
    fn truncation_under_us_is_flagged_not_sigbus() {
        let path = tmp_path("trunc");
        let m = SegmentMapping::create_file(&path, 1 << 16, 0o600, PathCleanup::Delete).unwrap();
        // SAFETY: the first 64 KiB are mapped.
        unsafe { *m.base().add(40_000) = 5 };
        assert!(!m.is_truncated());
        // Another party truncates the file under the mapping.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        // SAFETY: the page is still mapped in our address space; the access faults and
        // the guard replaces it with a zero page instead of killing the process.
        let v = unsafe { std::ptr::read_volatile(m.base().add(40_000)) };
        assert_eq!(v, 0);
        assert!(m.is_truncated());
    }

    #[test]
    fn memfd_is_sealed_and_shareable_by_fd() {
        let m = SegmentMapping::create_anonymous("roam-test", 8192).unwrap();
        // SAFETY: ftruncate attempt on our own fd; the seal must refuse it.
        let r = unsafe { libc::ftruncate(m.fd().as_raw_fd(), 0) };
        assert_ne!(r, 0, "F_SEAL_SHRINK must refuse truncation");
        let dup = m.fd().try_clone_to_owned().unwrap();
        let other = SegmentMapping::from_fd(dup, 8192).unwrap();
        // SAFETY: both map the same memfd.
        unsafe {
            *m.base().add(5000) = 42;
            assert_eq!(*other.base().add(5000), 42);
        }
        assert!(m.shareable_path().to_string_lossy().starts_with("/proc/"));
        let by_path = SegmentMapping::open_path(&m.shareable_path(), 8192).unwrap();
        // SAFETY: same memfd opened through /proc.
        unsafe { assert_eq!(*by_path.base().add(5000), 42) };
    }
}
