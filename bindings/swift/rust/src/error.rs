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
    /// The peer broke the wire protocol (bootstrap frame, descriptors, peer id).
    #[error("protocol violation: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
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
    /// The call is not valid in the session's current state (e.g. accepting
    /// before listening).
    #[error("invalid state: {message}")]
    InvalidState {
        /// Why.
        message: String,
    },
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

/// The integers in `s`, in order (to recover the values a status code's message
/// carries, e.g. "payload of 9 bytes exceeds the segment maximum of 8").
fn numbers_in(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect()
}

impl RoamError {
    /// The error for a C ABI status code (`RoamStatus`) and the detailed message
    /// `roam_last_error_message` gave for it. Unknown codes (and `ROAM_OK`, which
    /// is not an error) become [`RoamError::Internal`].
    pub fn from_status(status: i32, message: String) -> RoamError {
        use roam_shm_ffi::RoamStatus as S;
        let Some(s) = S::from_code(status) else {
            return RoamError::Internal {
                message: format!("unknown status {status}: {message}"),
            };
        };
        match s {
            S::ROAM_ERR_NULL_POINTER
            | S::ROAM_ERR_INVALID_ARGUMENT
            | S::ROAM_ERR_BUFFER_TOO_SMALL => RoamError::InvalidArgument { message },
            S::ROAM_ERR_INVALID_CONFIG => RoamError::InvalidConfig { message },
            S::ROAM_ERR_TOO_LARGE => {
                let n = numbers_in(&message);
                RoamError::TooLarge {
                    len: n.first().copied().unwrap_or(0),
                    max: n.get(1).and_then(|&m| u32::try_from(m).ok()).unwrap_or(0),
                }
            }
            S::ROAM_ERR_UNKNOWN_PEER => RoamError::UnknownPeer {
                peer: numbers_in(&message)
                    .last()
                    .and_then(|&p| u8::try_from(p).ok())
                    .unwrap_or(0),
            },
            S::ROAM_ERR_RESERVATION_PENDING => RoamError::ReservationPending,
            S::ROAM_ERR_NO_RESERVATION | S::ROAM_ERR_INVALID_STATE => {
                RoamError::InvalidState { message }
            }
            S::ROAM_ERR_FULL => RoamError::Full,
            S::ROAM_ERR_POOL_EXHAUSTED => RoamError::PoolExhausted {
                len: numbers_in(&message).first().copied().unwrap_or(0),
            },
            S::ROAM_ERR_TIMEOUT => RoamError::Timeout,
            S::ROAM_ERR_NO_FREE_PEER => RoamError::NoFreePeer,
            S::ROAM_ERR_PEER_GONE => RoamError::PeerGone,
            S::ROAM_ERR_HOST_GOODBYE => RoamError::HostGoodbye,
            S::ROAM_ERR_EVICTED => RoamError::Evicted,
            S::ROAM_ERR_REJECTED => RoamError::Rejected {
                reason: message
                    .strip_prefix("host rejected the guest: ")
                    .map(str::to_owned)
                    .unwrap_or(message),
            },
            S::ROAM_ERR_PROTOCOL => RoamError::Protocol { message },
            S::ROAM_ERR_CORRUPT => RoamError::Corrupt { message },
            S::ROAM_ERR_BAD_SEGMENT | S::ROAM_ERR_SEGMENT_TRUNCATED => {
                RoamError::BadSegment { message }
            }
            S::ROAM_ERR_IO | S::ROAM_ERR_MAPPING => RoamError::Io {
                // The core's messages read "<operation>: <OS error>".
                operation: message
                    .split_once(": ")
                    .map_or("system call", |(op, _)| op)
                    .to_owned(),
                errno: message
                    .rsplit_once("(os error ")
                    .and_then(|(_, rest)| rest.trim_end_matches(')').parse().ok()),
                message,
            },
            // The Swift API turns "nothing now" into nil / a retry; reaching here is a bug.
            S::ROAM_OK | S::ROAM_ERR_WOULD_BLOCK | S::ROAM_ERR_PANIC | S::ROAM_ERR_INTERNAL => {
                RoamError::Internal {
                    message: format!("{}: {message}", status_name(s)),
                }
            }
        }
    }
}

/// `ROAM_ERR_FULL` etc. (the part of `roam_status_str` before the colon).
fn status_name(s: roam_shm_ffi::RoamStatus) -> &'static str {
    let d = s.describe();
    d.split_once(':').map_or(d, |(name, _)| name)
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
            S::Frame(_) | S::Peer(_) => RoamError::Protocol {
                message: e.to_string(),
            },
            S::Ring(_) | S::Pool(_) | S::MmapControl(_) => RoamError::Corrupt {
                message: e.to_string(),
            },
            S::Bootstrap(_) | S::Doorbell(_) => RoamError::Io {
                operation: "bootstrap".to_owned(),
                message: e.to_string(),
                errno: None,
            },
            S::Rejected(reason) => RoamError::Rejected { reason },
            S::ReservationPending => RoamError::ReservationPending,
            S::NoFreePeer => RoamError::NoFreePeer,
            S::UnknownPeer(peer) => RoamError::UnknownPeer { peer },
            S::BadPeerId(id) => RoamError::Protocol {
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

    #[test]
    fn every_status_code_has_a_case() {
        use roam_shm_ffi::RoamStatus as S;
        for s in S::ALL {
            let e = RoamError::from_status(s as i32, "x".into());
            let internal = matches!(e, RoamError::Internal { .. });
            let expected_internal = matches!(
                s,
                S::ROAM_OK | S::ROAM_ERR_WOULD_BLOCK | S::ROAM_ERR_PANIC | S::ROAM_ERR_INTERNAL
            );
            assert_eq!(internal, expected_internal, "{s:?} -> {e:?}");
        }
        assert!(matches!(
            RoamError::from_status(12345, "?".into()),
            RoamError::Internal { ref message } if message.contains("12345")
        ));
    }

    #[test]
    fn status_messages_give_back_their_values() {
        use roam_shm_ffi::RoamStatus as S;
        // The messages the C ABI passes on from the core (SendError's Display).
        let too_large = SendError::TooLarge {
            len: 70000,
            max: 65536,
        }
        .to_string();
        assert_eq!(
            RoamError::from_status(S::ROAM_ERR_TOO_LARGE as i32, too_large),
            RoamError::TooLarge {
                len: 70000,
                max: 65536
            }
        );
        let exhausted = SendError::PoolExhausted(900).to_string();
        assert_eq!(
            RoamError::from_status(S::ROAM_ERR_POOL_EXHAUSTED as i32, exhausted),
            RoamError::PoolExhausted { len: 900 }
        );
        assert_eq!(
            RoamError::from_status(
                S::ROAM_ERR_UNKNOWN_PEER as i32,
                "no connected peer has id 7".into()
            ),
            RoamError::UnknownPeer { peer: 7 }
        );
        let rejected = SessionError::Rejected("no free peer slots".into()).to_string();
        assert_eq!(
            RoamError::from_status(S::ROAM_ERR_REJECTED as i32, rejected),
            RoamError::Rejected {
                reason: "no free peer slots".into()
            }
        );
        let io = SessionError::Io {
            op: "connect",
            source: std::io::Error::from_raw_os_error(libc_enoent()),
        }
        .to_string();
        match RoamError::from_status(S::ROAM_ERR_IO as i32, io) {
            RoamError::Io {
                operation, errno, ..
            } => {
                assert_eq!(operation, "connect");
                assert_eq!(errno, Some(libc_enoent()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn libc_enoent() -> i32 {
        2
    }
}
