//! The lock-free primitives over a shared region: ``SharedMemory`` (an address-stable
//! mapping of a memfd or file), ``BipBuffer``, ``SpscRing`` (u64 entries),
//! ``VarSlotPool`` with its ``Slot`` views, ``Doorbell`` and ``WaitCell``.
//!
//! Every primitive keeps its region's mapping alive (`Arc`), so no pointer it uses can
//! dangle. Writable views (``memoryview(shm)``, ``memoryview(slot)``, ``memoryview(grant)``)
//! are counted; closing the region, freeing the slot or committing the grant raises
//! ``BufferError`` while views are alive.

use std::collections::HashMap;
use std::ffi::c_int;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

use roam_shm::bipbuf::{BIPBUF_HEADER_SIZE, BipBufHeader, BipBufRaw};
use roam_shm::doorbell::{DrainOutcome, SignalResult, WaitOutcome};
use roam_shm::segment::mapping::{PathCleanup, SegmentMapping};
use roam_shm::segment::var_pool::{self, ClassStats, RawVarSlotPool, SizeClass, VarSlotHandle};
use roam_shm::spsc::{SpscConsumer, SpscProducer, SpscRingHeader, SpscRingRaw};
use roam_shm::waiter::{WAIT_CELL_SIZE, WaitCell as CoreWaitCell, WaitConfig, WaitResult};

use crate::errors::{Dual, FResult, Fail, IntoPy};
use crate::util::{
    GIL_FREE_COPY, SendPtr, Source, WAIT_SLICE, copy_to_bytes, deadline, fill_view, lock,
    next_slice, size_arg,
};

/// Duplicate a descriptor number passed from Python (the caller keeps its own):
/// negative numbers are a `ValueError`, a closed one reports the failed `dup`.
fn dup_fd(py: Python<'_>, fd: i32) -> PyResult<OwnedFd> {
    if fd < 0 {
        return Err(PyValueError::new_err(format!("invalid descriptor {fd}")));
    }
    // SAFETY: the descriptor is only borrowed to duplicate it; an invalid one makes
    // the dup fail (EBADF), which is reported.
    unsafe { BorrowedFd::borrow_raw(fd) }
        .try_clone_to_owned()
        .map_err(|e| {
            Fail::Session(roam_shm::segment::SessionError::Io {
                op: "dup",
                source: e,
            })
        })
        .py_err(py)
}

fn cfg_err(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    Dual::Config.msg(py, msg)
}

// ----------------------------------------------------------------------------------
// SharedMemory

/// The mapping shared by a region object and every primitive built on it.
pub struct RegionInner {
    map: SegmentMapping,
    /// Exported memoryviews of pool slots in this mapping, by slot address, over every
    /// pool object built on it (a slot with views is never freed by this process).
    slot_exports: Mutex<HashMap<usize, usize>>,
}

impl RegionInner {
    fn base(&self) -> *mut u8 {
        self.map.base()
    }

    /// Check that `[offset, offset + len)` is mapped and `offset` is `align`-aligned.
    fn check(&self, py: Python<'_>, offset: usize, len: usize, align: usize) -> PyResult<*mut u8> {
        let end = offset.checked_add(len);
        if end.is_none_or(|e| e > self.map.len()) {
            return Err(cfg_err(
                py,
                format!(
                    "{len} bytes at offset {offset} do not fit the {}-byte region",
                    self.map.len()
                ),
            ));
        }
        if offset % align != 0 {
            return Err(cfg_err(
                py,
                format!("offset {offset} must be a multiple of {align}"),
            ));
        }
        // SAFETY: offset + len <= mapped length (checked), so the pointer stays inside
        // the mapping.
        Ok(unsafe { self.base().add(offset) })
    }
}

struct RegionState {
    inner: Option<Arc<RegionInner>>,
    exports: usize,
}

/// Shared memory that other processes can map: an anonymous sealed memfd, or a file
/// (e.g. under /dev/shm). Supports the buffer protocol (``memoryview(shm)`` is a
/// writable view of all of it) and is the region the primitives are built in.
#[pyclass(frozen, module = "roam_shm", name = "SharedMemory")]
pub struct SharedMemory {
    state: Mutex<RegionState>,
    size: usize,
}

impl SharedMemory {
    fn from_map(map: SegmentMapping) -> SharedMemory {
        let size = map.len();
        SharedMemory {
            state: Mutex::new(RegionState {
                inner: Some(Arc::new(RegionInner {
                    map,
                    slot_exports: Mutex::new(HashMap::new()),
                })),
                exports: 0,
            }),
            size,
        }
    }

    /// The mapping (ClosedError if closed).
    pub fn inner(&self, py: Python<'_>) -> PyResult<Arc<RegionInner>> {
        lock(py, &self.state)
            .inner
            .clone()
            .ok_or_else(|| Fail::Closed("the shared memory is closed".into()).into_pyerr(py))
    }
}

#[pymethods]
impl SharedMemory {
    /// Create ``size`` zeroed bytes: an anonymous memfd (sealed against shrinking), or
    /// a new file at ``path`` (mode 0600, removed when this object is closed).
    #[new]
    #[pyo3(signature = (size, *, path=None))]
    fn new(py: Python<'_>, size: i64, path: Option<PathBuf>) -> PyResult<SharedMemory> {
        let size = size_arg(size, "size")?;
        if size == 0 {
            return Err(cfg_err(py, "size must be positive"));
        }
        let map = py
            .detach(move || match path {
                Some(p) => SegmentMapping::create_file(&p, size as u64, 0o600, PathCleanup::Delete),
                None => SegmentMapping::create_anonymous("roam-shm-region", size as u64),
            })
            .py_err(py)?;
        Ok(SharedMemory::from_map(map))
    }

