//! Shared mappings that other processes can map too.
//!
//! - [`MmapRegion`]: a named file (typically under `/dev/shm`) mapped `MAP_SHARED`. This is
//!   what roam 7.x guests need: they open the segment by the path the host sends them
//!   (notes §13), so a roam-compatible segment must be file-backed.
//! - [`ShmRegion`]: anonymous shareable memory (a `memfd` on Linux, an immediately
//!   unlinked `shm_open` object elsewhere) whose descriptor is passed to the peer
//!   (`SCM_RIGHTS` or inheritance).
//!
//! # SIGBUS
//! Touching a page of a shared mapping that lies past the end of its file raises
//! `SIGBUS`. Both types therefore check the file size before mapping (a short file is
//! [`MmapError::TooShort`], never a crash) and never map more than the file holds. What
//! they cannot prevent is a peer truncating the file *afterwards*:
//! - a memfd can be protected with [`ShmRegion::seal_shrink`] (`F_SEAL_SHRINK`);
//! - a regular or `/dev/shm` file cannot be sealed (seals only exist for memfds created
//!   with `MFD_ALLOW_SEALING`), so a file-backed segment relies on its permissions
//!   (created `0600` by default) and on trusting every process that can open it.
//!
//! On tmpfs, `ftruncate` reserves no memory, so a full `/dev/shm` also turns into `SIGBUS`
//! at first touch; [`MmapOptions::preallocate`] reserves the pages at creation instead.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use memmap2::MmapRaw;

use crate::region::Region;

/// Permission bits of files created by [`MmapRegion::create`] unless the caller asks for
/// others (roam itself uses `0666`; nothing in the format depends on the mode).
pub const DEFAULT_FILE_MODE: u32 = 0o600;

/// What happens to a [`MmapRegion`]'s file when the region is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCleanup {
    /// Unlink the path (if it still names the file this region mapped). Mappings other
    /// processes hold stay valid; the memory is freed when the last one goes away.
    Delete,
    /// Leave the file in place.
    Keep,
}

/// Options for [`MmapRegion::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmapOptions {
    mode: u32,
    cleanup: FileCleanup,
    preallocate: bool,
}

impl Default for MmapOptions {
    fn default() -> Self {
        MmapOptions {
            mode: DEFAULT_FILE_MODE,
            cleanup: FileCleanup::Delete,
            preallocate: false,
        }
    }
}

impl MmapOptions {
    /// Defaults: mode [`DEFAULT_FILE_MODE`], cleanup [`FileCleanup::Delete`], no
    /// preallocation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits of the new file (`& 0o7777`). They are applied with `fchmod`
    /// after creation, so the process umask does not change them.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o7777;
        self
    }

    /// Cleanup policy applied when the region is dropped.
    pub fn cleanup(mut self, cleanup: FileCleanup) -> Self {
        self.cleanup = cleanup;
        self
    }

    /// Reserve the file's blocks at creation (`posix_fallocate`), so a full tmpfs fails
    /// here with an error instead of raising `SIGBUS` at first touch. Ignored on
    /// platforms without `posix_fallocate`.
    pub fn preallocate(mut self, on: bool) -> Self {
        self.preallocate = on;
        self
    }
}

