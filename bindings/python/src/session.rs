//! Host and guest sessions, received messages and zero-copy send reservations.
//!
//! # Lifetime guarantee of views
//! A `Message` (or `Reservation`) is the buffer exporter of the shared memory it
//! covers. Every `memoryview` taken from it is counted (`__getbuffer__` /
//! `__releasebuffer__`), and nothing that would hand that memory back (releasing the
//! message, committing or cancelling the reservation, a later receive on the same
//! link, polling the host — which may recover a dead peer's resources —,
//! disconnecting the peer, closing the session) is done while a view is outstanding:
//! those calls raise `BufferError` instead and change nothing. Once the message is
//! released, its `data`, `bytes()` and new exports raise `ClosedError`. The mapping
//! itself is address-stable and kept alive by the `Arc` every message holds, so a view
//! can never point at unmapped memory, nor at memory this process has given back.

use std::collections::VecDeque;
use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyStopIteration;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;

use roam_shm::doorbell::{Doorbell, WaitOutcome};
use roam_shm::segment::SessionError;
use roam_shm::segment::config::SegmentConfig;
use roam_shm::segment::guest::{Guest as CoreGuest, GuestOptions};
use roam_shm::segment::host::{
    GoneReason, Host as CoreHost, HostEvent as CoreEvent, HostOptions, Recovery as CoreRecovery,
};
use roam_shm::segment::link::{MessageKind, RecvError, Reservation as CoreReservation, SendError};
use roam_shm::segment::mapping::PathCleanup;
use roam_shm::segment::shared::{SegmentBacking, SegmentShared};
use roam_shm::segment::var_pool::SizeClass;

use crate::errors::{Dual, FResult, Fail, IntoPy};
use crate::prims::PoolClassStats;
use crate::util::{
    GIL_FREE_COPY, SendPtr, Source, WAIT_SLICE, copy_to_bytes, deadline, fill_view, lock,
    lock_nogil, next_slice, size_arg,
};

/// Longest time the host's `poll` holds the session lock in one go (other threads
/// sending on the same host wait at most this long for it).
const POLL_SLICE: Duration = Duration::from_millis(10);

enum Core {
    Host(CoreHost),
    Guest(Box<CoreGuest>),
}

/// The core session, movable between threads.
struct CoreBox(Core);
// SAFETY: the core Host/Guest hold raw pointers into their own segment mapping (ring
// views, the held message), which any thread may access; they are not tied to the
// creating thread. All access goes through the session Mutex, one thread at a time.
unsafe impl Send for CoreBox {}

/// A received message the core link holds for us (one per link at most).
struct Held {
    id: u64,
    exports: usize,
}

/// An outstanding zero-copy reservation (one per link at most).
struct Res {
    id: u64,
    res: CoreReservation,
    exports: usize,
}

#[derive(Default)]
struct Link {
    held: Option<Held>,
    res: Option<Res>,
}

impl Link {
    fn exports(&self) -> usize {
        self.held.as_ref().map_or(0, |h| h.exports) + self.res.as_ref().map_or(0, |r| r.exports)
    }
}

struct State {
    core: Option<CoreBox>,
    /// Indexed by peer id (a guest uses its own id).
    links: Vec<Link>,
    /// Outstanding exports over all links.
    exports: usize,
    next_id: u64,
    /// Host events taken by `accept` but not yet returned by `poll`.
    pending: VecDeque<CoreEvent>,
}

const VIEWS_OUTSTANDING: &str = "memoryviews of a received message or reservation of this session are still alive; release them (memoryview.release() or a with-block) or copy the data first";

impl State {
    fn new(core: Core) -> State {
        State {
            core: Some(CoreBox(core)),
            links: (0..256).map(|_| Link::default()).collect(),
            exports: 0,
            next_id: 1,
            pending: VecDeque::new(),
        }
    }

    fn core(&mut self) -> FResult<&mut Core> {
        self.core
            .as_mut()
            .map(|c| &mut c.0)
            .ok_or_else(|| Fail::Closed("the session is closed".into()))
    }