    /// Map an existing file (or ``/proc/<pid>/fd/<n>`` path of another process's
    /// memfd) whole.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, py: Python<'_>, path: PathBuf) -> PyResult<SharedMemory> {
        let map = py
            .detach(move || -> FResult<SegmentMapping> {
                let len = std::fs::metadata(&path)
                    .map_err(|e| {
                        Fail::Session(roam_shm::segment::SessionError::Io {
                            op: "stat",
                            source: e,
                        })
                    })?
                    .len();
                if len == 0 {
                    return Err(Fail::Dual(
                        Dual::Config,
                        format!("{} is empty", path.display()),
                    ));
                }
                Ok(SegmentMapping::open_path(&path, len)?)
            })
            .py_err(py)?;
        Ok(SharedMemory::from_map(map))
    }

    /// Map the file or memfd behind descriptor ``fd`` (duplicated; the caller keeps
    /// ``fd``).
    #[classmethod]
    fn from_fd(_cls: &Bound<'_, PyType>, py: Python<'_>, fd: i32) -> PyResult<SharedMemory> {
        let owned = dup_fd(py, fd)?;
        let map = py
            .detach(move || -> FResult<SegmentMapping> {
                let len = std::fs::File::from(owned.try_clone().map_err(|e| {
                    Fail::Session(roam_shm::segment::SessionError::Io {
                        op: "dup",
                        source: e,
                    })
                })?)
                .metadata()
                .map_err(|e| {
                    Fail::Session(roam_shm::segment::SessionError::Io {
                        op: "fstat",
                        source: e,
                    })
                })?
                .len();
                if len == 0 {
                    return Err(Fail::Dual(Dual::Config, "the file is empty".into()));
                }
                Ok(SegmentMapping::from_fd(owned, len)?)
            })
            .py_err(py)?;
        Ok(SharedMemory::from_map(map))
    }

    /// Mapped size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    fn __len__(&self) -> usize {
        self.size
    }

    /// A path other processes can open (the file, or ``/proc/<pid>/fd/<n>``).
    #[getter]
    fn path(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self
            .inner(py)?
            .map
            .shareable_path()
            .to_string_lossy()
            .into_owned())
    }

    /// The descriptor (owned by this object; valid until it is closed).
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.inner(py)?.map.fd().as_raw_fd())
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        lock(py, &self.state).inner.is_none()
    }

    /// Drop this object's reference to the mapping (unmapped once no primitive built
    /// on it is alive either). Raises ``BufferError`` while memoryviews are alive.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let inner = {
            let mut st = lock(py, &self.state);
            if st.exports > 0 {
                let n = st.exports;
                drop(st);
                return Err(Fail::Buffer(format!(
                    "cannot close: {n} memoryview(s) of this shared memory are still alive"
                ))
                .into_pyerr(py));
            }
            st.inner.take()
        };
        py.detach(move || drop(inner));
        Ok(())
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyAny> {
        slf.clone().into_any()
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.path(py) {
            Ok(p) => format!("<roam_shm.SharedMemory size={} path={p:?}>", self.size),
            Err(_) => "<roam_shm.SharedMemory closed>".into(),
        }
    }

    /// # Safety
    /// Called by CPython with a valid `view`.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let inner = {
            let mut st = lock(py, &this.state);
            let inner = st.inner.clone();
            if inner.is_some() {
                st.exports += 1;
            }
            inner
        };
        let Some(inner) = inner else {
            return Err(Fail::Closed("the shared memory is closed".into()).into_pyerr(py));
        };
        // SAFETY: the export count prevents close() from dropping this object's
        // reference to the mapping until __releasebuffer__, and the mapping never moves.
        let r = unsafe {
            fill_view(
                py,
                view,
                slf.as_any(),
                inner.base(),
                this.size,
                false,
                flags,
            )
        };
        if r.is_err() {
            lock(py, &this.state).exports -= 1;
        }
        r
    }

    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`.
    unsafe fn __releasebuffer__(slf: Bound<'_, Self>, _view: *mut ffi::Py_buffer) {
        lock(slf.py(), &slf.get().state).exports -= 1;
    }
}

// ----------------------------------------------------------------------------------
// BipBuffer

struct GrantState {
    id: u64,
    offset: u32,
    exports: usize,
}

struct BipState {
    grant: Option<GrantState>,
    next_id: u64,
}

/// A roam v7 BipBuffer (byte ring with a 128-byte header) at ``offset`` in a region.
/// One producer and one consumer, possibly in different processes.
#[pyclass(frozen, module = "roam_shm", name = "BipBuffer")]
pub struct BipBuffer {
    region: Arc<RegionInner>,
    raw: BipBufRaw,
    state: Arc<Mutex<BipState>>,
}

fn bip_err(py: Python<'_>, e: roam_shm::bipbuf::BipBufError) -> PyErr {
    use roam_shm::bipbuf::BipBufError as E;
    let msg = e.to_string();
    match e {
        E::TooLarge { .. } => Dual::TooLarge.msg(py, msg),
        E::Corrupt { .. } => crate::errors::CorruptError::new_err(msg),
        E::InvalidCapacity { .. } => Dual::Config.msg(py, msg),
        E::CommitOverflow { .. } | E::ReleaseOverflow { .. } => PyValueError::new_err(msg),
        #[allow(unreachable_patterns)]
        _ => crate::errors::RoamError::new_err(msg),
    }
}

impl BipBuffer {
    fn build(
        py: Python<'_>,
        region: &SharedMemory,
        offset: i64,
        capacity: Option<u32>,
    ) -> PyResult<BipBuffer> {
        let inner = region.inner(py)?;
        let offset = size_arg(offset, "offset")?;
        let header = inner.check(py, offset, BIPBUF_HEADER_SIZE, 64)?;
        let raw = match capacity {
            Some(cap) => {
                if cap == 0 {
                    return Err(cfg_err(py, "capacity must be positive"));
                }
                let data = inner.check(py, offset + BIPBUF_HEADER_SIZE, cap as usize, 1)?;
                // SAFETY: header (64-aligned, 128 bytes) and data (cap bytes) lie inside
                // the mapping (checked) that `region` keeps alive; initialising is the
                // caller's documented one-time step before the ring is shared.
                unsafe { BipBufRaw::init(header.cast::<BipBufHeader>(), data, cap) }
            }
            None => {
                // SAFETY: the 128-byte header is inside the mapping (checked); only its
                // capacity atomic is read.
                let cap = unsafe {
                    BipBufRaw::attach(
                        header.cast::<BipBufHeader>(),
                        header.add(BIPBUF_HEADER_SIZE),
                    )
                }
                .map_err(|e| bip_err(py, e))?
                .capacity();
                let data = inner.check(py, offset + BIPBUF_HEADER_SIZE, cap as usize, 1)?;
                // SAFETY: header and its `cap` data bytes are inside the kept-alive
                // mapping (checked just above against the capacity read once).
                unsafe { BipBufRaw::from_parts(header.cast::<BipBufHeader>(), data, cap) }
            }
        }
        .map_err(|e| bip_err(py, e))?;
        Ok(BipBuffer {
            region: inner,
            raw,
            state: Arc::new(Mutex::new(BipState {
                grant: None,
                next_id: 1,
            })),
        })
    }
}

#[pymethods]
impl BipBuffer {
    /// Bytes a BipBuffer of ``capacity`` data bytes occupies (header included).
    #[staticmethod]
    fn required_size(capacity: u32) -> usize {
        BIPBUF_HEADER_SIZE + capacity as usize
    }

    /// Initialise a BipBuffer at ``offset`` (a multiple of 64) of ``region``.
    #[classmethod]
    fn create(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        region: PyRef<'_, SharedMemory>,
        offset: i64,
        capacity: u32,
    ) -> PyResult<BipBuffer> {
        BipBuffer::build(py, &region, offset, Some(capacity))
    }

    /// Attach to a BipBuffer another party initialised at ``offset``.
    #[classmethod]
    fn attach(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        region: PyRef<'_, SharedMemory>,
        offset: i64,
    ) -> PyResult<BipBuffer> {
        BipBuffer::build(py, &region, offset, None)
    }

    /// Data capacity in bytes.
    #[getter]
    fn capacity(&self) -> u32 {
        self.raw.capacity()
    }

    /// Whether nothing is readable.
    fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Producer: write ``data`` as one contiguous chunk; False if there is no room.
    fn try_write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        let src = Source::new(data)?;
        let bytes = src.bytes();
        let len = u32::try_from(bytes.len())
            .map_err(|_| Dual::TooLarge.msg(py, "data larger than 4 GiB"))?;
        if lock(py, &self.state).grant.is_some() {
            return Err(PyValueError::new_err(
                "a grant is outstanding; commit or cancel it first",
            ));
        }
        let Some(off) = self.raw.try_grant(len).map_err(|e| bip_err(py, e))? else {
            return Ok(false);
        };
        let dst = SendPtr(
            // SAFETY: the grant [off, off+len) lies inside the data area.
            unsafe { self.raw.data_ptr().add(off as usize) },
        );
        let copy = move || {
            let d = dst;
            // SAFETY: the producer owns the granted bytes until commit; the source is a
            // live export distinct from the ring.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), d.0, bytes.len()) }
        };
        if bytes.len() > GIL_FREE_COPY {
            py.detach(copy);
        } else {
            copy();
        }
        self.raw.commit(len).map_err(|e| bip_err(py, e))?;
        Ok(true)
    }

    /// Producer: reserve ``size`` contiguous bytes; a writable ``Grant`` or None if
    /// there is no room. Commit it (``grant.commit(n)``) to publish.
    fn grant(slf: &Bound<'_, Self>, size: i64) -> PyResult<Option<Grant>> {
        let py = slf.py();
        let this = slf.get();
        let size = u32::try_from(size_arg(size, "size")?)
            .map_err(|_| Dual::TooLarge.msg(py, "size larger than 4 GiB"))?;
        let mut st = lock(py, &this.state);
        if st.grant.is_some() {
            drop(st);
            return Err(PyValueError::new_err(
                "a grant is outstanding; commit or cancel it first",
            ));
        }
        let off = match this.raw.try_grant(size) {
            Ok(Some(off)) => off,
            Ok(None) => return Ok(None),
            Err(e) => {
                drop(st);
                return Err(bip_err(py, e));
            }
        };
        st.next_id += 1;
        let id = st.next_id;
        st.grant = Some(GrantState {
            id,
            offset: off,
            exports: 0,
        });
        drop(st);
        Ok(Some(Grant {
            ring: slf.clone().unbind(),
            id,
            len: size,
        }))
    }

    /// Consumer: copy and consume up to ``max`` readable bytes (one contiguous chunk);
    /// None if empty.
    #[pyo3(signature = (max=None))]
    fn read<'py>(&self, py: Python<'py>, max: Option<i64>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.read_inner(py, max, true)
    }

    /// Consumer: like ``read`` but without consuming.
    #[pyo3(signature = (max=None))]
    fn peek<'py>(&self, py: Python<'py>, max: Option<i64>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.read_inner(py, max, false)
    }

    /// Consumer: consume ``n`` bytes.
    fn release(&self, py: Python<'_>, n: u32) -> PyResult<()> {
        self.raw.release(n).map_err(|e| bip_err(py, e))
    }

    fn __repr__(&self) -> String {
        format!(
            "<roam_shm.BipBuffer capacity={} write={} read={} watermark={}>",
            self.raw.capacity(),
            self.raw.load_write(),
            self.raw.load_read(),
            self.raw.load_watermark()
        )
    }
}

impl BipBuffer {
    fn read_inner<'py>(
        &self,
        py: Python<'py>,
        max: Option<i64>,
        consume: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let max = match max {
            Some(m) => size_arg(m, "max")?,
            None => usize::MAX,
        };
        let Some((off, avail)) = self.raw.try_read().map_err(|e| bip_err(py, e))? else {
            return Ok(None);
        };
        let n = (avail as usize).min(max);
        // SAFETY: [off, off+avail) is committed data owned by the consumer until
        // released; n <= avail.
        let src = SendPtr(unsafe { self.raw.data_ptr().add(off as usize) });
        let b = copy_to_bytes(py, n, move |dst| {
            let s = src;
            // SAFETY: as above; the bytes are not released before this copy returns.
            unsafe { std::ptr::copy_nonoverlapping(s.0, dst.as_mut_ptr(), n) };
            Ok(())
        })?;
        if consume && n > 0 {
            self.raw.release(n as u32).map_err(|e| bip_err(py, e))?;
        }
        let _ = &self.region;
        Ok(Some(b))
    }
}

/// A writable producer grant of a ``BipBuffer``: fill ``memoryview(grant)`` then
/// ``commit(n)`` (n defaults to the whole grant) or ``cancel()``. As a context manager
/// it commits everything on normal exit and cancels on an exception.
#[pyclass(frozen, module = "roam_shm", name = "Grant")]
pub struct Grant {
    ring: Py<BipBuffer>,
    id: u64,
    len: u32,
}

impl Grant {
    fn finish(&self, py: Python<'_>, n: Option<u32>) -> PyResult<()> {
        let ring = self.ring.get();
        let mut st = lock(py, &ring.state);
        match &st.grant {
            Some(g) if g.id == self.id => {
                if g.exports > 0 {
                    let e = g.exports;
                    drop(st);
                    return Err(Fail::Buffer(format!(
                        "{e} memoryview(s) of this grant are still alive; release them first"
                    ))
                    .into_pyerr(py));
                }
            }
            _ => {
                drop(st);
                return Err(
                    Fail::Closed("the grant was already committed or cancelled".into())
                        .into_pyerr(py),
                );
            }
        }
        if let Some(n) = n {
            if n > self.len {
                drop(st);
                return Err(PyValueError::new_err(format!(
                    "cannot commit {n} bytes of a {}-byte grant",
                    self.len
                )));
            }
        }
        st.grant = None;
        drop(st);
        if let Some(n) = n {
            ring.raw.commit(n).map_err(|e| bip_err(py, e))?;
        }
        Ok(())
    }
}

#[pymethods]
impl Grant {
    /// Publish the first ``n`` bytes (default: all of them).
    #[pyo3(signature = (n=None))]
    fn commit(&self, py: Python<'_>, n: Option<u32>) -> PyResult<()> {
        self.finish(py, Some(n.unwrap_or(self.len)))
    }

    /// Abandon the grant (nothing is published).
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, None)
    }

    fn __len__(&self) -> usize {
        self.len as usize
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyAny> {
        slf.clone().into_any()
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if exc_type.is_none() {
            self.commit(py, None)?;
        } else {
            let _ = self.cancel(py);
        }
        Ok(false)
    }

    /// # Safety
    /// Called by CPython with a valid `view`.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let ring = this.ring.get();
        let off = {
            let mut st = lock(py, &ring.state);
            match st.grant.as_mut() {
                Some(g) if g.id == this.id => {
                    g.exports += 1;
                    g.offset
                }
                _ => {
                    drop(st);
                    return Err(Fail::Closed(
                        "the grant was already committed or cancelled".into(),
                    )
                    .into_pyerr(py));
                }
            }
        };
        // SAFETY: the grant [off, off+len) lies in the ring's data area inside the
        // kept-alive mapping; the export count keeps it uncommitted until release.
        let ptr = unsafe { ring.raw.data_ptr().add(off as usize) };
        // SAFETY: as above: the granted bytes stay reserved while the export lives.
        let r = unsafe { fill_view(py, view, slf.as_any(), ptr, this.len as usize, false, flags) };
        if r.is_err() {
            if let Some(g) = lock(py, &ring.state).grant.as_mut() {
                g.exports -= 1;
            }
        }
        r
    }

    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`.
    unsafe fn __releasebuffer__(slf: Bound<'_, Self>, _view: *mut ffi::Py_buffer) {
        let this = slf.get();
        let ring = this.ring.get();
        let mut st = lock(slf.py(), &ring.state);
        if let Some(g) = st.grant.as_mut() {
            if g.id == this.id {
                g.exports -= 1;
            }
        }
    }
}