/// Errors of [`MmapRegion`] and [`ShmRegion`]. `what` names the file (its path, or the
/// shared-memory object's name and descriptor).
#[derive(Debug, thiserror::Error)]
pub enum MmapError {
    /// `create` found an existing file at the path (`O_EXCL`).
    #[error("{path}: refusing to create, the file already exists", path = .path.display())]
    AlreadyExists {
        /// The path.
        path: PathBuf,
    },
    /// Creating the file failed.
    #[error("{path}: cannot create: {source}", path = .path.display())]
    Create {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Opening an existing file failed.
    #[error("{path}: cannot open: {source}", path = .path.display())]
    Open {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The path names something other than a regular file (a directory, FIFO, device).
    #[error("{what}: not a regular file")]
    NotRegularFile {
        /// The file.
        what: String,
    },
    /// A mapping of zero bytes was requested.
    #[error("{what}: the length must be non-zero")]
    ZeroLength {
        /// The file.
        what: String,
    },
    /// The file is shorter than required (empty, or shorter than a header says).
    #[error("{what}: the file is {actual} bytes, at least {required} are required")]
    TooShort {
        /// The file.
        what: String,
        /// Its size.
        actual: u64,
        /// The size required.
        required: u64,
    },
    /// A size does not fit this process's address space (or `off_t`).
    #[error("{what}: {len} bytes do not fit the address space")]
    TooLarge {
        /// The file.
        what: String,
        /// The size.
        len: u64,
    },
    /// `grow` was asked for fewer bytes than are mapped.
    #[error("{what}: cannot shrink a shared mapping from {current} to {requested} bytes")]
    Shrink {
        /// The file.
        what: String,
        /// The mapped length.
        current: usize,
        /// The requested length.
        requested: usize,
    },
    /// Someone truncated the file below the length this process maps; touching the
    /// pages past the new end would raise `SIGBUS`.
    #[error("{what}: the file shrank to {file_len} bytes, below the {mapped_len} bytes mapped")]
    FileShrank {
        /// The file.
        what: String,
        /// Its current size.
        file_len: u64,
        /// The mapped length.
        mapped_len: usize,
    },
    /// A system call failed.
    #[error("{what}: {op} failed: {source}")]
    Io {
        /// The file.
        what: String,
        /// The operation (`ftruncate`, `mmap`, `fstat`, ...).
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Sealing is not available for this object or platform.
    #[error("{what}: file sealing is not supported here")]
    SealUnsupported {
        /// The file.
        what: String,
    },
}

/// Result alias of this module.
pub type Result<T, E = MmapError> = std::result::Result<T, E>;

fn io_err<'a>(what: &'a str, op: &'static str) -> impl FnOnce(io::Error) -> MmapError + 'a {
    move |source| MmapError::Io {
        what: what.to_owned(),
        op,
        source,
    }
}

fn to_usize(what: &str, len: u64) -> Result<usize> {
    // Mappings are indexed with isize offsets, and off_t is signed: stay below both.
    match usize::try_from(len) {
        Ok(n) if n <= isize::MAX as usize && i64::try_from(len).is_ok() => Ok(n),
        _ => Err(MmapError::TooLarge {
            what: what.to_owned(),
            len,
        }),
    }
}

/// The part shared by both region kinds: an open file and its current mapping.
#[derive(Debug)]
struct Mapping {
    file: File,
    map: MmapRaw,
}

impl Mapping {
    /// Map `len` bytes of `file` (the caller checked the file holds at least `len`).
    fn map(file: File, len: usize, what: &str) -> Result<Mapping> {
        if len == 0 {
            return Err(MmapError::ZeroLength {
                what: what.to_owned(),
            });
        }
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(io_err(what, "mmap"))?;
        Ok(Mapping { file, map })
    }

    fn file_len(&self, what: &str) -> Result<u64> {
        Ok(self.file.metadata().map_err(io_err(what, "fstat"))?.len())
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn region(&self) -> Region<'_> {
        // SAFETY: the mapping is valid for `len` bytes until it is dropped or replaced,
        // which needs `&mut self` (grow/remap) or dropping `self`; the returned view
        // borrows `self`, so it cannot outlive either. memmap2 never returns a null
        // pointer for a non-empty mapping, and `map` refuses empty ones.
        unsafe { Region::from_raw(self.map.as_mut_ptr(), self.map.len()) }
    }

    /// Extend the file (unless a peer already made it large enough) and map `new_len`.
    fn grow(&mut self, new_len: usize, what: &str) -> Result<()> {
        let current = self.len();
        if new_len < current {
            return Err(MmapError::Shrink {
                what: what.to_owned(),
                current,
                requested: new_len,
            });
        }
        if new_len == current {
            return Ok(());
        }
        let new_len_u64 = new_len as u64;
        to_usize(what, new_len_u64)?;
        // Never truncate downwards: a peer may already have grown the file further, and
        // shrinking it would SIGBUS that peer.
        if self.file_len(what)? < new_len_u64 {
            self.file
                .set_len(new_len_u64)
                .map_err(io_err(what, "ftruncate"))?;
        }
        self.replace_map(new_len, what)
    }

    /// Map the whole file again if it is larger than the mapping (a peer grew it);
    /// require at least `min_len` bytes. Returns the mapped length.
    fn remap_with_min_len(&mut self, min_len: u64, what: &str) -> Result<usize> {
        let file_len = self.file_len(what)?;
        let mapped_len = self.len();
        if file_len < mapped_len as u64 {
            return Err(MmapError::FileShrank {
                what: what.to_owned(),
                file_len,
                mapped_len,
            });
        }
        if file_len < min_len {
            return Err(MmapError::TooShort {
                what: what.to_owned(),
                actual: file_len,
                required: min_len,
            });
        }
        let new_len = to_usize(what, file_len)?;
        if new_len != mapped_len {
            self.replace_map(new_len, what)?;
        }
        Ok(new_len)
    }

    fn replace_map(&mut self, new_len: usize, what: &str) -> Result<()> {
        // Map first, then drop the old mapping: on failure the old one stays usable.
        let map = memmap2::MmapOptions::new()
            .len(new_len)
            .map_raw(&self.file)
            .map_err(io_err(what, "mmap"))?;
        self.map = map;
        Ok(())
    }
}

/// Set the mode and size of a freshly created file and map it.
fn finish_create(file: File, len: usize, opts: &MmapOptions, what: &str) -> Result<Mapping> {
    let mode = nix::sys::stat::Mode::from_bits_truncate(opts.mode as nix::libc::mode_t);
    nix::sys::stat::fchmod(&file, mode).map_err(|e| io_err(what, "fchmod")(e.into()))?;
    file.set_len(len as u64)
        .map_err(io_err(what, "ftruncate"))?;
    if opts.preallocate {
        preallocate(&file, len as u64, what)?;
    }
    Mapping::map(file, len, what)
}

/// Check an opened file's size against `min_len` and map all of it.
fn map_existing(file: File, min_len: u64, what: &str) -> Result<Mapping> {
    let meta = file.metadata().map_err(io_err(what, "fstat"))?;
    let required = min_len.max(1);
    if meta.len() < required {
        return Err(MmapError::TooShort {
            what: what.to_owned(),
            actual: meta.len(),
            required,
        });
    }
    let len = to_usize(what, meta.len())?;
    Mapping::map(file, len, what)
}

/// A file mapped `MAP_SHARED`, read-write.
///
/// The whole file is mapped; [`MmapRegion::region`] hands out a view tied to `&self`, and
/// the operations that replace the mapping ([`grow`](MmapRegion::grow),
/// [`remap_to_file_len`](MmapRegion::remap_to_file_len)) need `&mut self`, so no view can
/// survive a remap.
#[derive(Debug)]
pub struct MmapRegion {
    mapping: Mapping,
    path: PathBuf,
    what: String,
    cleanup: FileCleanup,
}

impl MmapRegion {
    /// Create a new file at `path` (`O_CREAT | O_EXCL`: an existing file is
    /// [`MmapError::AlreadyExists`]), give it `opts`' mode (default `0600`), size it to
    /// `len` bytes and map it. If any step after creation fails the file is removed.
    pub fn create(path: impl AsRef<Path>, len: usize, opts: &MmapOptions) -> Result<MmapRegion> {
        let path = path.as_ref().to_path_buf();
        let what = path.display().to_string();
        if len == 0 {
            return Err(MmapError::ZeroLength { what });
        }
        to_usize(&what, len as u64)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            // Created with at most the requested bits (the umask may remove some);
            // the fchmod below sets them exactly.
            .mode(opts.mode)
            .open(&path)
            .map_err(|source| {
                if source.kind() == io::ErrorKind::AlreadyExists {
                    MmapError::AlreadyExists { path: path.clone() }
                } else {
                    MmapError::Create {
                        path: path.clone(),
                        source,
                    }
                }
            })?;
        // The file is ours from here: remove it if we fail before returning.
        let mapping = match finish_create(file, len, opts, &what) {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        Ok(MmapRegion {
            mapping,
            path,
            what,
            cleanup: opts.cleanup,
        })
    }

    /// Map an existing file read-write, whole. An empty file is
    /// [`MmapError::TooShort`]. Cleanup is [`FileCleanup::Keep`].
    pub fn open(path: impl AsRef<Path>) -> Result<MmapRegion> {
        Self::open_with_min_len(path, 1)
    }

    /// Like [`open`](MmapRegion::open), but the file must hold at least `min_len` bytes
    /// (e.g. the total size a header read beforehand claims); a shorter file is
    /// [`MmapError::TooShort`] instead of a `SIGBUS` later.
    pub fn open_with_min_len(path: impl AsRef<Path>, min_len: u64) -> Result<MmapRegion> {
        let path = path.as_ref().to_path_buf();
        let what = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| MmapError::Open {
                path: path.clone(),
                source,
            })?;
        let meta = file.metadata().map_err(io_err(&what, "fstat"))?;
        if !meta.file_type().is_file() {
            return Err(MmapError::NotRegularFile { what });
        }
        let mapping = map_existing(file, min_len, &what)?;
        Ok(MmapRegion {
            mapping,
            path,
            what,
            cleanup: FileCleanup::Keep,
        })
    }

    /// A view of the whole mapping, valid while `self` is borrowed.
    pub fn region(&self) -> Region<'_> {
        self.mapping.region()
    }

    /// Mapped length in bytes.
    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    /// Always false: empty mappings are refused.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The path this region was created or opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.mapping.file
    }

    /// Current cleanup policy.
    pub fn cleanup(&self) -> FileCleanup {
        self.cleanup
    }

    /// Change the cleanup policy (e.g. a host keeping the file for a debugger).
    pub fn set_cleanup(&mut self, cleanup: FileCleanup) {
        self.cleanup = cleanup;
    }

    /// Current size of the file (which a peer may have grown past [`len`](Self::len)).
    pub fn file_len(&self) -> Result<u64> {
        self.mapping.file_len(&self.what)
    }

    /// Grow the file to `new_len` bytes (unless it is already that large) and map it
    /// all. Shrinking is refused ([`MmapError::Shrink`]): other processes map the file.
    pub fn grow(&mut self, new_len: usize) -> Result<()> {
        self.mapping.grow(new_len, &self.what)
    }

    /// Map the whole file again after a peer grew it; returns the new mapped length
    /// (unchanged if the file did not grow). A file that shrank below the mapping is
    /// [`MmapError::FileShrank`].
    pub fn remap_to_file_len(&mut self) -> Result<usize> {
        self.mapping.remap_with_min_len(1, &self.what)
    }

    /// Like [`remap_to_file_len`](Self::remap_to_file_len), but the file must hold at
    /// least `min_len` bytes (e.g. a `current_size` read from the header).
    pub fn remap_with_min_len(&mut self, min_len: u64) -> Result<usize> {
        self.mapping.remap_with_min_len(min_len, &self.what)
    }
}

impl AsFd for MmapRegion {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.mapping.file.as_fd()
    }
}