    fn host(&mut self) -> FResult<&mut CoreHost> {
        match self.core()? {
            Core::Host(h) => Ok(h),
            Core::Guest(_) => Err(Fail::Value("not a host".into())),
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn link(
        &mut self,
        peer: u8,
    ) -> FResult<(
        &mut roam_shm::segment::link::Tx,
        &mut roam_shm::segment::link::Rx,
    )> {
        match self.core()? {
            Core::Host(h) => Ok(h.link(peer)?),
            Core::Guest(g) => Ok(g.link()),
        }
    }

    /// Release the held message of `peer`'s link (refused while it is exported).
    fn release_held(&mut self, peer: u8) -> FResult<()> {
        let link = &mut self.links[usize::from(peer)];
        match &link.held {
            None => return Ok(()),
            Some(h) if h.exports > 0 => {
                return Err(Fail::Buffer(format!(
                    "the previous message received on this link still has {} exported memoryview(s); release them (memoryview.release() or a with-block) or copy the data with bytes() before receiving the next one",
                    h.exports
                )));
            }
            Some(_) => link.held = None,
        }
        let (_, rx) = self.link(peer)?;
        rx.release()?;
        Ok(())
    }

    fn try_recv(&mut self, peer: u8) -> FResult<Option<Received>> {
        self.release_held(peer)?;
        let (_, rx) = self.link(peer)?;
        let Some(raw) = rx.try_recv_raw()? else {
            return Ok(None);
        };
        let id = self.id();
        self.links[usize::from(peer)].held = Some(Held { id, exports: 0 });
        Ok(Some(Received {
            id,
            ptr: raw.ptr as usize,
            len: raw.len,
            kind: raw.kind,
        }))
    }

    /// The link's resources are gone (peer recovered) or new (peer connected).
    fn forget_link(&mut self, peer: u8) {
        let l = &mut self.links[usize::from(peer)];
        l.held = None;
        l.res = None;
    }

    fn doorbell(&mut self, peer: u8) -> FResult<Arc<Doorbell>> {
        let (tx, _) = self.link(peer)?;
        Ok(tx.doorbell().clone())
    }
}

struct Received {
    id: u64,
    ptr: usize,
    len: usize,
    kind: MessageKind,
}

enum SendOutcome {
    Sent,
    /// Room may have been freed since the attempt found none: try again now.
    Retry,
    /// No room; the peer rings the doorbell when it frees some.
    Blocked(SendError, Arc<Doorbell>),
}

/// One session (host or guest), shared by its Python object and every message and
/// reservation taken from it.
pub struct Session {
    state: Mutex<State>,
    /// Guest only: the doorbell and segment, usable without the lock.
    guest: Option<(Arc<Doorbell>, Arc<SegmentShared>, u8)>,
}

impl Session {
    fn new_host(core: Core) -> Arc<Session> {
        Arc::new(Session {
            state: Mutex::new(State::new(core)),
            guest: None,
        })
    }

    /// Send `src` on `peer`'s link, waiting (GIL released, in slices) while the ring
    /// or the pool is full, up to `deadline`.
    fn send(
        self: &Arc<Self>,
        py: Python<'_>,
        peer: u8,
        src: &Source,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let deadline = deadline(timeout)?;
        let mut blocked = false;
        loop {
            let bytes = src.bytes();
            let outcome = if bytes.len() > GIL_FREE_COPY {
                let this = self.clone();
                py.detach(move || {
                    this.attempt_send(&mut lock_nogil(&this.state), peer, bytes, blocked)
                })
            } else {
                self.attempt_send(&mut lock(py, &self.state), peer, bytes, blocked)
            };
            match outcome.py_err(py)? {
                SendOutcome::Sent => return Ok(()),
                SendOutcome::Retry => {
                    blocked = true; // the attempt asked to be rung, as below
                    py.check_signals()?;
                }
                SendOutcome::Blocked(e, db) => {
                    blocked = true;
                    let Some(slice) = next_slice(deadline, WAIT_SLICE) else {
                        return Err(if timeout == Some(0.0) {
                            Fail::Send(e).into_pyerr(py)
                        } else {
                            Fail::Send(SendError::Timeout).into_pyerr(py)
                        });
                    };
                    let r = py.detach(|| db.wait(Some(slice)));
                    match r {
                        Ok(WaitOutcome::PeerGone) => {
                            return Err(Fail::Send(SendError::PeerGone).into_pyerr(py));
                        }
                        Ok(_) => {}
                        Err(e) => return Err(Fail::Session(e.into()).into_pyerr(py)),
                    }
                    self.refresh();
                    py.check_signals()?;
                }
            }
        }
    }

    /// One send attempt. `was_blocked`: an earlier attempt of this send found no room
    /// (and asked the receiver to ring on each release); a success withdraws that.
    fn attempt_send(
        &self,
        st: &mut State,
        peer: u8,
        bytes: &[u8],
        was_blocked: bool,
    ) -> FResult<SendOutcome> {
        if st.links[usize::from(peer)].res.is_some() {
            return Err(Fail::Session(SessionError::ReservationPending));
        }
        if let Core::Guest(g) = st.core()? {
            g.check_host()?;
        }
        let (tx, _) = st.link(peer)?;
        let r = match tx.reserve_raw(bytes.len()) {
            Ok(r) => r,
            Err(e) if e.is_backpressure() => {
                // Ask the receiver to ring on every release, then look once more
                // (link::WakeFlags): a release after this look rings us. A host's
                // poll() may have set the flag that suppresses those rings.
                tx.set_waiting(true);
                if tx.space_maybe_freed() {
                    return Ok(SendOutcome::Retry);
                }
                return Ok(SendOutcome::Blocked(e, tx.doorbell().clone()));
            }
            Err(e) => return Err(e.into()),
        };
        if !bytes.is_empty() {
            // SAFETY: the reservation grants exclusive use of `len` bytes at
            // payload_ptr until commit/cancel; the source is a distinct live export.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), r.payload_ptr(), bytes.len());
            }
        }
        tx.commit_reserved(r)?;
        if was_blocked {
            tx.set_waiting(false);
        }
        Ok(SendOutcome::Sent)
    }

    fn reserve(self: &Arc<Self>, py: Python<'_>, peer: u8, size: usize) -> PyResult<Reservation> {
        let r = {
            let mut st = lock(py, &self.state);
            (|| -> FResult<(u64, usize)> {
                if st.links[usize::from(peer)].res.is_some() {
                    return Err(Fail::Session(SessionError::ReservationPending));
                }
                if let Core::Guest(g) = st.core()? {
                    g.check_host()?;
                }
                let (tx, _) = st.link(peer)?;
                let res = tx.reserve_raw(size)?;
                let ptr = res.payload_ptr() as usize;
                let id = st.id();
                st.links[usize::from(peer)].res = Some(Res {
                    id,
                    res,
                    exports: 0,
                });
                Ok((id, ptr))
            })()
        };
        let (id, ptr) = r.py_err(py)?;
        Ok(Reservation {
            session: self.clone(),
            peer,
            id,
            ptr,
            len: size,
        })
    }

    /// Receive on `peer`'s link, waiting up to `timeout` (None = forever).
    fn recv(
        self: &Arc<Self>,
        py: Python<'_>,
        peer: u8,
        timeout: Option<f64>,
    ) -> Result<Message, RecvFail> {
        let deadline = deadline(timeout)?;
        let mut last_try = false;
        loop {
            let r = {
                let mut st = lock(py, &self.state);
                (|| -> FResult<Result<Received, Arc<Doorbell>>> {
                    if let Some(m) = st.try_recv(peer)? {
                        return Ok(Ok(m));
                    }
                    if let Core::Guest(g) = st.core()? {
                        g.check_host()?;
                    }
                    // Ask the sender to ring for data, then look once more
                    // (link::WakeFlags): whatever it commits after this look rings
                    // us. A host's poll() may have set the flag that suppresses it.
                    st.link(peer)?.1.set_polling(false);
                    if let Some(m) = st.try_recv(peer)? {
                        return Ok(Ok(m));
                    }
                    Ok(Err(st.doorbell(peer)?))
                })()
            };
            let db = match r {
                Ok(Ok(m)) => return Ok(self.message(peer, m)),
                Ok(Err(db)) => db,
                Err(f) => return Err(RecvFail::Fail(f)),
            };
            if last_try {
                return Err(RecvFail::Fail(Fail::Recv(RecvError::PeerGone)));
            }
            let Some(slice) = next_slice(deadline, WAIT_SLICE) else {
                return Err(RecvFail::Fail(Fail::Recv(RecvError::Timeout)));
            };
            match py.detach(|| db.wait(Some(slice))) {
                // The peer may have written messages before it went away: try once more.
                Ok(WaitOutcome::PeerGone) => last_try = true,
                Ok(_) => {}
                Err(e) => return Err(RecvFail::Fail(Fail::Session(e.into()))),
            }
            self.refresh();
            py.check_signals()?;
        }
    }

    fn try_recv(self: &Arc<Self>, py: Python<'_>, peer: u8) -> PyResult<Option<Message>> {
        let r = lock(py, &self.state).try_recv(peer);
        Ok(r.py_err(py)?.map(|m| self.message(peer, m)))
    }

    fn message(self: &Arc<Self>, peer: u8, m: Received) -> Message {
        Message {
            session: self.clone(),
            peer,
            id: m.id,
            ptr: m.ptr,
            len: m.len,
            kind: match m.kind {
                MessageKind::Inline => "inline",
                MessageKind::Slot => "slot",
                MessageKind::Mmap => "mmap",
            },
        }
    }

    /// Guests: map the segment's new size if the host grew it.
    fn refresh(&self) {
        if let Some((_, seg, _)) = &self.guest {
            let _ = seg.refresh_size();
        }
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let core = {
            let mut st = lock(py, &self.state);
            if st.exports > 0 {
                drop(st);
                return Err(
                    Fail::Buffer(format!("cannot close: {VIEWS_OUTSTANDING}")).into_pyerr(py)
                );
            }
            for l in st.links.iter_mut() {
                l.held = None;
                l.res = None;
            }
            st.pending.clear();
            st.core.take()
        };
        if let Some(mut core) = core {
            // Dropping unmaps and closes descriptors; the guest says goodbye first.
            py.detach(move || {
                if let Core::Guest(g) = &mut core.0 {
                    g.close();
                }
                drop(core);
            });
        }
        Ok(())
    }

    fn is_closed(&self, py: Python<'_>) -> bool {
        lock(py, &self.state).core.is_none()
    }

    fn pool_stats(&self, py: Python<'_>) -> PyResult<Vec<PoolClassStats>> {
        let mut st = lock(py, &self.state);
        let stats = match st.core() {
            Ok(Core::Host(h)) => h.segment().pool().stats(),
            Ok(Core::Guest(g)) => g.segment().pool().stats(),
            Err(f) => {
                drop(st);
                return Err(f.into_pyerr(py));
            }
        };
        drop(st);
        Ok(stats.into_iter().map(PoolClassStats::from).collect())
    }

    fn segment_info(&self, py: Python<'_>) -> PyResult<(PathBuf, u32)> {
        let mut st = lock(py, &self.state);
        let r = match st.core() {
            Ok(Core::Host(h)) => Ok((h.segment_path(), h.segment().max_payload_size())),
            Ok(Core::Guest(g)) => Ok((
                g.segment().mapping().shareable_path(),
                g.segment().max_payload_size(),
            )),
            Err(f) => Err(f),
        };
        drop(st);
        r.py_err(py)
    }
}

/// Why a receive failed: a Python error already made, or a core failure.
enum RecvFail {
    Py(PyErr),
    Fail(Fail),
}

impl From<PyErr> for RecvFail {
    fn from(e: PyErr) -> Self {
        RecvFail::Py(e)
    }
}

impl RecvFail {
    fn is_host_goodbye(&self) -> bool {
        matches!(
            self,
            RecvFail::Fail(Fail::Session(SessionError::HostGoodbye))
                | RecvFail::Fail(Fail::Recv(RecvError::Session(SessionError::HostGoodbye)))
        )
    }