// ----------------------------------------------------------------------------------
// SpscRing

struct Roles {
    producer: bool,
    consumer: bool,
}

/// A wait-free single-producer single-consumer ring of unsigned 64-bit integers at
/// ``offset`` in a region (192-byte header, then ``capacity`` entries).
#[pyclass(frozen, module = "roam_shm", name = "SpscRing")]
pub struct SpscRing {
    region: Arc<RegionInner>,
    raw: SpscRingRaw<u64>,
    roles: Mutex<Roles>,
}

fn spsc_err(py: Python<'_>, e: roam_shm::spsc::SpscError) -> PyErr {
    use roam_shm::spsc::SpscError as E;
    let msg = e.to_string();
    match e {
        E::Corrupt { .. } => crate::errors::CorruptError::new_err(msg),
        _ => Dual::Config.msg(py, msg),
    }
}

#[pymethods]
impl SpscRing {
    /// Bytes a ring of ``capacity`` entries occupies.
    #[staticmethod]
    fn required_size(capacity: u32) -> usize {
        SpscRingRaw::<u64>::required_size(capacity)
    }

    /// Initialise a ring of ``capacity`` (a power of two) entries at ``offset`` (a
    /// multiple of 64).
    #[classmethod]
    fn create(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        region: PyRef<'_, SharedMemory>,
        offset: i64,
        capacity: u32,
    ) -> PyResult<SpscRing> {
        let inner = region.inner(py)?;
        let offset = size_arg(offset, "offset")?;
        if !capacity.is_power_of_two() {
            return Err(cfg_err(
                py,
                format!("capacity {capacity} is not a power of two"),
            ));
        }
        let p = inner.check(py, offset, SpscRingRaw::<u64>::required_size(capacity), 64)?;
        // SAFETY: the ring's bytes are inside the kept-alive mapping (checked);
        // initialising before sharing is the caller's documented step.
        let raw = unsafe { SpscRingRaw::<u64>::init(p.cast::<SpscRingHeader>(), capacity) }
            .map_err(|e| spsc_err(py, e))?;
        Ok(SpscRing {
            region: inner,
            raw,
            roles: Mutex::new(Roles {
                producer: false,
                consumer: false,
            }),
        })
    }

