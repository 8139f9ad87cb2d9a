//! The roam v7 segment: header, peer table, per-guest BipBuffers, frames, the shared
//! variable-size slot pool, the bootstrap handshake and the host/guest sessions.
//! See `../shared/notes/roam-v7-layout.md` for the byte-level contract.

pub mod bootstrap;
pub mod config;
pub mod frame;
pub mod header;
pub mod mmap_ctrl;
pub mod peer;
pub mod var_pool;

#[cfg(not(feature = "loom"))]
pub mod guest;
#[cfg(not(feature = "loom"))]
pub mod host;
#[cfg(not(feature = "loom"))]
pub mod link;
#[cfg(not(feature = "loom"))]
pub mod mapping;
#[cfg(not(feature = "loom"))]
pub mod shared;
#[cfg(not(feature = "loom"))]
pub mod sigbus;

/// Errors of the session layer (host, guest, links).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A system call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The segment configuration is invalid.
    #[error("invalid segment configuration: {0}")]
    Config(#[from] config::ConfigError),
    /// Mapping the segment failed.
    #[cfg(not(feature = "loom"))]
    #[error(transparent)]
    Mapping(#[from] mapping::MappingError),
    /// The segment header is invalid (roam's `validate`).
    #[error("not a roam v7 segment: {0}")]
    BadSegment(&'static str),
    /// The segment failed our stricter validation.
    #[error(transparent)]
    Segment(#[from] header::SegmentError),
    /// A region bounds check failed.
    #[error(transparent)]
    Region(#[from] crate::region::RegionError),
    /// The segment file was truncated under this process.
    #[error("segment file was truncated under this process")]
    SegmentTruncated,
    /// A frame could not be encoded or decoded.
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    /// A ring operation failed (corrupt header).
    #[error("ring: {0}")]
    Ring(String),
    /// A pool operation failed.
    #[error("slot pool: {0}")]
    Pool(String),
    /// A peer-table operation failed.
    #[error(transparent)]
    Peer(#[from] peer::PeerError),
    /// The bootstrap handshake failed.
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::BootstrapError),
    /// The mmap control channel failed.
    #[error("mmap control: {0}")]
    MmapControl(String),
    /// A doorbell failed.
    #[error(transparent)]
    Doorbell(#[from] crate::doorbell::DoorbellError),
    /// The host refused the guest (bootstrap error response).
    #[error("host rejected the guest: {0}")]
    Rejected(String),
    /// A zero-copy send reservation is already outstanding on this link.
    #[error("a send reservation is already outstanding on this link")]
    ReservationPending,
    /// No peer entry is free.
    #[error("no free peer slots")]
    NoFreePeer,
    /// No connected peer has this id.
    #[error("unknown peer {0}")]
    UnknownPeer(u8),
    /// The host assigned an impossible peer id.
    #[error("host assigned invalid peer id {0}")]
    BadPeerId(u32),
    /// The host set `host_goodbye`.
    #[error("host said goodbye")]
    HostGoodbye,
    /// The host reset our peer entry (it considers us gone).
    #[error("evicted by the host")]
    Evicted,
    /// A bug or an impossible state; the message says which.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl SessionError {
    #[cfg(not(feature = "loom"))]
    pub(crate) fn io(op: &'static str, source: std::io::Error) -> SessionError {
        SessionError::Io { op, source }
    }
}

impl From<crate::bipbuf::BipBufError> for SessionError {
    fn from(e: crate::bipbuf::BipBufError) -> Self {
        SessionError::Ring(e.to_string())
    }
}

impl From<var_pool::VarPoolError> for SessionError {
    fn from(e: var_pool::VarPoolError) -> Self {
        SessionError::Pool(e.to_string())
    }
}

impl From<mmap_ctrl::MmapCtrlError> for SessionError {
    fn from(e: mmap_ctrl::MmapCtrlError) -> Self {
        SessionError::MmapControl(e.to_string())
    }
}