    fn into_pyerr(self, py: Python<'_>) -> PyErr {
        match self {
            RecvFail::Py(e) => e,
            RecvFail::Fail(f) => f.into_pyerr(py),
        }
    }
}

fn peer_arg(peer: i64) -> PyResult<u8> {
    u8::try_from(peer).ok().filter(|p| *p != 0).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!("peer ids are 1..=255, got {peer}"))
    })
}

fn enter<'py>(slf: &Bound<'py, PyAny>) -> Bound<'py, PyAny> {
    slf.clone()
}

// ----------------------------------------------------------------------------------
// Message

/// A received message: a zero-copy, read-only view of the payload in shared memory.
///
/// ``msg.data`` (or ``memoryview(msg)``) is a memoryview over the mapping; ``bytes(msg)``
/// copies. The message stays valid until ``release()``, the end of a ``with`` block, a
/// later receive on the same link, or the session closing. ``release()`` (and those
/// other calls) raise ``BufferError`` while memoryviews of it are alive; afterwards
/// every access raises ``ClosedError``.
#[pyclass(frozen, module = "roam_shm", name = "Message")]
pub struct Message {
    session: Arc<Session>,
    peer: u8,
    id: u64,
    ptr: usize,
    len: usize,
    kind: &'static str,
}

impl Message {
    fn with_held<R>(&self, st: &mut State, f: impl FnOnce(&mut Held) -> R) -> FResult<R> {
        match st.links[usize::from(self.peer)].held.as_mut() {
            Some(h) if h.id == self.id => Ok(f(h)),
            _ => Err(Fail::Closed(
                "the message was released (explicitly, by a later receive on its link, or because its peer or session went away)".into(),
            )),
        }
    }