    /// Attach to a ring another party initialised at ``offset``.
    #[classmethod]
    fn attach(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        region: PyRef<'_, SharedMemory>,
        offset: i64,
    ) -> PyResult<SpscRing> {
        let inner = region.inner(py)?;
        let offset = size_arg(offset, "offset")?;
        let p = inner.check(py, offset, SpscRingHeader::SIZE, 64)?;
        let available = inner.map.len() - offset;
        // SAFETY: `available` bytes from p are mapped (offset checked) and kept alive.
        let raw = unsafe { SpscRingRaw::<u64>::attach(p.cast::<SpscRingHeader>(), available) }
            .map_err(|e| spsc_err(py, e))?;
        Ok(SpscRing {
            region: inner,
            raw,
            roles: Mutex::new(Roles {
                producer: false,
                consumer: false,
            }),
        })
    }

    /// Capacity in entries.
    #[getter]
    fn capacity(&self) -> u32 {
        self.raw.capacity()
    }

    fn __len__(&self) -> usize {
        self.raw.len()
    }

    /// Become the producer (once per ring object; one producer overall).
    fn producer(&self, py: Python<'_>) -> PyResult<SpscRingProducer> {
        let mut roles = lock(py, &self.roles);
        if roles.producer {
            return Err(PyValueError::new_err(
                "this ring's producer was already taken",
            ));
        }
        roles.producer = true;
        // SAFETY: one producer per ring object (flag above; across processes it is the
        // documented contract); the mapping is kept alive by the Arc stored alongside.
        let p = unsafe { self.raw.producer() };
        Ok(SpscRingProducer {
            _region: self.region.clone(),
            p: Mutex::new(p),
        })
    }