impl AsRawFd for MmapRegion {
    fn as_raw_fd(&self) -> RawFd {
        self.mapping.file.as_raw_fd()
    }
}

impl Drop for MmapRegion {
    fn drop(&mut self) {
        if self.cleanup != FileCleanup::Delete {
            return;
        }
        // Only unlink the path if it still names our file: someone may have replaced it
        // (e.g. a new host created a fresh segment after ours was deleted by hand).
        let ours = match (self.mapping.file.metadata(), std::fs::metadata(&self.path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn preallocate(file: &File, len: u64, what: &str) -> Result<()> {
    // `len` was checked to fit i64 (to_usize) by the caller.
    let len = i64::try_from(len).map_err(|_| MmapError::TooLarge {
        what: what.to_owned(),
        len,
    })?;
    nix::fcntl::posix_fallocate(file, 0, len).map_err(|e| io_err(what, "posix_fallocate")(e.into()))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn preallocate(_file: &File, _len: u64, _what: &str) -> Result<()> {
    Ok(())
}

/// Anonymous shareable memory: a `memfd` (Linux, `MFD_CLOEXEC | MFD_ALLOW_SEALING`) or,
/// elsewhere, a `shm_open` object unlinked right after creation. The memory lives as
/// long as some process holds the descriptor or a mapping; pass [`ShmRegion::fd`] to the
/// peer (`SCM_RIGHTS` or inheritance) and map it there with [`ShmRegion::from_fd`].
///
/// Note that roam 7.x guests open the segment by path (notes §13): a segment meant for
/// them must be a [`MmapRegion`] instead.
#[derive(Debug)]
pub struct ShmRegion {
    mapping: Mapping,
    what: String,
}

/// Longest memfd name Linux accepts (`NAME_MAX` minus the `memfd:` prefix).
#[cfg(any(target_os = "linux", target_os = "android"))]
const MEMFD_NAME_MAX: usize = 249;

impl ShmRegion {
    /// Create `len` bytes of zeroed shareable memory. `name` is informational (it shows
    /// in `/proc/<pid>/fd` on Linux); names that are too long are truncated.
    pub fn create(name: &str, len: usize) -> Result<ShmRegion> {
        let mut what = format!("shm {name:?}");
        if len == 0 {
            return Err(MmapError::ZeroLength { what });
        }
        let len_u64 = len as u64;
        to_usize(&what, len_u64)?;
        let fd = create_anonymous(name, &what)?;
        what = format!("shm {name:?} (fd {})", fd.as_raw_fd());
        let file = File::from(fd);
        file.set_len(len_u64).map_err(io_err(&what, "ftruncate"))?;
        let mapping = Mapping::map(file, len, &what)?;
        Ok(ShmRegion { mapping, what })
    }

    /// Map a received descriptor, whole. An empty object is [`MmapError::TooShort`].
    pub fn from_fd(fd: OwnedFd) -> Result<ShmRegion> {
        Self::from_fd_with_min_len(fd, 1)
    }

    /// Map a received descriptor, which must hold at least `min_len` bytes
    /// ([`MmapError::TooShort`] otherwise, never a later `SIGBUS`).
    pub fn from_fd_with_min_len(fd: OwnedFd, min_len: u64) -> Result<ShmRegion> {
        let what = format!("fd {}", fd.as_raw_fd());
        let file = File::from(fd);
        let meta = file.metadata().map_err(io_err(&what, "fstat"))?;
        if meta.file_type().is_dir() {
            return Err(MmapError::NotRegularFile { what });
        }
        let mapping = map_existing(file, min_len, &what)?;
        Ok(ShmRegion { mapping, what })
    }

    /// The descriptor, to pass to another process (it is close-on-exec: clear that with
    /// [`crate::fd::clear_cloexec`] in the child, or send it with `SCM_RIGHTS`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.mapping.file.as_fd()
    }

    /// A new close-on-exec descriptor for the same memory (e.g. to hand over ownership).
    pub fn try_clone_fd(&self) -> Result<OwnedFd> {
        self.fd()
            .try_clone_to_owned()
            .map_err(io_err(&self.what, "dup"))
    }

    /// A view of the whole mapping, valid while `self` is borrowed.
    pub fn region(&self) -> Region<'_> {
        self.mapping.region()
    }

    /// Mapped length in bytes.
    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    /// Always false: empty mappings are refused.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Current size of the object (which a peer may have grown past [`len`](Self::len)).
    pub fn file_len(&self) -> Result<u64> {
        self.mapping.file_len(&self.what)
    }

    /// Grow the object to `new_len` bytes (unless it is already that large) and map it
    /// all. Shrinking is refused ([`MmapError::Shrink`]).
    pub fn grow(&mut self, new_len: usize) -> Result<()> {
        self.mapping.grow(new_len, &self.what)
    }

    /// Map the whole object again after a peer grew it; returns the mapped length.
    pub fn remap_to_file_len(&mut self) -> Result<usize> {
        self.mapping.remap_with_min_len(1, &self.what)
    }

    /// Like [`remap_to_file_len`](Self::remap_to_file_len), requiring `min_len` bytes.
    pub fn remap_with_min_len(&mut self, min_len: u64) -> Result<usize> {
        self.mapping.remap_with_min_len(min_len, &self.what)
    }

    /// Forbid shrinking the memfd from now on (`F_SEAL_SHRINK`), for every process that
    /// holds it: nobody can then truncate it under the mappers, which would make their
    /// accesses `SIGBUS`. Growing stays allowed. Seals cannot be removed.
    ///
    /// Linux only, and only for memfds created with `MFD_ALLOW_SEALING` (as
    /// [`ShmRegion::create`] does); file-backed segments ([`MmapRegion`]) cannot be
    /// sealed at all. Elsewhere this is [`MmapError::SealUnsupported`].
    pub fn seal_shrink(&self) -> Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use nix::fcntl::{FcntlArg, SealFlag, fcntl};
            match fcntl(self.fd(), FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK)) {
                Ok(_) => Ok(()),
                // EINVAL: not a sealable file; EPERM: F_SEAL_SEAL is set.
                Err(nix::errno::Errno::EINVAL) => Err(MmapError::SealUnsupported {
                    what: self.what.clone(),
                }),
                Err(e) => Err(io_err(&self.what, "fcntl(F_ADD_SEALS)")(e.into())),
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            Err(MmapError::SealUnsupported {
                what: self.what.clone(),
            })
        }
    }

    /// Whether shrinking is sealed (false where sealing does not exist).
    pub fn is_shrink_sealed(&self) -> Result<bool> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use nix::fcntl::{FcntlArg, SealFlag, fcntl};
            match fcntl(self.fd(), FcntlArg::F_GET_SEALS) {
                Ok(bits) => {
                    Ok(SealFlag::from_bits_truncate(bits).contains(SealFlag::F_SEAL_SHRINK))
                }
                Err(nix::errno::Errno::EINVAL) => Ok(false),
                Err(e) => Err(io_err(&self.what, "fcntl(F_GET_SEALS)")(e.into())),
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            Ok(false)
        }
    }
}