    fn release_inner(&self, st: &mut State) -> FResult<()> {
        let exports = self.with_held(st, |h| h.exports)?;
        if exports > 0 {
            return Err(Fail::Buffer(format!(
                "cannot release: {exports} memoryview(s) of this message are still alive; release them (memoryview.release() or a with-block) first"
            )));
        }
        st.release_held(self.peer)
    }
}

#[pymethods]
impl Message {
    /// The payload as a read-only memoryview (zero-copy).
    #[getter]
    fn data<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyMemoryView>> {
        PyMemoryView::from(slf.as_any())
    }

    /// Where the payload lives: "inline" (in the ring), "slot" (a pool slot) or "mmap".
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// The peer id it came from (0 = the host, on a guest).
    #[getter]
    fn peer(&self) -> u8 {
        if self.session.guest.is_some() {
            0
        } else {
            self.peer
        }
    }

    /// Whether the message was released.
    #[getter]
    fn released(&self, py: Python<'_>) -> bool {
        let mut st = lock(py, &self.session.state);
        self.with_held(&mut st, |_| ()).is_err()
    }

    /// Free the message's storage for the sender to reuse (idempotent once released).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let r = {
            let mut st = lock(py, &self.session.state);
            match self.with_held(&mut st, |_| ()) {
                Err(_) => Ok(()),
                Ok(()) => self.release_inner(&mut st),
            }
        };
        r.py_err(py)
    }

    /// A copy of the payload (the GIL is released for large copies).
    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let session = self.session.clone();
        let (ptr, len) = (SendPtr(self.ptr as *mut u8), self.len);
        let check = |st: &mut State| self.with_held(st, |_| ());
        // Validity is checked under the same lock that the copy holds, so the message
        // cannot be released in between.
        {
            let mut st = lock(py, &self.session.state);
            check(&mut st).py_err(py)?;
        }
        let id = self.id;
        let peer = self.peer;
        copy_to_bytes(py, len, move |dst| {
            let st = lock_nogil(&session.state);
            match st.links[usize::from(peer)].held.as_ref() {
                Some(h) if h.id == id => {}
                _ => return Err(Fail::Closed("the message was released".into())),
            }
            let p = ptr;
            if len > 0 {
                // SAFETY: the message is held (checked under this lock, which also
                // prevents its release during the copy); [ptr, ptr+len) was validated
                // by the receiver and lies in the address-stable mapping.
                unsafe { std::ptr::copy_nonoverlapping(p.0, dst.as_mut_ptr(), len) };
            }
            Ok(())
        })
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.tobytes(py)
    }

    fn __len__(&self) -> usize {
        self.len
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyAny> {
        enter(slf.as_any())
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.released(py) {
            "released"
        } else {
            "held"
        };
        format!(
            "<roam_shm.Message peer={} len={} kind={} {state}>",
            self.peer(),
            self.len,
            self.kind
        )
    }

    /// # Safety
    /// Called by CPython with a valid `view`.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        let count = |st: &mut State, up: bool| this.with_held(st, |h| bump(&mut h.exports, up));
        // SAFETY: CPython's `view`; the export count taken keeps the message held (so
        // its bytes are neither freed nor unmapped) until __releasebuffer__.
        unsafe {
            export_counted(
                slf.as_any(),
                &this.session,
                this.ptr,
                this.len,
                true,
                view,
                flags,
                count,
            )
        }
    }

    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`.
    unsafe fn __releasebuffer__(slf: Bound<'_, Self>, _view: *mut ffi::Py_buffer) {
        let this = slf.get();
        release_counted(slf.py(), &this.session, |st, up| {
            this.with_held(st, |h| bump(&mut h.exports, up))
        });
    }
}

/// One more (`up`) or one fewer export on a per-object count.
fn bump(exports: &mut usize, up: bool) {
    if up {
        *exports += 1;
    } else {
        *exports -= 1;
    }
}

/// `__getbuffer__` of a Message or Reservation: count the export on the object
/// (`count(state, true)`, which fails once the object was released) and on the
/// session, then fill the view; a failed fill takes the count back.
///
/// # Safety
/// `view` is CPython's; `[ptr, ptr + len)` stays valid (and writable unless
/// `readonly`) while the object's export count is above zero.
#[allow(clippy::too_many_arguments)]
unsafe fn export_counted(
    owner: &Bound<'_, PyAny>,
    session: &Session,
    ptr: usize,
    len: usize,
    readonly: bool,
    view: *mut ffi::Py_buffer,
    flags: c_int,
    count: impl Fn(&mut State, bool) -> FResult<()>,
) -> PyResult<()> {
    let py = owner.py();
    {
        let mut st = lock(py, &session.state);
        let r = count(&mut st, true);
        if r.is_ok() {
            st.exports += 1;
        }
        drop(st);
        r.py_err(py)?;
    }
    // SAFETY: the caller's contract; the count just taken keeps the memory valid
    // until __releasebuffer__.
    let r = unsafe { fill_view(py, view, owner, ptr as *mut u8, len, readonly, flags) };
    if r.is_err() {
        release_counted(py, session, count);
    }
    r
}

/// `__releasebuffer__` of a Message or Reservation (or a failed fill): take back
/// one export from the object, if it is still live, and from the session.
fn release_counted(
    py: Python<'_>,
    session: &Session,
    count: impl Fn(&mut State, bool) -> FResult<()>,
) {
    let mut st = lock(py, &session.state);
    if count(&mut st, false).is_ok() {
        st.exports -= 1;
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        // No export can be alive (each one references this object). Release the
        // message if it is still the link's held one.
        let mut st = lock_nogil(&self.session.state);
        if self.with_held(&mut st, |_| ()).is_ok() {
            let _ = st.release_held(self.peer);
        }
    }
}

// ----------------------------------------------------------------------------------
// Reservation

/// A zero-copy send in progress: write exactly ``len(r)`` bytes into ``memoryview(r)``
/// (or ``r.buffer``), then ``commit()``; ``cancel()`` abandons it. As a context manager
/// it commits on normal exit and cancels on an exception. ``commit``/``cancel`` raise
/// ``BufferError`` while memoryviews of it are alive. One reservation per link at a time.
#[pyclass(frozen, module = "roam_shm", name = "Reservation")]
pub struct Reservation {
    session: Arc<Session>,
    peer: u8,
    id: u64,
    ptr: usize,
    len: usize,
}

impl Reservation {
    fn with_res<R>(&self, st: &mut State, f: impl FnOnce(&mut Res) -> R) -> FResult<R> {
        match st.links[usize::from(self.peer)].res.as_mut() {
            Some(r) if r.id == self.id => Ok(f(r)),
            _ => Err(Fail::Closed(
                "the reservation was already committed or cancelled (or its session or peer went away)".into(),
            )),
        }
    }

    fn take(&self, st: &mut State) -> FResult<CoreReservation> {
        let exports = self.with_res(st, |r| r.exports)?;
        if exports > 0 {
            return Err(Fail::Buffer(format!(
                "{exports} memoryview(s) of this reservation are still alive; release them first"
            )));
        }
        let r = st.links[usize::from(self.peer)]
            .res
            .take()
            .expect("checked above");
        Ok(r.res)
    }

    fn finish(&self, py: Python<'_>, commit: bool) -> PyResult<()> {
        let r = {
            let mut st = lock(py, &self.session.state);
            (|| -> FResult<()> {
                let res = self.take(&mut st)?;
                let (tx, _) = st.link(self.peer)?;
                if commit {
                    tx.commit_reserved(res)?;
                } else {
                    tx.cancel_reserved(res)?;
                }
                Ok(())
            })()
        };
        r.py_err(py)
    }
}

#[pymethods]
impl Reservation {
    /// The writable payload area as a memoryview (zero-copy into shared memory).
    #[getter]
    fn buffer<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyMemoryView>> {
        PyMemoryView::from(slf.as_any())
    }

    /// Publish the message to the peer.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, true)
    }

    /// Abandon the send (its storage is returned, nothing is sent).
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, false)
    }

    /// Whether the reservation is still open.
    #[getter]
    fn pending(&self, py: Python<'_>) -> bool {
        let mut st = lock(py, &self.session.state);
        self.with_res(&mut st, |_| ()).is_ok()
    }

    fn __len__(&self) -> usize {
        self.len
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyAny> {
        enter(slf.as_any())
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if exc_type.is_none() {
            self.commit(py)?;
        } else if self.pending(py) {
            let _ = self.cancel(py);
        }
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.pending(py) { "pending" } else { "done" };
        format!("<roam_shm.Reservation len={} {state}>", self.len)
    }

    /// # Safety
    /// Called by CPython with a valid `view`.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        let count = |st: &mut State, up: bool| this.with_res(st, |r| bump(&mut r.exports, up));
        // SAFETY: CPython's `view`; the export count keeps the reservation open (not
        // committed, cancelled or dropped with its link) until __releasebuffer__; the
        // memory is reserved for this send and writable.
        unsafe {
            export_counted(
                slf.as_any(),
                &this.session,
                this.ptr,
                this.len,
                false,
                view,
                flags,
                count,
            )
        }
    }

    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`.
    unsafe fn __releasebuffer__(slf: Bound<'_, Self>, _view: *mut ffi::Py_buffer) {
        let this = slf.get();
        release_counted(slf.py(), &this.session, |st, up| {
            this.with_res(st, |r| bump(&mut r.exports, up))
        });
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut st = lock_nogil(&self.session.state);
        if let Ok(res) = self.take(&mut st) {
            if let Ok((tx, _)) = st.link(self.peer) {
                let _ = tx.cancel_reserved(res);
            }
        }
    }
}

