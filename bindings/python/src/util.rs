//! Small helpers shared by the classes: timeouts, lock acquisition that does not
//! stall other Python threads, source buffers, and filling `Py_buffer` views.

use std::ffi::c_int;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;

/// Copies larger than this are done with the GIL released.
pub const GIL_FREE_COPY: usize = 4096;

/// Longest time a wait runs before checking for signals (Ctrl-C).
pub const WAIT_SLICE: Duration = Duration::from_millis(50);

/// A deadline from a Python `timeout=` argument: `None` waits forever; the number is
/// seconds (0 = do not wait). Negative or NaN values are a `ValueError`.
pub fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(PyValueError::new_err(format!(
            "timeout must be a non-negative number of seconds or None, got {t}"
        ))),
        Some(t) if t.is_infinite() => Ok(None),
        Some(t) => {
            let d = Duration::try_from_secs_f64(t)
                .map_err(|e| PyValueError::new_err(format!("timeout {t}: {e}")))?;
            Ok(Instant::now().checked_add(d))
        }
    }
}

/// A duration from seconds (`ValueError` if negative, NaN or infinite).
pub fn duration(secs: f64, what: &str) -> PyResult<Duration> {
    if secs.is_nan() || secs < 0.0 || secs.is_infinite() {
        return Err(PyValueError::new_err(format!(
            "{what} must be a finite non-negative number of seconds, got {secs}"
        )));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// How long the next wait slice may be: `None` once the deadline has passed.
pub fn next_slice(deadline: Option<Instant>, max: Duration) -> Option<Duration> {
    match deadline {
        None => Some(max),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                None
            } else {
                Some(left.min(max))
            }
        }
    }
}

/// A non-negative size argument (`ValueError` for negative values).
pub fn size_arg(v: i64, what: &str) -> PyResult<usize> {
    usize::try_from(v)
        .map_err(|_| PyValueError::new_err(format!("{what} must be non-negative, got {v}")))
}

/// Lock `m` with the GIL held, but wait for a contended lock with the GIL released, so
/// a thread copying a large payload under the lock never stalls every Python thread.
///
/// Lock discipline (prevents GIL/lock deadlocks): a lock is held either with the GIL
/// held and no Python call inside (nothing that can allocate, run the GC or re-enter
/// the lock), or entirely inside a `Python::detach` closure. Never both.
pub fn lock<'a, T: Send>(py: Python<'_>, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
    loop {
        match m.try_lock() {
            Ok(g) => return g,
            Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                py.detach(|| drop(m.lock()));
            }
        }
    }
}

/// Lock from a context without a `Python` token (inside `detach`).
pub fn lock_nogil<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A raw pointer that may cross into a `detach` closure. The code creating one keeps
/// the pointee alive (an export, or a lock) for as long as the closure runs.
#[derive(Debug, Clone, Copy)]
pub struct SendPtr(pub *mut u8);
// SAFETY: the pointer is only dereferenced by the closure it is moved into, while the
// owner of the memory is kept alive and unchanged by the caller (see each use).
unsafe impl Send for SendPtr {}

/// A payload to send: a C-contiguous buffer export of any buffer-protocol object
/// (zero-copy read of the source), or, for non-contiguous sources, a bytes copy.
pub struct Source {
    buf: PyUntypedBuffer,
}

impl Source {
    /// Export `obj`'s buffer. Non-contiguous buffers are first copied into `bytes`.
    pub fn new(obj: &Bound<'_, PyAny>) -> PyResult<Source> {
        let buf = PyUntypedBuffer::get(obj)?;
        if buf.is_c_contiguous() {
            return Ok(Source { buf });
        }
        drop(buf);
        let flat = PyMemoryView::from(obj)?.call_method0("tobytes")?;
        Ok(Source {
            buf: PyUntypedBuffer::get(&flat)?,
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.buf.len_bytes()
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        let len = self.len();
        if len == 0 {
            return &[];
        }
        // SAFETY: the export is C-contiguous (checked in `new`), `len_bytes` long, and
        // stays valid while `self.buf` (the export) is alive; `&self` borrows it.
        unsafe { std::slice::from_raw_parts(self.buf.buf_ptr() as *const u8, len) }
    }
}

/// Fill `view` for an export of `len` bytes at `ptr`, owned by `owner`
/// (`PyBuffer_FillInfo`: handles every `flags` combination, refuses writable
/// requests on read-only memory with `BufferError`).
///
/// # Safety
/// `view` is the pointer CPython passed to `bf_getbuffer`; `ptr..ptr+len` stays valid
/// until the matching `bf_releasebuffer` (the caller's export counting guarantees it).
pub unsafe fn fill_view(
    py: Python<'_>,
    view: *mut ffi::Py_buffer,
    owner: &Bound<'_, PyAny>,
    ptr: *mut u8,
    len: usize,
    readonly: bool,
    flags: c_int,
) -> PyResult<()> {
    let len = isize::try_from(len).map_err(|_| PyValueError::new_err("buffer too large"))?;
    // SAFETY: forwarded contract; PyBuffer_FillInfo increments owner's refcount on
    // success (view->obj) and sets an exception and returns -1 on failure.
    let r = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            ptr.cast(),
            len,
            c_int::from(readonly),
            flags,
        )
    };
    if r != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(())
}

/// Copy `len` bytes from `src` into a new `bytes` object, with the GIL released for
/// large copies. The caller keeps `src` valid for the duration (export or lock).
pub fn copy_to_bytes<'py, F>(py: Python<'py>, len: usize, fill: F) -> PyResult<Bound<'py, PyAny>>
where
    F: FnOnce(&mut [u8]) -> Result<(), crate::errors::Fail> + Send,
{
    let mut failure = None;
    let b = pyo3::types::PyBytes::new_with(py, len, |dst| {
        let r = if len > GIL_FREE_COPY {
            py.detach(|| fill(dst))
        } else {
            fill(dst)
        };
        if let Err(e) = r {
            failure = Some(e);
        }
        Ok(())
    })?;
    match failure {
        Some(f) => Err(f.into_pyerr(py)),
        None => Ok(b.into_any()),
    }
}
