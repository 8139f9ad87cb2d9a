// The control plane: configuration, layout, inspection and the error type. The
// implementations are UniFFI-generated (module RoamShmFFI); this file gives them
// their public names in RoamShm, so `import RoamShm` is all a user writes.

import RoamShmFFI

/// Every error RoamShm throws. Generated from Rust (`bindings/swift/rust/src/error.rs`);
/// the hot path maps the C ABI's status codes onto the same cases.
public typealias RoamError = RoamShmFFI.RoamError
/// One class of the shared slot pool.
public typealias SizeClass = RoamShmFFI.SizeClass
/// Geometry of a segment a host creates.
public typealias SegmentConfig = RoamShmFFI.SegmentConfig
/// Where everything lives in a segment (bytes).
public typealias SegmentLayout = RoamShmFFI.SegmentLayout
/// A snapshot of a segment: header, peers, slot pool.
public typealias SegmentInfo = RoamShmFFI.SegmentInfo
/// One entry of a segment's peer table.
public typealias PeerInfo = RoamShmFFI.PeerInfo
/// State of a peer entry.
public typealias PeerState = RoamShmFFI.PeerState
/// Usage of one slot class.
public typealias SlotClassUsage = RoamShmFFI.SlotClassUsage

extension SegmentConfig {
    /// 8 guests, 64 KiB rings, slot classes 1 KiB×64, 16 KiB×16 and 256 KiB×4, the
    /// default inline threshold (256 B), 16 MiB payloads, heartbeats off.
    public static var `default`: SegmentConfig { RoamShmFFI.defaultSegmentConfig() }

    /// Validate this configuration and compute its layout.
    ///
    /// - Throws: ``RoamError/InvalidConfig(message:)`` naming the first rule broken.
    public func layout() throws -> SegmentLayout {
        try RoamShmFFI.segmentLayout(config: self)
    }
}

extension SegmentInfo {
    /// Map the segment file at `path` (e.g. `/dev/shm/NAME`, or a host's
    /// ``RoamHost/segmentPath``) and snapshot its header, peer table and slot usage.
    /// Nothing is written to the segment.
    ///
    /// - Throws: ``RoamError/InvalidArgument(message:)`` for an empty path,
    ///   ``RoamError/Io(operation:message:errno:)`` if it cannot be opened,
    ///   ``RoamError/BadSegment(message:)`` if it is not a roam v7 segment.
    public init(inspecting path: String) throws {
        self = try RoamShmFFI.inspectSegment(path: path)
    }

    /// Slots allocated right now across all classes.
    public var allocatedSlots: Int {
        slotClasses.reduce(0) { $0 + Int($1.allocated) }
    }
}

extension RoamError {
    /// Whether the error is transient backpressure (``RoamError/Full`` or
    /// ``RoamError/PoolExhausted(len:)``): retrying after the peer reads can succeed.
    public var isBackpressure: Bool {
        switch self {
        case .Full, .PoolExhausted: return true
        default: return false
        }
    }
}

/// Library facts.
public enum RoamShmLibrary {
    /// The roam-shm version this package was built from.
    public static var version: String { RoamShmFFI.libraryVersion() }
    /// The segment format version spoken (7: roam 7.x segments).
    public static var segmentFormatVersion: UInt32 { RoamShmFFI.segmentFormatVersion() }

    /// A name no other process or earlier call uses (`<prefix>-<pid>-<n>-<nanos>`),
    /// for socket paths and `/dev/shm` segment names.
    ///
    /// - Throws: ``RoamError/InvalidArgument(message:)`` if `prefix` is empty or
    ///   contains `/`.
    public static func uniqueName(prefix: String) throws -> String {
        try RoamShmFFI.uniqueName(prefix: prefix)
    }
}