// ----------------------------------------------------------------------------------
// Host

/// What recovering a departed peer freed.
#[pyclass(frozen, module = "roam_shm", name = "Recovery")]
#[derive(Clone, Copy)]
pub struct Recovery {
    /// Frames the peer never read (their slots were freed).
    #[pyo3(get)]
    drained_frames: usize,
    /// Host-sent slots the peer still held, now freed.
    #[pyo3(get)]
    freed_sent_slots: usize,
    /// Slots the peer owned, reclaimed from the pool.
    #[pyo3(get)]
    reclaimed_slots: usize,
}

impl From<CoreRecovery> for Recovery {
    fn from(r: CoreRecovery) -> Self {
        Recovery {
            drained_frames: r.drained_frames,
            freed_sent_slots: r.freed_sent_slots,
            reclaimed_slots: r.reclaimed_slots,
        }
    }
}

#[pymethods]
impl Recovery {
    fn __repr__(&self) -> String {
        format!(
            "Recovery(drained_frames={}, freed_sent_slots={}, reclaimed_slots={})",
            self.drained_frames, self.freed_sent_slots, self.reclaimed_slots
        )
    }
}

/// Something that happened during ``Host.poll``: ``kind`` is "connected", "readable"
/// or "peer_gone"; for "peer_gone", ``reason`` and ``recovery`` say why and what was
/// freed.
#[pyclass(frozen, module = "roam_shm", name = "HostEvent")]
pub struct HostEvent {
    /// "connected", "readable" or "peer_gone".
    #[pyo3(get)]
    kind: &'static str,
    /// The peer id.
    #[pyo3(get)]
    peer: u8,
    /// Why a peer went away ("doorbell_closed", "process_gone", "heartbeat_stale",
    /// "goodbye", "never_attached", "corrupt", "requested"), else None.
    #[pyo3(get)]
    reason: Option<&'static str>,
    /// What recovering a departed peer freed, else None.
    #[pyo3(get)]
    recovery: Option<Recovery>,
}