    /// Become the consumer (once per ring object; one consumer overall).
    fn consumer(&self, py: Python<'_>) -> PyResult<SpscRingConsumer> {
        let mut roles = lock(py, &self.roles);
        if roles.consumer {
            return Err(PyValueError::new_err(
                "this ring's consumer was already taken",
            ));
        }
        roles.consumer = true;
        // SAFETY: as for producer().
        let c = unsafe { self.raw.consumer() };
        Ok(SpscRingConsumer {
            _region: self.region.clone(),
            c: Mutex::new(c),
        })
    }
}

/// The producer role of an ``SpscRing``.
#[pyclass(frozen, module = "roam_shm", name = "SpscRingProducer")]
pub struct SpscRingProducer {
    _region: Arc<RegionInner>,
    p: Mutex<SpscProducer<'static, u64>>,
}

#[pymethods]
impl SpscRingProducer {
    /// Push one value; False if the ring is full.
    fn push(&self, py: Python<'_>, value: u64) -> PyResult<bool> {
        let r = lock(py, &self.p).try_push_batch(&[value]);
        r.map(|n| n == 1).map_err(|e| spsc_err(py, e))
    }

    /// Push as many of ``values`` as fit; returns how many.
    fn push_batch(&self, py: Python<'_>, values: Vec<u64>) -> PyResult<usize> {
        let r = lock(py, &self.p).try_push_batch(&values);
        r.map_err(|e| spsc_err(py, e))
    }

    /// Entries that can certainly be pushed now.
    fn free_slots(&self, py: Python<'_>) -> PyResult<usize> {
        let r = lock(py, &self.p).free_slots();
        r.map_err(|e| spsc_err(py, e))
    }
}

/// The consumer role of an ``SpscRing``.
#[pyclass(frozen, module = "roam_shm", name = "SpscRingConsumer")]
pub struct SpscRingConsumer {
    _region: Arc<RegionInner>,
    c: Mutex<SpscConsumer<'static, u64>>,
}

#[pymethods]
impl SpscRingConsumer {
    /// Pop the oldest value, or None if empty.
    fn pop(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        let r = lock(py, &self.c).try_pop();
        r.map_err(|e| spsc_err(py, e))
    }

    /// The oldest value without consuming it, or None.
    fn peek(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        let r = lock(py, &self.c).try_peek();
        r.map_err(|e| spsc_err(py, e))
    }

    /// Pop up to ``max`` values, oldest first.
    fn pop_batch(&self, py: Python<'_>, max: i64) -> PyResult<Vec<u64>> {
        let max = size_arg(max, "max")?.min(1 << 20);
        let mut out = vec![0u64; max];
        let r = lock(py, &self.c).try_pop_batch(&mut out);
        let n = r.map_err(|e| spsc_err(py, e))?;
        out.truncate(n);
        Ok(out)
    }

    /// Entries that can certainly be popped now.
    fn ready_slots(&self, py: Python<'_>) -> PyResult<usize> {
        let r = lock(py, &self.c).ready_slots();
        r.map_err(|e| spsc_err(py, e))
    }
}

// ----------------------------------------------------------------------------------
// VarSlotPool

/// Occupancy of one size class.
#[pyclass(frozen, module = "roam_shm", name = "PoolClassStats")]
#[derive(Clone, Copy)]
pub struct PoolClassStats {
    /// Bytes per slot.
    #[pyo3(get)]
    slot_size: u32,
    /// Slots in the class.
    #[pyo3(get)]
    slot_count: u32,
    /// Slots currently allocated.
    #[pyo3(get)]
    allocated: u32,
}