impl AsFd for ShmRegion {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

impl AsRawFd for ShmRegion {
    fn as_raw_fd(&self) -> RawFd {
        self.mapping.file.as_raw_fd()
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn create_anonymous(name: &str, what: &str) -> Result<OwnedFd> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    // Truncate on a char boundary; an interior NUL is refused by memfd_create (EINVAL).
    let mut end = name.len().min(MEMFD_NAME_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    memfd_create(
        &name[..end],
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(|e| io_err(what, "memfd_create")(e.into()))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn create_anonymous(_name: &str, what: &str) -> Result<OwnedFd> {
    use nix::errno::Errno;
    use nix::fcntl::OFlag;
    use nix::sys::mman::{shm_open, shm_unlink};
    use nix::sys::stat::Mode;
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: std::sync::Mutex<u32> = std::sync::Mutex::new(0);

    for _ in 0..16 {
        let n = {
            let mut c = COUNTER.lock().unwrap_or_else(|p| p.into_inner());
            *c = c.wrapping_add(1);
            *c
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        // At most 29 bytes: macOS limits shm names to 31 (PSHMNAMLEN).
        let shm_name = format!(
            "/roam-{:x}-{:x}-{:x}",
            std::process::id(),
            n & 0xffff,
            nanos
        );
        match shm_open(
            shm_name.as_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::S_IRUSR | Mode::S_IWUSR,
        ) {
            Ok(fd) => {
                // Unlink at once: the object lives on through the descriptor only.
                let _ = shm_unlink(shm_name.as_str());
                crate::fd::set_cloexec(&fd).map_err(|e| MmapError::Io {
                    what: what.to_owned(),
                    op: "fcntl(F_SETFD)",
                    source: io::Error::other(e),
                })?;
                return Ok(fd);
            }
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(io_err(what, "shm_open")(e.into())),
        }
    }
    Err(io_err(what, "shm_open")(io::Error::from(
        io::ErrorKind::AlreadyExists,
    )))
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp_path(tag: &str) -> PathBuf {
        use crate::sync::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!(
            "roam-mmap-test-{}-{}-{}",
            std::process::id(),
            tag,
            // Relaxed: only uniqueness of the name matters; it orders nothing.
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn write_bytes(r: Region<'_>, off: usize, bytes: &[u8]) {
        let p = r.ptr_at(off, bytes.len()).unwrap();
        // SAFETY: in bounds (checked above); no other thread touches these bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) }
    }

    fn read_bytes(r: Region<'_>, off: usize, n: usize) -> Vec<u8> {
        let p = r.ptr_at(off, n).unwrap();
        let mut v = vec![0; n];
        // SAFETY: in bounds (checked above); no other thread touches these bytes.
        unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), n) }
        v
    }

    #[test]
    fn created_file_is_0600_and_sized() {
        let p = tmp_path("mode");
        let r = MmapRegion::create(&p, 4096, &MmapOptions::new()).unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!(meta.len(), 4096);
        assert_eq!(r.len(), 4096);
        assert_eq!(read_bytes(r.region(), 0, 16), vec![0; 16]);
    }

    #[test]
    fn requested_mode_is_honoured_despite_umask() {
        let p = tmp_path("mode666");
        let _r = MmapRegion::create(&p, 64, &MmapOptions::new().mode(0o666)).unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o666);
    }

    #[test]
    fn create_refuses_existing_file() {
        let p = tmp_path("excl");
        let _r = MmapRegion::create(&p, 64, &MmapOptions::new()).unwrap();
        let err = MmapRegion::create(&p, 64, &MmapOptions::new()).unwrap_err();
        assert!(matches!(err, MmapError::AlreadyExists { .. }), "{err}");
        assert!(err.to_string().contains(&p.display().to_string()));
    }

    #[test]
    fn zero_length_is_refused() {
        let p = tmp_path("zero");
        assert!(matches!(
            MmapRegion::create(&p, 0, &MmapOptions::new()),
            Err(MmapError::ZeroLength { .. })
        ));
        assert!(!p.exists());
        assert!(matches!(
            ShmRegion::create("zero", 0),
            Err(MmapError::ZeroLength { .. })
        ));
    }

    #[test]
    fn short_file_is_too_short_not_sigbus() {
        let p = tmp_path("short");
        std::fs::write(&p, [0u8; 100]).unwrap();
        let err = MmapRegion::open_with_min_len(&p, 4096).unwrap_err();
        match &err {
            MmapError::TooShort {
                actual, required, ..
            } => assert_eq!((*actual, *required), (100, 4096)),
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains("100 bytes"), "{err}");
        let r = MmapRegion::open_with_min_len(&p, 100).unwrap();
        assert_eq!(r.len(), 100);
        drop(r);
        std::fs::write(&p, []).unwrap();
        assert!(matches!(
            MmapRegion::open(&p),
            Err(MmapError::TooShort { actual: 0, .. })
        ));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn open_refuses_directories_and_missing_files() {
        assert!(matches!(
            MmapRegion::open(std::env::temp_dir()),
            Err(MmapError::Open { .. } | MmapError::NotRegularFile { .. })
        ));
        assert!(matches!(
            MmapRegion::open(tmp_path("missing")),
            Err(MmapError::Open { .. })
        ));
    }

    #[test]
    fn delete_vs_keep_cleanup() {
        let p = tmp_path("delete");
        drop(MmapRegion::create(&p, 64, &MmapOptions::new()).unwrap());
        assert!(!p.exists());

        let p = tmp_path("keep");
        let opts = MmapOptions::new().cleanup(FileCleanup::Keep);
        drop(MmapRegion::create(&p, 64, &opts).unwrap());
        assert!(p.exists());
        // open() keeps by default; set_cleanup(Delete) removes.
        drop(MmapRegion::open(&p).unwrap());
        assert!(p.exists());
        let mut r = MmapRegion::open(&p).unwrap();
        r.set_cleanup(FileCleanup::Delete);
        drop(r);
        assert!(!p.exists());
    }

    #[test]
    fn delete_spares_a_replaced_file() {
        let p = tmp_path("replaced");
        let r = MmapRegion::create(&p, 64, &MmapOptions::new()).unwrap();
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"someone else's").unwrap();
        drop(r);
        assert!(p.exists());
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn two_mappings_share_bytes_and_grow_remap() {
        let p = tmp_path("grow");
        let mut a = MmapRegion::create(&p, 4096, &MmapOptions::new().preallocate(true)).unwrap();
        let mut b = MmapRegion::open(&p).unwrap();
        write_bytes(a.region(), 10, b"hello");
        assert_eq!(read_bytes(b.region(), 10, 5), b"hello");

        a.grow(3 * 4096).unwrap();
        assert_eq!(a.len(), 3 * 4096);
        assert_eq!(read_bytes(a.region(), 10, 5), b"hello");
        write_bytes(a.region(), 2 * 4096 + 7, b"far");
        assert_eq!(b.len(), 4096);
        assert_eq!(b.file_len().unwrap(), 3 * 4096);
        assert_eq!(b.remap_to_file_len().unwrap(), 3 * 4096);
        assert_eq!(read_bytes(b.region(), 2 * 4096 + 7, 3), b"far");
        assert!(matches!(
            b.remap_with_min_len(4 * 4096),
            Err(MmapError::TooShort { .. })
        ));

        // grow never shrinks the file a peer made larger.
        b.grow(4 * 4096).unwrap();
        a.grow(3 * 4096).unwrap();
        assert_eq!(a.file_len().unwrap(), 4 * 4096);
        assert!(matches!(a.grow(100), Err(MmapError::Shrink { .. })));
    }

    #[test]
    fn remap_reports_a_shrunk_file() {
        let p = tmp_path("shrunk");
        let a = MmapRegion::create(&p, 8192, &MmapOptions::new()).unwrap();
        let mut b = MmapRegion::open(&p).unwrap();
        a.file().set_len(4096).unwrap();
        assert!(matches!(
            b.remap_to_file_len(),
            Err(MmapError::FileShrank {
                file_len: 4096,
                mapped_len: 8192,
                ..
            })
        ));
    }

    #[test]
    fn shm_region_shares_through_fd() {
        let a = ShmRegion::create("roam-test", 8192).unwrap();
        let b = ShmRegion::from_fd(a.try_clone_fd().unwrap()).unwrap();
        assert_eq!(b.len(), 8192);
        write_bytes(a.region(), 100, b"memfd");
        assert_eq!(read_bytes(b.region(), 100, 5), b"memfd");
        assert!(
            nix::fcntl::FdFlag::from_bits_truncate(
                nix::fcntl::fcntl(a.fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap()
            )
            .contains(nix::fcntl::FdFlag::FD_CLOEXEC)
        );
        let c = ShmRegion::from_fd_with_min_len(a.try_clone_fd().unwrap(), 8193);
        assert!(matches!(c, Err(MmapError::TooShort { .. })));
    }

    #[test]
    fn shm_region_from_empty_fd_is_too_short() {
        let f = File::from(create_anonymous("empty", "empty").unwrap());
        assert!(matches!(
            ShmRegion::from_fd(OwnedFd::from(f)),
            Err(MmapError::TooShort { actual: 0, .. })
        ));
    }

    #[test]
    fn shm_region_grow_and_peer_remap() {
        let mut a = ShmRegion::create("grow", 4096).unwrap();
        let mut b = ShmRegion::from_fd(a.try_clone_fd().unwrap()).unwrap();
        a.grow(16384).unwrap();
        write_bytes(a.region(), 16000, b"end");
        assert_eq!(b.remap_to_file_len().unwrap(), 16384);
        assert_eq!(read_bytes(b.region(), 16000, 3), b"end");
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn sealed_memfd_refuses_shrink_but_grows() {
        let mut a = ShmRegion::create("seal", 8192).unwrap();
        assert!(!a.is_shrink_sealed().unwrap());
        a.seal_shrink().unwrap();
        assert!(a.is_shrink_sealed().unwrap());
        let dup = File::from(a.try_clone_fd().unwrap());
        let err = dup.set_len(4096).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::EPERM));
        assert_eq!(a.file_len().unwrap(), 8192);
        a.grow(16384).unwrap();
        assert_eq!(a.len(), 16384);
        // The seal travels with the object: a peer's mapping sees it too.
        let b = ShmRegion::from_fd(a.try_clone_fd().unwrap()).unwrap();
        assert!(b.is_shrink_sealed().unwrap());
    }

    #[test]
    fn file_backed_segments_cannot_be_sealed() {
        // Documented limitation: regular files reject F_ADD_SEALS.
        let p = tmp_path("noseal");
        let r = MmapRegion::create(&p, 64, &MmapOptions::new()).unwrap();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use nix::fcntl::{FcntlArg, SealFlag, fcntl};
            assert!(fcntl(r.file(), FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK)).is_err());
        }
        drop(r);
    }
}