fn reason_str(r: GoneReason) -> &'static str {
    match r {
        GoneReason::DoorbellClosed => "doorbell_closed",
        GoneReason::ProcessGone(_) => "process_gone",
        GoneReason::HeartbeatStale => "heartbeat_stale",
        GoneReason::Goodbye => "goodbye",
        GoneReason::NeverAttached => "never_attached",
        GoneReason::Corrupt => "corrupt",
        GoneReason::Requested => "requested",
    }
}

impl From<CoreEvent> for HostEvent {
    fn from(e: CoreEvent) -> Self {
        match e {
            CoreEvent::Connected(peer) => HostEvent {
                kind: "connected",
                peer,
                reason: None,
                recovery: None,
            },
            CoreEvent::Readable(peer) => HostEvent {
                kind: "readable",
                peer,
                reason: None,
                recovery: None,
            },
            CoreEvent::PeerGone {
                peer,
                reason,
                recovery,
            } => HostEvent {
                kind: "peer_gone",
                peer,
                reason: Some(reason_str(reason)),
                recovery: Some(recovery.into()),
            },
        }
    }
}

#[pymethods]
impl HostEvent {
    fn __repr__(&self) -> String {
        match (self.reason, &self.recovery) {
            (Some(r), Some(rec)) => format!(
                "HostEvent(kind='{}', peer={}, reason='{r}', recovery={})",
                self.kind,
                self.peer,
                rec.__repr__()
            ),
            _ => format!("HostEvent(kind='{}', peer={})", self.kind, self.peer),
        }
    }
}

fn parse_classes(classes: Option<Vec<(u32, u32)>>) -> Vec<SizeClass> {
    match classes {
        Some(v) => v
            .into_iter()
            .map(|(slot_size, count)| SizeClass { slot_size, count })
            .collect(),
        None => SegmentConfig::default().size_classes,
    }
}

/// The host side of a segment: creates it, accepts guests on a Unix socket, exchanges
/// messages with each and recovers the resources of guests that go away.
#[pyclass(frozen, module = "roam_shm", name = "Host")]
pub struct Host {
    session: Arc<Session>,
}

impl Host {
    /// Poll once (lock held inside, GIL released), updating link bookkeeping.
    fn poll_once(&self, slice: Duration) -> FResult<Vec<CoreEvent>> {
        let mut st = lock_nogil(&self.session.state);
        if st.exports > 0 {
            return Err(Fail::Buffer(format!(
                "cannot poll (it may recover a departed peer's memory): {VIEWS_OUTSTANDING}"
            )));
        }
        if !st.pending.is_empty() {
            return Ok(st.pending.drain(..).collect());
        }
        let events = st.host()?.poll(Some(slice))?;
        for e in &events {
            match e {
                CoreEvent::Connected(p) | CoreEvent::PeerGone { peer: p, .. } => st.forget_link(*p),
                CoreEvent::Readable(_) => {}
            }
        }
        Ok(events)
    }
}