impl From<ClassStats> for PoolClassStats {
    fn from(s: ClassStats) -> Self {
        PoolClassStats {
            slot_size: s.slot_size,
            slot_count: s.slot_count,
            allocated: s.allocated,
        }
    }
}

#[pymethods]
impl PoolClassStats {
    fn __repr__(&self) -> String {
        format!(
            "PoolClassStats(slot_size={}, slot_count={}, allocated={})",
            self.slot_size, self.slot_count, self.allocated
        )
    }
}

struct PoolInner {
    region: Arc<RegionInner>,
    pool: RawVarSlotPool,
}

/// The roam v7 variable-size slot pool at ``offset`` of a region.
#[pyclass(frozen, module = "roam_shm", name = "VarSlotPool")]
pub struct VarSlotPool {
    inner: Arc<PoolInner>,
}

fn classes_arg(py: Python<'_>, classes: Vec<(u32, u32)>) -> PyResult<Vec<SizeClass>> {
    if classes.is_empty() {
        return Err(cfg_err(py, "at least one size class is required"));
    }
    Ok(classes
        .into_iter()
        .map(|(slot_size, count)| SizeClass { slot_size, count })
        .collect())
}

impl VarSlotPool {
    fn slot(&self, h: VarSlotHandle) -> FResult<Slot> {
        let (ptr, size) = self.inner.pool.validate_ref(h, None)?;
        Ok(Slot {
            pool: self.inner.clone(),
            handle: h,
            ptr: ptr as usize,
            size,
        })
    }
}

#[pymethods]
impl VarSlotPool {
    /// Bytes a pool with these ``(slot_size, count)`` classes occupies.
    #[staticmethod]
    fn required_size(py: Python<'_>, classes: Vec<(u32, u32)>) -> PyResult<u64> {
        var_pool::calculate_size(&classes_arg(py, classes)?)
            .ok_or_else(|| cfg_err(py, "the pool layout overflows"))
    }

    /// Lay out and initialise a pool with these ``(slot_size, count)`` classes at
    /// ``offset`` (a multiple of 64).
    #[classmethod]
    fn create(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        region: PyRef<'_, SharedMemory>,
        offset: i64,
        classes: Vec<(u32, u32)>,
    ) -> PyResult<VarSlotPool> {
        let inner = region.inner(py)?;
        let offset = size_arg(offset, "offset")?;
        let classes = classes_arg(py, classes)?;
        let region_len = inner.map.len();
        if offset > region_len {
            return Err(cfg_err(py, "offset beyond the region"));
        }
        // SAFETY: the mapping is valid for region_len bytes and kept alive by the Arc
        // stored in the pool; `new` checks the layout fits and is 64-aligned. `init` is
        // the documented one-time step before sharing.
        let pool = unsafe {
            let p = RawVarSlotPool::new(inner.base(), region_len, offset, &classes)
                .map_err(|e| Fail::Pool(e).into_pyerr(py))?;
            p.init();
            p
        };
        Ok(VarSlotPool {
            inner: Arc::new(PoolInner {
                region: inner,
                pool,
            }),
        })
    }

    /// Attach to a pool of ``num_classes`` classes another party created at ``offset``.
    #[classmethod]
    fn attach(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        region: PyRef<'_, SharedMemory>,
        offset: i64,
        num_classes: u32,
    ) -> PyResult<VarSlotPool> {
        let inner = region.inner(py)?;
        let offset = size_arg(offset, "offset")?;
        let region_len = inner.map.len();
        if offset > region_len {
            return Err(cfg_err(py, "offset beyond the region"));
        }
        // SAFETY: as in create; from_headers validates what it reads.
        let pool =
            unsafe { RawVarSlotPool::from_headers(inner.base(), region_len, offset, num_classes) }
                .py_err(py)?;
        Ok(VarSlotPool {
            inner: Arc::new(PoolInner {
                region: inner,
                pool,
            }),
        })
    }

    /// The ``(slot_size, count)`` classes.
    #[getter]
    fn classes(&self) -> Vec<(u32, u32)> {
        self.inner
            .pool
            .classes()
            .into_iter()
            .map(|c| (c.slot_size, c.count))
            .collect()
    }

    /// Allocate a slot of at least ``size`` bytes for ``owner`` (0 = host); raises
    /// ``PoolExhaustedError`` when every fitting class is empty.
    #[pyo3(signature = (size, owner=0))]
    fn alloc(&self, py: Python<'_>, size: i64, owner: u32) -> PyResult<Slot> {
        match self.try_alloc(py, size, owner)? {
            Some(s) => Ok(s),
            None => {
                Err(Dual::PoolExhausted.msg(py, format!("no free slot of at least {size} bytes")))
            }
        }
    }

    /// Like ``alloc`` but returns None when the pool is exhausted.
    #[pyo3(signature = (size, owner=0))]
    fn try_alloc(&self, py: Python<'_>, size: i64, owner: u32) -> PyResult<Option<Slot>> {
        let size = u32::try_from(size_arg(size, "size")?)
            .map_err(|_| Dual::TooLarge.msg(py, "size larger than 4 GiB"))?;
        match self.inner.pool.try_alloc(size, owner).py_err(py)? {
            Some(h) => Ok(Some(self.slot(h).py_err(py)?)),
            None => Ok(None),
        }
    }

    /// A view of an allocated slot from its handle (e.g. received from a peer).
    fn slot_from_handle(
        &self,
        py: Python<'_>,
        class_idx: u8,
        slot_idx: u32,
        generation: u32,
    ) -> PyResult<Slot> {
        self.slot(VarSlotHandle {
            class_idx,
            extent_idx: 0,
            slot_idx,
            generation,
        })
        .py_err(py)
    }

    /// Free ``slot`` (``BufferError`` while memoryviews of it are alive,
    /// ``InvalidHandleError`` if it is already free or stale).
    fn free(&self, py: Python<'_>, slot: PyRef<'_, Slot>) -> PyResult<()> {
        slot.free(py)
    }

