//! The exception hierarchy and the mapping of every core error onto it.
//!
//! ```text
//! RoamError(Exception)
//! ├── SegmentFormatError            not a (valid) roam v7 segment
//! ├── ConfigError(+ValueError)      invalid geometry / arguments the core rejects
//! ├── PayloadTooLargeError(+ValueError)
//! ├── InvalidHandleError(+ValueError)  stale / double-freed / out-of-range slot handle
//! ├── PeerGoneError(+ConnectionError)  peer closed, died, evicted us, unknown peer id
//! │   └── HostGoodbyeError          the host shut down in order
//! ├── WouldBlock(+BlockingIOError)  backpressure: retry later
//! │   ├── RingFullError             no room in the ring for the frame
//! │   └── PoolExhaustedError        no free slot of a fitting class
//! ├── RoamTimeoutError(+TimeoutError)
//! ├── ProtocolError                 bootstrap / mmap-control protocol failures
//! │   ├── RejectedError             the host refused the guest (or had no free peer)
//! │   └── CorruptError              the peer wrote invalid data into shared memory
//! ├── ReservationPendingError       a zero-copy reservation is already open on the link
//! ├── ClosedError                   the session/object/message was closed or released
//! └── RoamOSError(+OSError)         a system call failed (errno set when known)
//! ```
//!
//! Types with one base come from PyO3's `create_exception!`. Those that also derive from
//! a built-in (so `except TimeoutError:` catches a roam timeout) cannot: the macro takes
//! a single base, so they are made once with `type(name, bases, ns)` and cached.
//!
//! Locked sections never build Python errors (that may allocate and run arbitrary code
//! through the garbage collector, which could re-enter the session lock): they return
//! a [`Fail`], which becomes a `PyErr` after the lock is released.

use pyo3::exceptions::{
    PyBlockingIOError, PyBufferError, PyConnectionError, PyException, PyOSError, PyTimeoutError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use roam_shm::segment::SessionError;
use roam_shm::segment::link::{RecvError, SendError};
use roam_shm::segment::mapping::MappingError;
use roam_shm::segment::var_pool::VarPoolError;

pyo3::create_exception!(
    roam_shm,
    RoamError,
    PyException,
    "Base class of every roam-shm error."
);
pyo3::create_exception!(
    roam_shm,
    SegmentFormatError,
    RoamError,
    "The memory is not a valid roam v7 segment (bad magic, version, geometry or size)."
);
pyo3::create_exception!(
    roam_shm,
    ProtocolError,
    RoamError,
    "A peer broke the bootstrap or mmap-control protocol."
);
pyo3::create_exception!(
    roam_shm,
    RejectedError,
    ProtocolError,
    "The host refused the guest (error response, no free peer slot, shutting down)."
);
pyo3::create_exception!(
    roam_shm,
    CorruptError,
    ProtocolError,
    "The peer wrote invalid data into shared memory; the link can no longer be trusted."
);
pyo3::create_exception!(
    roam_shm,
    ReservationPendingError,
    RoamError,
    "A zero-copy send reservation is already outstanding on this link."
);
pyo3::create_exception!(
    roam_shm,
    ClosedError,
    RoamError,
    "The session or object is closed, or the message/slot/reservation was released."
);

/// Exceptions that also derive from a built-in exception (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dual {
    /// ConfigError(RoamError, ValueError)
    Config,
    /// PayloadTooLargeError(RoamError, ValueError)
    TooLarge,
    /// InvalidHandleError(RoamError, ValueError)
    InvalidHandle,
    /// PeerGoneError(RoamError, ConnectionError)
    PeerGone,
    /// HostGoodbyeError(PeerGoneError)
    HostGoodbye,
    /// WouldBlock(RoamError, BlockingIOError)
    WouldBlock,
    /// RingFullError(WouldBlock)
    RingFull,
    /// PoolExhaustedError(WouldBlock)
    PoolExhausted,
    /// RoamTimeoutError(RoamError, TimeoutError)
    Timeout,
    /// RoamOSError(RoamError, OSError)
    Os,
}

const DUALS: [Dual; 10] = [
    Dual::Config,
    Dual::TooLarge,
    Dual::InvalidHandle,
    Dual::PeerGone,
    Dual::HostGoodbye,
    Dual::WouldBlock,
    Dual::RingFull,
    Dual::PoolExhausted,
    Dual::Timeout,
    Dual::Os,
];

static DUAL_TYPES: [PyOnceLock<Py<PyType>>; 10] = [const { PyOnceLock::new() }; 10];

impl Dual {
    fn index(self) -> usize {
        DUALS.iter().position(|d| *d == self).expect("listed")
    }