#[pymethods]
impl Host {
    /// Create a segment (a sealed memfd, or a file at ``segment_path`` — roam-built
    /// guests need a file, e.g. under /dev/shm) and, if ``socket_path`` is given,
    /// listen for guests there.
    #[new]
    #[pyo3(signature = (socket_path=None, *, segment_path=None, max_guests=8, ring_capacity=65536, size_classes=None, inline_threshold=0, max_payload_size=16777216, heartbeat_interval=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        socket_path: Option<PathBuf>,
        segment_path: Option<PathBuf>,
        max_guests: u32,
        ring_capacity: u32,
        size_classes: Option<Vec<(u32, u32)>>,
        inline_threshold: u32,
        max_payload_size: u32,
        heartbeat_interval: f64,
    ) -> PyResult<Host> {
        let config = SegmentConfig {
            max_guests,
            bipbuf_capacity: ring_capacity,
            size_classes: parse_classes(size_classes),
            inline_threshold,
            max_payload_size,
            heartbeat_interval: crate::util::duration(heartbeat_interval, "heartbeat_interval")?,
        };
        let backing = match segment_path {
            Some(path) => SegmentBacking::File {
                path,
                cleanup: PathCleanup::Delete,
                mode: 0o600,
            },
            None => SegmentBacking::Anonymous,
        };
        let core = py
            .detach(move || -> Result<CoreBox, SessionError> {
                let mut h = CoreHost::create(HostOptions { config, backing })?;
                if let Some(p) = socket_path {
                    h.listen(p)?;
                }
                Ok(CoreBox(Core::Host(h)))
            })
            .py_err(py)?;
        Ok(Host {
            session: Session::new_host(core.0),
        })
    }

    /// Listen for guests on a Unix socket at ``path`` (a stale socket file is replaced).
    fn listen(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let r = {
            let mut st = lock(py, &self.session.state);
            st.host().and_then(|h| Ok(h.listen(path)?))
        };
        r.py_err(py)
    }

    /// Wait up to ``timeout`` seconds (None = forever) for events: connections
    /// (handshake done here), readable messages, departed peers (recovered here).
    /// Returns at once when something is pending. Raises ``BufferError`` while
    /// memoryviews of received messages or reservations are alive.
    #[pyo3(signature = (timeout=None))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Vec<HostEvent>> {
        let deadline = deadline(timeout)?;
        loop {
            let slice = next_slice(deadline, POLL_SLICE).unwrap_or(Duration::ZERO);
            let events = py.detach(|| self.poll_once(slice)).py_err(py)?;
            if !events.is_empty() || slice.is_zero() || next_slice(deadline, POLL_SLICE).is_none() {
                return Ok(events.into_iter().map(HostEvent::from).collect());
            }
            py.check_signals()?;
        }
    }

    /// Wait for the next guest to connect and return its peer id (other events stay
    /// queued for ``poll``).
    #[pyo3(signature = (timeout=None))]
    fn accept(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u8> {
        let deadline = deadline(timeout)?;
        loop {
            let slice = next_slice(deadline, POLL_SLICE).unwrap_or(Duration::ZERO);
            let got = py
                .detach(|| -> FResult<Option<u8>> {
                    let mut st = lock_nogil(&self.session.state);
                    if let Some(i) = st
                        .pending
                        .iter()
                        .position(|e| matches!(e, CoreEvent::Connected(_)))
                    {
                        if let Some(CoreEvent::Connected(p)) = st.pending.remove(i) {
                            return Ok(Some(p));
                        }
                    }
                    drop(st);
                    let events = self.poll_once(slice)?;
                    let mut st = lock_nogil(&self.session.state);
                    let mut found = None;
                    for e in events {
                        match e {
                            CoreEvent::Connected(p) if found.is_none() => found = Some(p),
                            other => st.pending.push_back(other),
                        }
                    }
                    Ok(found)
                })
                .py_err(py)?;
            if let Some(p) = got {
                return Ok(p);
            }
            if slice.is_zero() || next_slice(deadline, POLL_SLICE).is_none() {
                return Err(Dual::Timeout.msg(py, "no guest connected before the timeout"));
            }
            py.check_signals()?;
        }
    }

    /// Ids of connected guests.
    #[getter]
    fn peers(&self, py: Python<'_>) -> PyResult<Vec<u32>> {
        // (u32: a Vec<u8> would convert to `bytes`.)
        let r = lock(py, &self.session.state)
            .host()
            .map(|h| h.peer_ids().into_iter().map(u32::from).collect());
        r.py_err(py)
    }

    /// A path guests (roam-built ones included) can open to map the segment.
    #[getter]
    fn segment_path(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self
            .session
            .segment_info(py)?
            .0
            .to_string_lossy()
            .into_owned())
    }

    /// The largest payload the segment accepts.
    #[getter]
    fn max_payload_size(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.session.segment_info(py)?.1)
    }

    /// Send a copy of ``data`` (any buffer-protocol object) to ``peer``, waiting up to
    /// ``timeout`` seconds (None = forever) while the ring or pool is full.
    #[pyo3(signature = (peer, data, timeout=None))]
    fn send(
        &self,
        py: Python<'_>,
        peer: i64,
        data: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let peer = peer_arg(peer)?;
        let src = Source::new(data)?;
        self.session.send(py, peer, &src, timeout)
    }

    /// Send without waiting: raises ``RingFullError``/``PoolExhaustedError`` (both
    /// ``WouldBlock``) on backpressure.
    fn try_send(&self, py: Python<'_>, peer: i64, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let peer = peer_arg(peer)?;
        let src = Source::new(data)?;
        self.session.send(py, peer, &src, Some(0.0))
    }

    /// Reserve ``size`` bytes for a zero-copy send to ``peer``.
    fn reserve(&self, py: Python<'_>, peer: i64, size: i64) -> PyResult<Reservation> {
        let peer = peer_arg(peer)?;
        let size = size_arg(size, "size")?;
        self.session.reserve(py, peer, size)
    }

    /// Receive the next message from ``peer``, waiting up to ``timeout`` seconds.
    #[pyo3(signature = (peer, timeout=None))]
    fn recv(&self, py: Python<'_>, peer: i64, timeout: Option<f64>) -> PyResult<Message> {
        let peer = peer_arg(peer)?;
        self.session
            .recv(py, peer, timeout)
            .map_err(|e| e.into_pyerr(py))
    }

    /// The next message from ``peer`` if one is waiting, else None.
    fn try_recv(&self, py: Python<'_>, peer: i64) -> PyResult<Option<Message>> {
        let peer = peer_arg(peer)?;
        self.session.try_recv(py, peer)
    }

    /// Iterate over the messages waiting from ``peer`` now (each one is released when
    /// the next is taken).
    fn messages(&self, peer: i64) -> PyResult<MessageIter> {
        Ok(MessageIter {
            session: self.session.clone(),
            peer: peer_arg(peer)?,
        })
    }

    /// Disconnect ``peer`` and recover its resources.
    fn disconnect(&self, py: Python<'_>, peer: i64) -> PyResult<Recovery> {
        let peer = peer_arg(peer)?;
        let r = {
            let mut st = lock(py, &self.session.state);
            (|| -> FResult<CoreRecovery> {
                if st.links[usize::from(peer)].exports() > 0 {
                    return Err(Fail::Buffer(format!(
                        "cannot disconnect: {VIEWS_OUTSTANDING}"
                    )));
                }
                let h = st.host()?;
                if !h.peer_ids().contains(&peer) {
                    return Err(Fail::Session(SessionError::UnknownPeer(peer)));
                }
                let rec = h.disconnect(peer);
                st.forget_link(peer);
                Ok(rec)
            })()
        };
        Ok(r.py_err(py)?.into())
    }

    /// Grow the segment to ``new_size`` bytes; guests remap on their next wake-up.
    fn grow(&self, py: Python<'_>, new_size: u64) -> PyResult<()> {
        let r = lock(py, &self.session.state)
            .host()
            .and_then(|h| Ok(h.grow(new_size)?));
        r.py_err(py)
    }

    /// Say goodbye to every guest and stop accepting (the segment stays mapped).
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let r = lock(py, &self.session.state).host().map(|h| h.shutdown());
        r.py_err(py)
    }

    /// Per size class: slot size, slot count and allocated slots.
    fn pool_stats(&self, py: Python<'_>) -> PyResult<Vec<PoolClassStats>> {
        self.session.pool_stats(py)
    }

    /// Shut down, unmap the segment and remove the socket (and segment file). Raises
    /// ``BufferError`` while memoryviews of messages or reservations are alive.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.session.close(py)
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.session.is_closed(py)
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyAny> {
        enter(slf.as_any())
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        if self.closed(py) {
            return "<roam_shm.Host closed>".into();
        }
        format!(
            "<roam_shm.Host segment={:?} peers={:?}>",
            self.segment_path(py).unwrap_or_default(),
            self.peers(py).unwrap_or_default()
        )
    }
}