    /// "free" or "allocated" (``InvalidHandleError`` for a stale generation).
    fn state(&self, py: Python<'_>, slot: PyRef<'_, Slot>) -> PyResult<&'static str> {
        slot.state(py)
    }

    /// Per-class slot size, count and allocated slots.
    fn stats(&self) -> Vec<PoolClassStats> {
        self.inner
            .pool
            .stats()
            .into_iter()
            .map(PoolClassStats::from)
            .collect()
    }

    /// Free every slot owned by ``owner`` (crash recovery); returns how many.
    fn reclaim(&self, owner: u32) -> usize {
        self.inner.pool.reclaim_peer_slots(owner)
    }

    /// Length of class ``class_idx``'s free list.
    fn free_count(&self, py: Python<'_>, class_idx: usize) -> PyResult<u32> {
        self.inner.pool.free_count(class_idx).py_err(py)
    }
}

/// An allocated pool slot: a writable ``memoryview(slot)`` over all ``slot.size``
/// bytes; ``handle`` identifies it to other processes. As a context manager it frees
/// the slot on exit.
#[pyclass(frozen, module = "roam_shm", name = "Slot")]
pub struct Slot {
    pool: Arc<PoolInner>,
    handle: VarSlotHandle,
    ptr: usize,
    size: u32,
}

impl Slot {
    fn key(&self) -> usize {
        self.ptr
    }

    fn live(&self) -> bool {
        self.pool.pool.validate_ref(self.handle, None).is_ok()
    }
}

#[pymethods]
impl Slot {
    /// ``(class_idx, slot_idx, generation)``.
    #[getter]
    fn handle(&self) -> (u8, u32, u32) {
        (
            self.handle.class_idx,
            self.handle.slot_idx,
            self.handle.generation,
        )
    }

    /// Slot size in bytes.
    #[getter]
    fn size(&self) -> u32 {
        self.size
    }

    fn __len__(&self) -> usize {
        self.size as usize
    }

    /// Free the slot (``BufferError`` while memoryviews of it are alive).
    fn free(&self, py: Python<'_>) -> PyResult<()> {
        let ex = lock(py, &self.pool.region.slot_exports);
        if ex.get(&self.key()).copied().unwrap_or(0) > 0 {
            drop(ex);
            return Err(Fail::Buffer(
                "memoryviews of this slot are still alive; release them first".into(),
            )
            .into_pyerr(py));
        }
        let r = self.pool.pool.free(self.handle);
        drop(ex);
        r.py_err(py)
    }