    /// Python name.
    pub fn name(self) -> &'static str {
        match self {
            Dual::Config => "ConfigError",
            Dual::TooLarge => "PayloadTooLargeError",
            Dual::InvalidHandle => "InvalidHandleError",
            Dual::PeerGone => "PeerGoneError",
            Dual::HostGoodbye => "HostGoodbyeError",
            Dual::WouldBlock => "WouldBlock",
            Dual::RingFull => "RingFullError",
            Dual::PoolExhausted => "PoolExhaustedError",
            Dual::Timeout => "RoamTimeoutError",
            Dual::Os => "RoamOSError",
        }
    }

    fn doc(self) -> &'static str {
        match self {
            Dual::Config => "Invalid configuration or arguments (also a ValueError).",
            Dual::TooLarge => "The payload exceeds the segment's maximum (also a ValueError).",
            Dual::InvalidHandle => {
                "A slot handle is stale, double-freed or out of range (also a ValueError)."
            }
            Dual::PeerGone => {
                "The peer closed, died or evicted us, or no such peer is connected (also a ConnectionError)."
            }
            Dual::HostGoodbye => "The host shut the segment down in order.",
            Dual::WouldBlock => {
                "Backpressure: the operation cannot complete now; retry after the peer consumes (also a BlockingIOError)."
            }
            Dual::RingFull => "The ring has no room for the frame now.",
            Dual::PoolExhausted => "No slot of a fitting size class is free now.",
            Dual::Timeout => "A blocking operation timed out (also a TimeoutError).",
            Dual::Os => "A system call failed (also an OSError; errno is set when known).",
        }
    }

    fn bases<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let roam = py.get_type::<RoamError>();
        let t = match self {
            Dual::Config | Dual::TooLarge | Dual::InvalidHandle => {
                PyTuple::new(py, [roam, py.get_type::<PyValueError>()])?
            }
            Dual::PeerGone => PyTuple::new(py, [roam, py.get_type::<PyConnectionError>()])?,
            Dual::WouldBlock => PyTuple::new(py, [roam, py.get_type::<PyBlockingIOError>()])?,
            Dual::Timeout => PyTuple::new(py, [roam, py.get_type::<PyTimeoutError>()])?,
            Dual::Os => PyTuple::new(py, [roam, py.get_type::<PyOSError>()])?,
            Dual::HostGoodbye => PyTuple::new(py, [Dual::PeerGone.type_object(py)?])?,
            Dual::RingFull | Dual::PoolExhausted => {
                PyTuple::new(py, [Dual::WouldBlock.type_object(py)?])?
            }
        };
        Ok(t)
    }

    /// The (cached) type object.
    pub fn type_object(self, py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
        let ty = DUAL_TYPES[self.index()].get_or_try_init(py, || -> PyResult<Py<PyType>> {
            let ns = PyDict::new(py);
            ns.set_item("__module__", "roam_shm")?;
            ns.set_item("__doc__", self.doc())?;
            let made = py
                .get_type::<PyType>()
                .call1((self.name(), self.bases(py)?, ns))?;
            Ok(made.cast_into::<PyType>()?.unbind())
        })?;
        Ok(ty.bind(py).clone())
    }

    /// A new exception of this type with `args`.
    pub fn err<A>(self, py: Python<'_>, args: A) -> PyErr
    where
        A: for<'py> pyo3::call::PyCallArgs<'py>,
    {
        match self
            .type_object(py)
            .and_then(|t| t.call1(args).map(|e| PyErr::from_value(e)))
        {
            Ok(e) => e,
            Err(e) => e,
        }
    }

    /// A new exception of this type with one message argument.
    pub fn msg(self, py: Python<'_>, msg: impl Into<String>) -> PyErr {
        self.err(py, (msg.into(),))
    }
}

/// Register every exception type on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RoamError", py.get_type::<RoamError>())?;
    m.add("SegmentFormatError", py.get_type::<SegmentFormatError>())?;
    m.add("ProtocolError", py.get_type::<ProtocolError>())?;
    m.add("RejectedError", py.get_type::<RejectedError>())?;
    m.add("CorruptError", py.get_type::<CorruptError>())?;
    m.add(
        "ReservationPendingError",
        py.get_type::<ReservationPendingError>(),
    )?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    for d in DUALS {
        m.add(d.name(), d.type_object(py)?)?;
    }
    Ok(())
}

/// An error decided while holding a lock, turned into a Python exception afterwards.
#[derive(Debug)]
pub enum Fail {
    /// A session-layer error.
    Session(SessionError),
    /// A send error.
    Send(SendError),
    /// A receive error.
    Recv(RecvError),
    /// A slot-pool error.
    Pool(VarPoolError),
    /// A mapping error.
    Mapping(MappingError),
    /// One of our exception types with a message.
    Dual(Dual, String),
    /// ClosedError.
    Closed(String),
    /// Built-in BufferError (views still exported).
    Buffer(String),
    /// Built-in ValueError.
    Value(String),
    /// A Python exception already made.
    Py(PyErr),
}

impl From<SessionError> for Fail {
    fn from(e: SessionError) -> Self {
        Fail::Session(e)
    }
}
impl From<SendError> for Fail {
    fn from(e: SendError) -> Self {
        Fail::Send(e)
    }
}
impl From<RecvError> for Fail {
    fn from(e: RecvError) -> Self {
        Fail::Recv(e)
    }
}
impl From<VarPoolError> for Fail {
    fn from(e: VarPoolError) -> Self {
        Fail::Pool(e)
    }
}
impl From<MappingError> for Fail {
    fn from(e: MappingError) -> Self {
        Fail::Mapping(e)
    }
}
impl From<PyErr> for Fail {
    fn from(e: PyErr) -> Self {
        Fail::Py(e)
    }
}