/// Iterator over the messages waiting on one link now (``Host.messages``).
#[pyclass(module = "roam_shm", name = "MessageIter")]
pub struct MessageIter {
    session: Arc<Session>,
    peer: u8,
}

#[pymethods]
impl MessageIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Message>> {
        self.session.try_recv(py, self.peer)
    }
}

// ----------------------------------------------------------------------------------
// Guest

/// The guest side: connects to a host's Unix socket (roam's RSH0/RSP0 bootstrap),
/// maps the segment and exchanges messages with the host. Iterating yields messages
/// until the host says goodbye.
#[pyclass(frozen, module = "roam_shm", name = "Guest")]
pub struct Guest {
    session: Arc<Session>,
}

#[pymethods]
impl Guest {
    /// Connect to the host listening at ``socket_path``; ``timeout`` bounds the
    /// handshake, ``sid`` is the opaque session id sent in the request.
    #[new]
    #[pyo3(signature = (socket_path, *, timeout=5.0, sid=None))]
    fn new(
        py: Python<'_>,
        socket_path: PathBuf,
        timeout: f64,
        sid: Option<Vec<u8>>,
    ) -> PyResult<Guest> {
        let opts = GuestOptions {
            timeout: crate::util::duration(timeout, "timeout")?,
            sid,
        };
        if opts.timeout.is_zero() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "timeout must be positive",
            ));
        }
        let mut g = py
            .detach(move || {
                CoreGuest::connect(socket_path, opts).map(|g| CoreBox(Core::Guest(Box::new(g))))
            })
            .py_err(py)?;
        let Core::Guest(guest) = &mut g.0 else {
            unreachable!("built as a guest")
        };
        let db = guest.link().0.doorbell().clone();
        let seg = guest.segment().clone();
        let peer = guest.peer_id();
        Ok(Guest {
            session: Arc::new(Session {
                state: Mutex::new(State::new(g.0)),
                guest: Some((db, seg, peer)),
            }),
        })
    }

    /// This guest's peer id (1..=255).
    #[getter]
    fn peer_id(&self) -> u8 {
        self.peer()
    }

    /// A path other processes can open to map the segment.
    #[getter]
    fn segment_path(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self
            .session
            .segment_info(py)?
            .0
            .to_string_lossy()
            .into_owned())
    }

    /// The largest payload the segment accepts.
    #[getter]
    fn max_payload_size(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.session.segment_info(py)?.1)
    }

    /// Send a copy of ``data`` (any buffer-protocol object), waiting up to ``timeout``
    /// seconds (None = forever) while the ring or pool is full.
    #[pyo3(signature = (data, timeout=None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let src = Source::new(data)?;
        self.session.send(py, self.peer(), &src, timeout)
    }

    /// Send without waiting (``WouldBlock`` subclasses on backpressure).
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let src = Source::new(data)?;
        self.session.send(py, self.peer(), &src, Some(0.0))
    }

    /// Reserve ``size`` bytes for a zero-copy send.
    fn reserve(&self, py: Python<'_>, size: i64) -> PyResult<Reservation> {
        let size = size_arg(size, "size")?;
        self.session.reserve(py, self.peer(), size)
    }

    /// Receive the next message, waiting up to ``timeout`` seconds (None = forever).
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Message> {
        self.session
            .recv(py, self.peer(), timeout)
            .map_err(|e| e.into_pyerr(py))
    }

    /// The next message if one is waiting, else None.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Option<Message>> {
        self.session.try_recv(py, self.peer())
    }

    /// Wait up to ``timeout`` seconds for the host to ring (data, space, goodbye,
    /// growth). Returns True if it rang, False on timeout.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = deadline(timeout)?;
        let db = self.doorbell();
        loop {
            let Some(slice) = next_slice(deadline, WAIT_SLICE) else {
                return Ok(false);
            };
            match py.detach(|| db.wait(Some(slice))) {
                Ok(WaitOutcome::Signaled) => {
                    self.session.refresh();
                    return Ok(true);
                }
                Ok(WaitOutcome::PeerGone) => {
                    return Err(Fail::Recv(RecvError::PeerGone).into_pyerr(py));
                }
                Ok(WaitOutcome::Timeout) => {}
                Err(e) => return Err(Fail::Session(e.into()).into_pyerr(py)),
            }
            py.check_signals()?;
        }
    }

    /// Raise if the host said goodbye (``HostGoodbyeError``), evicted this guest
    /// (``PeerGoneError``) or truncated the segment (``CorruptError``).
    fn check_host(&self, py: Python<'_>) -> PyResult<()> {
        let r = {
            let mut st = lock(py, &self.session.state);
            match st.core() {
                Ok(Core::Guest(g)) => g.check_host().map_err(Fail::from),
                Ok(Core::Host(_)) => Ok(()),
                Err(f) => Err(f),
            }
        };
        r.py_err(py)
    }

    /// Per size class: slot size, slot count and allocated slots.
    fn pool_stats(&self, py: Python<'_>) -> PyResult<Vec<PoolClassStats>> {
        self.session.pool_stats(py)
    }

    /// Say goodbye, unmap the segment and close the descriptors. Raises
    /// ``BufferError`` while memoryviews of messages or reservations are alive.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.session.close(py)
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.session.is_closed(py)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Message> {
        match self.session.recv(py, self.peer(), None) {
            Ok(m) => Ok(m),
            Err(e) if e.is_host_goodbye() => Err(PyStopIteration::new_err(())),
            Err(e) => Err(e.into_pyerr(py)),
        }
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyAny> {
        enter(slf.as_any())
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.closed(py) { " closed" } else { "" };
        format!("<roam_shm.Guest peer_id={}{state}>", self.peer())
    }
}

impl Guest {
    fn peer(&self) -> u8 {
        self.session.guest.as_ref().map_or(0, |g| g.2)
    }

    fn doorbell(&self) -> Arc<Doorbell> {
        self.session
            .guest
            .as_ref()
            .map(|g| g.0.clone())
            .expect("a guest session has its doorbell")
    }
}
