//! [`RoamError`]: the one error type of the Swift API.
//!
//! UniFFI turns it into `public enum RoamError: Swift.Error` with associated
//! values. The Swift wrapper maps the C ABI's status codes (hot path) onto the same
//! cases, so callers handle a single type whichever layer failed.

use roam_shm::segment::SessionError;
use roam_shm::segment::config::ConfigError;
use roam_shm::segment::link::{RecvError, SendError};

/// Every way a roam-shm call can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum RoamError {
    /// The segment configuration breaks a creation rule (the message names it).
    #[error("invalid segment configuration: {message}")]
    InvalidConfig {
        /// Which rule, with the offending values.
        message: String,
    },
    /// An argument is out of range or malformed (a path, a name, a size).
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong with it.
        message: String,
    },
    /// A system call failed.
    #[error("{operation}: {message}")]
    Io {
        /// What was being done.
        operation: String,
        /// The OS error.
        message: String,
        /// The OS error number, if there is one.
        errno: Option<i32>,
    },
    /// The file or memory is not a valid roam v7 segment (or was truncated).
    #[error("not a valid segment: {message}")]
    BadSegment {
        /// What failed validation.
        message: String,
    },
    /// The host refused the guest (its bootstrap error response).
    #[error("host rejected the guest: {reason}")]
    Rejected {
        /// The host's reason.
        reason: String,
    },
    /// Every peer slot of the segment is taken.
    #[error("no free peer slots")]
    NoFreePeer,
    /// No connected peer has this id.
    #[error("unknown peer {peer}")]
    UnknownPeer {
        /// The peer id asked for.
        peer: u8,
    },
    /// The host shut down (it set `host_goodbye`).
    #[error("host said goodbye")]
    HostGoodbye,
    /// The host considers this guest gone and reset its peer entry.
    #[error("evicted by the host")]
    Evicted,
    /// The other side is gone (closed or died).
    #[error("peer gone")]
    PeerGone,
    /// A blocking call timed out.
    #[error("timed out")]
    Timeout,
    /// Backpressure: the ring has no room now; retry after the peer reads.
    #[error("ring full")]
    Full,
    /// Backpressure: no slot of a large enough class is free now.
    #[error("slot pool exhausted for a {len}-byte payload")]
    PoolExhausted {
        /// Payload length.
        len: u64,
    },
    /// The payload exceeds the segment's maximum payload size.
    #[error("payload of {len} bytes exceeds the segment maximum of {max}")]
    TooLarge {
        /// Payload length.
        len: u64,
        /// The segment's maximum.
        max: u32,
    },
    /// The peer wrote invalid data; this link cannot be trusted any more.
    #[error("peer sent corrupt data: {message}")]
    Corrupt {
        /// What failed validation.
        message: String,
    },
    /// A zero-copy send reservation is already outstanding on this link.
    #[error("a send reservation is already outstanding on this link")]
    ReservationPending,
    /// A received message is still held: release it before receiving the next.
    #[error("a received message is still held on this link")]
    MessageHeld,
    /// The message (or reservation) was already released; its bytes are gone.
    #[error("the message was already released")]
    Released,
    /// The session was closed; its handle is gone.
    #[error("the session is closed")]
    Closed,
    /// A bug or an impossible state (including a Rust panic caught at the boundary).
    #[error("internal error: {message}")]
    Internal {
        /// What happened.
        message: String,
    },
}

impl From<ConfigError> for RoamError {
    fn from(e: ConfigError) -> Self {
        match e {
            // A header that disagrees with the formula is a bad segment, not a bad config.
            ConfigError::HeaderMismatch { .. } => RoamError::BadSegment {
                message: e.to_string(),
            },
            _ => RoamError::InvalidConfig {
                message: e.to_string(),
            },
        }
    }
}

fn io(operation: &str, e: &std::io::Error) -> RoamError {
    RoamError::Io {
        operation: operation.to_owned(),
        message: e.to_string(),
        errno: e.raw_os_error(),
    }
}