/// Result of a locked section.
pub type FResult<T> = Result<T, Fail>;

/// Extension: convert an `FResult` into a `PyResult` (after unlocking).
pub trait IntoPy<T> {
    /// Convert.
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T, E: Into<Fail>> IntoPy<T> for Result<T, E> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| e.into().into_pyerr(py))
    }
}

fn os_error(py: Python<'_>, errno: Option<i32>, msg: String) -> PyErr {
    match errno {
        Some(n) => Dual::Os.err(py, (n, msg)),
        None => Dual::Os.msg(py, msg),
    }
}

fn mapping_err(py: Python<'_>, e: MappingError) -> PyErr {
    match &e {
        MappingError::Io { source, .. } => os_error(py, source.raw_os_error(), e.to_string()),
        MappingError::TooShort { .. } => SegmentFormatError::new_err(e.to_string()),
        MappingError::BadLength { .. } => Dual::Config.msg(py, e.to_string()),
    }
}

fn session_err(py: Python<'_>, e: SessionError) -> PyErr {
    let msg = e.to_string();
    match e {
        SessionError::Io { source, .. } => os_error(py, source.raw_os_error(), msg),
        SessionError::Config(_) => Dual::Config.msg(py, msg),
        SessionError::Mapping(m) => mapping_err(py, m),
        SessionError::BadSegment(_) | SessionError::Segment(_) => SegmentFormatError::new_err(msg),
        SessionError::Region(_)
        | SessionError::SegmentTruncated
        | SessionError::Frame(_)
        | SessionError::Ring(_)
        | SessionError::Pool(_) => CorruptError::new_err(msg),
        SessionError::Peer(_)
        | SessionError::Bootstrap(_)
        | SessionError::MmapControl(_)
        | SessionError::BadPeerId(_) => ProtocolError::new_err(msg),
        SessionError::Doorbell(_) => os_error(py, None, msg),
        SessionError::Rejected(_) | SessionError::NoFreePeer => RejectedError::new_err(msg),
        SessionError::ReservationPending => ReservationPendingError::new_err(msg),
        SessionError::UnknownPeer(_) | SessionError::Evicted => Dual::PeerGone.msg(py, msg),
        SessionError::HostGoodbye => Dual::HostGoodbye.msg(py, msg),
        SessionError::Internal(_) => RoamError::new_err(msg),
    }
}

impl Fail {
    /// The Python exception.
    pub fn into_pyerr(self, py: Python<'_>) -> PyErr {
        match self {
            Fail::Session(e) => session_err(py, e),
            Fail::Send(e) => {
                let msg = e.to_string();
                match e {
                    SendError::Full => Dual::RingFull.msg(py, msg),
                    SendError::PoolExhausted(_) => Dual::PoolExhausted.msg(py, msg),
                    SendError::TooLarge { .. } => Dual::TooLarge.msg(py, msg),
                    SendError::PeerGone => Dual::PeerGone.msg(py, msg),
                    SendError::Timeout => Dual::Timeout.msg(py, msg),
                    SendError::Session(s) => session_err(py, s),
                }
            }
            Fail::Recv(e) => {
                let msg = e.to_string();
                match e {
                    RecvError::Corrupt(_) => CorruptError::new_err(msg),
                    RecvError::PeerGone => Dual::PeerGone.msg(py, msg),
                    RecvError::Timeout => Dual::Timeout.msg(py, msg),
                    RecvError::Session(s) => session_err(py, s),
                }
            }
            Fail::Pool(e) => {
                let msg = e.to_string();
                match e {
                    VarPoolError::Corrupt { .. } => CorruptError::new_err(msg),
                    VarPoolError::DoubleFree { .. }
                    | VarPoolError::StaleGeneration { .. }
                    | VarPoolError::NotAllocated { .. }
                    | VarPoolError::WrongOwner { .. }
                    | VarPoolError::SlotOutOfRange { .. }
                    | VarPoolError::ClassOutOfRange { .. }
                    | VarPoolError::ExtentOutOfRange { .. } => Dual::InvalidHandle.msg(py, msg),
                    VarPoolError::NoClasses
                    | VarPoolError::TooManyClasses { .. }
                    | VarPoolError::InvalidClass { .. }
                    | VarPoolError::LayoutOverflow
                    | VarPoolError::NullRegion
                    | VarPoolError::Misaligned { .. }
                    | VarPoolError::TooSmall { .. } => Dual::Config.msg(py, msg),
                }
            }
            Fail::Mapping(e) => mapping_err(py, e),
            Fail::Dual(d, m) => d.msg(py, m),
            Fail::Closed(m) => ClosedError::new_err(m),
            Fail::Buffer(m) => PyBufferError::new_err(m),
            Fail::Value(m) => PyValueError::new_err(m),
            Fail::Py(e) => e,
        }
    }
}