    /// "free" or "allocated" (``InvalidHandleError`` if the generation is stale).
    fn state(&self, py: Python<'_>) -> PyResult<&'static str> {
        match self.pool.pool.slot_state(self.handle).py_err(py)? {
            var_pool::SlotState::Free => Ok("free"),
            var_pool::SlotState::Allocated => Ok("allocated"),
        }
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyAny> {
        slf.clone().into_any()
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        if self.live() {
            self.free(py)?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<roam_shm.Slot class={} index={} generation={} size={}>",
            self.handle.class_idx, self.handle.slot_idx, self.handle.generation, self.size
        )
    }

    /// # Safety
    /// Called by CPython with a valid `view`.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut ex = lock(py, &this.pool.region.slot_exports);
            // Checked under the exports lock, which free() also takes, so the slot
            // cannot be freed by this process between the check and the count.
            if !this.live() {
                drop(ex);
                return Err(Fail::Closed("the slot was freed".into()).into_pyerr(py));
            }
            *ex.entry(this.key()).or_insert(0) += 1;
        }
        // SAFETY: the slot's `size` bytes lie in the pool inside the kept-alive mapping
        // (validated), and this process refuses to free it while the export lives.
        let r = unsafe {
            fill_view(
                py,
                view,
                slf.as_any(),
                this.ptr as *mut u8,
                this.size as usize,
                false,
                flags,
            )
        };
        if r.is_err() {
            release_export(&mut lock(py, &this.pool.region.slot_exports), this.key());
        }
        r
    }

    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`.
    unsafe fn __releasebuffer__(slf: Bound<'_, Self>, _view: *mut ffi::Py_buffer) {
        let this = slf.get();
        release_export(
            &mut lock(slf.py(), &this.pool.region.slot_exports),
            this.key(),
        );
    }
}

fn release_export(ex: &mut HashMap<usize, usize>, key: usize) {
    if let Some(n) = ex.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            ex.remove(&key);
        }
    }
}

// ----------------------------------------------------------------------------------
// Doorbell

/// One end of a socketpair doorbell (roam v7 wire format): ``signal()`` wakes the
/// other end's ``wait()``; a closed or dead peer is reported as "peer_gone".
#[pyclass(frozen, module = "roam_shm", name = "Doorbell")]
pub struct Doorbell {
    db: Mutex<Option<Arc<roam_shm::doorbell::Doorbell>>>,
}

impl Doorbell {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<roam_shm::doorbell::Doorbell>> {
        lock(py, &self.db)
            .clone()
            .ok_or_else(|| Fail::Closed("the doorbell is closed".into()).into_pyerr(py))
    }

    fn wrap(db: roam_shm::doorbell::Doorbell) -> Doorbell {
        Doorbell {
            db: Mutex::new(Some(Arc::new(db))),
        }
    }
}

fn db_err(py: Python<'_>, e: roam_shm::doorbell::DoorbellError) -> PyErr {
    Fail::Session(e.into()).into_pyerr(py)
}

#[pymethods]
impl Doorbell {
    /// A connected pair of doorbells (give one end's ``fileno()`` to the peer process).
    #[staticmethod]
    fn pair(py: Python<'_>) -> PyResult<(Doorbell, Doorbell)> {
        let (a, b) = roam_shm::doorbell::Doorbell::create_pair().map_err(|e| db_err(py, e))?;
        let b = b.into_doorbell().map_err(|e| db_err(py, e))?;
        Ok((Doorbell::wrap(a), Doorbell::wrap(b)))
    }

    /// Wrap a doorbell descriptor received from another process (it is duplicated;
    /// the caller keeps ``fd``).
    #[classmethod]
    fn from_fd(_cls: &Bound<'_, PyType>, py: Python<'_>, fd: i32) -> PyResult<Doorbell> {
        let owned = dup_fd(py, fd)?;
        let db = roam_shm::doorbell::Doorbell::from_fd(owned).map_err(|e| db_err(py, e))?;
        Ok(Doorbell::wrap(db))
    }

    /// The descriptor (owned by this object).
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.get(py)?.as_raw_fd())
    }

    /// Ring the peer: "sent", "coalesced" (its buffer is full of earlier rings) or
    /// "peer_gone".
    fn signal(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(match self.get(py)?.signal() {
            SignalResult::Sent => "sent",
            SignalResult::BufferFull => "coalesced",
            SignalResult::PeerDead => "peer_gone",
        })
    }

    /// Wait up to ``timeout`` seconds (None = forever): "signaled", "timeout" or
    /// "peer_gone". The GIL is released; Ctrl-C interrupts.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<&'static str> {
        let db = self.get(py)?;
        let deadline = deadline(timeout)?;
        loop {
            let Some(slice) = next_slice(deadline, WAIT_SLICE) else {
                return Ok("timeout");
            };
            match py
                .detach(|| db.wait(Some(slice)))
                .map_err(|e| db_err(py, e))?
            {
                WaitOutcome::Signaled => return Ok("signaled"),
                WaitOutcome::PeerGone => return Ok("peer_gone"),
                WaitOutcome::Timeout => {}
            }
            py.check_signals()?;
        }
    }

    /// Consume pending rings without blocking; returns how many bytes were drained
    /// (``PeerGoneError`` if the peer is gone).
    fn drain(&self, py: Python<'_>) -> PyResult<usize> {
        match self.get(py)?.drain().map_err(|e| db_err(py, e))? {
            DrainOutcome::Empty => Ok(0),
            DrainOutcome::Drained { bytes } => Ok(bytes),
            DrainOutcome::PeerGone => Err(Dual::PeerGone.msg(py, "the doorbell's peer is gone")),
        }
    }

    /// Whether the peer's end still looks open.
    fn is_peer_alive(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.get(py)?.is_peer_alive())
    }

    /// Close this end (the peer then sees "peer_gone").
    fn close(&self, py: Python<'_>) {
        let db = lock(py, &self.db).take();
        drop(db);
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        lock(py, &self.db).is_none()
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyAny> {
        slf.clone().into_any()
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }
}

// ----------------------------------------------------------------------------------
// WaitCell

/// A futex wait/wake cell (8 bytes, 4-aligned) at ``offset`` of a region: read
/// ``seq`` before checking your condition, then ``wait(seq)``; the other side calls
/// ``notify()`` after publishing. Zeroed memory is a valid cell.
#[pyclass(frozen, module = "roam_shm", name = "WaitCell")]
pub struct WaitCell {
    _region: Arc<RegionInner>,
    ptr: usize,
}

impl WaitCell {
    fn cell(&self) -> &CoreWaitCell {
        // SAFETY: ptr is 4-aligned, inside the mapping (checked at construction) that
        // `_region` keeps alive; any 8 bytes are a valid pair of atomics.
        unsafe { CoreWaitCell::from_ptr(self.ptr as *const CoreWaitCell) }
    }
}

#[pymethods]
impl WaitCell {
    /// Size of a cell in bytes.
    #[classattr]
    const SIZE: usize = WAIT_CELL_SIZE;

    /// View the cell at ``offset`` (a multiple of 4) of ``region``.
    #[new]
    fn new(py: Python<'_>, region: PyRef<'_, SharedMemory>, offset: i64) -> PyResult<WaitCell> {
        let inner = region.inner(py)?;
        let offset = size_arg(offset, "offset")?;
        let p = inner.check(py, offset, WAIT_CELL_SIZE, 4)?;
        Ok(WaitCell {
            _region: inner,
            ptr: p as usize,
        })
    }

    /// The sequence number (bumped by every notify).
    #[getter]
    fn seq(&self) -> u32 {
        self.cell().seq()
    }

    /// Registered sleepers (diagnostics).
    #[getter]
    fn sleepers(&self) -> u32 {
        self.cell().sleepers()
    }

    /// Bump ``seq`` and wake sleepers; True if a wake syscall was needed.
    fn notify(&self) -> bool {
        self.cell().notify()
    }

    /// Wait until ``seq != expected`` or ``timeout`` seconds pass (None = forever),
    /// spinning ``spin`` seconds first. True if notified. GIL released; Ctrl-C
    /// interrupts.
    #[pyo3(signature = (expected, timeout=None, spin=2e-05))]
    fn wait(
        &self,
        py: Python<'_>,
        expected: u32,
        timeout: Option<f64>,
        spin: f64,
    ) -> PyResult<bool> {
        let deadline = deadline(timeout)?;
        let config = WaitConfig {
            spin: crate::util::duration(spin, "spin")?,
        };
        loop {
            let Some(slice) = next_slice(deadline, WAIT_SLICE) else {
                return Ok(self.cell().seq() != expected);
            };
            let ptr = SendPtr(self.ptr as *mut u8);
            let r = py.detach(move || {
                let p = ptr;
                // SAFETY: as in `cell()`; `self` (and so the mapping) outlives the call.
                let cell = unsafe { CoreWaitCell::from_ptr(p.0 as *const CoreWaitCell) };
                cell.wait_with(expected, Some(slice), &config)
            });
            if r == WaitResult::Notified {
                return Ok(true);
            }
            py.check_signals()?;
        }
    }
}