impl From<SessionError> for RoamError {
    fn from(e: SessionError) -> Self {
        use SessionError as S;
        match e {
            S::Io { op, ref source } => io(op, source),
            S::Config(c) => c.into(),
            S::Mapping(roam_shm::segment::mapping::MappingError::Io { op, ref source, .. }) => {
                RoamError::Io {
                    operation: op.to_owned(),
                    message: e.to_string(),
                    errno: source.raw_os_error(),
                }
            }
            S::Mapping(_) | S::BadSegment(_) | S::Segment(_) | S::Region(_) => {
                RoamError::BadSegment {
                    message: e.to_string(),
                }
            }
            S::SegmentTruncated => RoamError::BadSegment {
                message: e.to_string(),
            },
            S::Frame(_) | S::Ring(_) | S::Pool(_) | S::Peer(_) | S::MmapControl(_) => {
                RoamError::Corrupt {
                    message: e.to_string(),
                }
            }
            S::Bootstrap(_) | S::Doorbell(_) => RoamError::Io {
                operation: "bootstrap".to_owned(),
                message: e.to_string(),
                errno: None,
            },
            S::Rejected(reason) => RoamError::Rejected { reason },
            S::ReservationPending => RoamError::ReservationPending,
            S::NoFreePeer => RoamError::NoFreePeer,
            S::UnknownPeer(peer) => RoamError::UnknownPeer { peer },
            S::BadPeerId(id) => RoamError::Corrupt {
                message: format!("host assigned invalid peer id {id}"),
            },
            S::HostGoodbye => RoamError::HostGoodbye,
            S::Evicted => RoamError::Evicted,
            S::Internal(m) => RoamError::Internal {
                message: m.to_owned(),
            },
        }
    }
}

impl From<SendError> for RoamError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Full => RoamError::Full,
            SendError::PoolExhausted(len) => RoamError::PoolExhausted { len: len as u64 },
            SendError::TooLarge { len, max } => RoamError::TooLarge {
                len: len as u64,
                max,
            },
            SendError::PeerGone => RoamError::PeerGone,
            SendError::Timeout => RoamError::Timeout,
            SendError::Session(s) => s.into(),
        }
    }
}

impl From<RecvError> for RoamError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Corrupt(message) => RoamError::Corrupt { message },
            RecvError::PeerGone => RoamError::PeerGone,
            RecvError::Timeout => RoamError::Timeout,
            RecvError::Session(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_errors_map_to_their_swift_cases() {
        let e: RoamError = SessionError::UnknownPeer(3).into();
        assert_eq!(e, RoamError::UnknownPeer { peer: 3 });
        let e: RoamError = SessionError::Rejected("busy".into()).into();
        assert_eq!(
            e,
            RoamError::Rejected {
                reason: "busy".into()
            }
        );
        let e: RoamError = SessionError::Io {
            op: "connect",
            source: std::io::Error::from_raw_os_error(libc_enoent()),
        }
        .into();
        assert!(
            matches!(e, RoamError::Io { ref operation, errno: Some(n), .. } if operation == "connect" && n == libc_enoent())
        );
        let e: RoamError = ConfigError::MaxGuests(0).into();
        assert!(
            matches!(e, RoamError::InvalidConfig { ref message } if message.contains("max_guests"))
        );
    }

    #[test]
    fn link_errors_keep_backpressure_distinct() {
        assert_eq!(RoamError::from(SendError::Full), RoamError::Full);
        assert_eq!(
            RoamError::from(SendError::PoolExhausted(5)),
            RoamError::PoolExhausted { len: 5 }
        );
        assert_eq!(
            RoamError::from(SendError::TooLarge { len: 9, max: 8 }),
            RoamError::TooLarge { len: 9, max: 8 }
        );
        assert_eq!(RoamError::from(RecvError::Timeout), RoamError::Timeout);
        assert_eq!(
            RoamError::from(RecvError::Session(SessionError::HostGoodbye)),
            RoamError::HostGoodbye
        );
    }

    fn libc_enoent() -> i32 {
        2
    }
}
