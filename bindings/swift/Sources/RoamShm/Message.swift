import CRoamShm
import Foundation

/// Where a received payload lives in shared memory.
public enum MessageKind: Sendable, Equatable {
    /// Inline in the ring (small payloads, up to the inline threshold).
    case inline
    /// In a slot of the shared pool.
    case slot
    /// In a separately mapped region (payloads larger than the largest slot).
    case mmap
}

/// What a ``Message`` needs from the session that received it. Both methods are
/// called with the owner's lock held.
protocol MessageHolder: NativeHandleOwner {
    /// Whether the message `token` received from `peer` is still held.
    func isHeld(token: UInt64, peer: UInt8) -> Bool
    /// Release it (no-op if it is not held any more).
    func releaseHeld(token: UInt64, peer: UInt8) throws
}

/// A received message: a zero-copy view of its payload in shared memory.
///
/// The bytes stay where the sender wrote them until the message is released, by
/// ``release()``, by `deinit`, or by the session (closing it; a host also when the
/// peer goes away or is disconnected). A link holds one message at a time: release
/// it before receiving the next (``RoamGuest/messages`` does that for you).
///
/// Reading is scoped: ``withUnsafeBytes(_:)`` lends the bytes for the duration of a
/// closure and throws ``RoamError/Released`` once the message is released, so a
/// view can never outlive its message. Keeping the bytes is the explicit opt-in:
/// ``copyData()``.
///
/// A message keeps its session alive. It is `Sendable`: all its state is read
/// under the session's lock.
public final class Message: @unchecked Sendable {
    // @unchecked Sendable: immutable fields; validity is checked under owner.lock.
    /// Payload length in bytes.
    public let count: Int
    /// Where the payload lives.
    public let kind: MessageKind
    /// The sender: the guest's peer id on a host, 0 (the host) on a guest.
    public let peer: UInt8
    private let base: UnsafeRawPointer
    private let token: UInt64
    private let owner: any MessageHolder

    init(base: UnsafeRawPointer, count: Int, kind: MessageKind, peer: UInt8, token: UInt64,
         owner: any MessageHolder)
    {
        self.base = base
        self.count = count
        self.kind = kind
        self.peer = peer
        self.token = token
        self.owner = owner
    }

    deinit {
        try? release()
    }

    /// Whether the message was released (its bytes may already be reused).
    public var isReleased: Bool {
        owner.locked { !owner.isHeld(token: token, peer: peer) }
    }

    /// Call `body` with a read-only view of the payload, in place in shared memory.
    ///
    /// The pointer is valid only during `body`: do not store or return it. The
    /// session is locked meanwhile, so keep `body` short (it may still call the
    /// session, e.g. to echo the bytes with ``RoamGuest/send(count:timeout:_:)``).
    ///
    /// - Throws: ``RoamError/Released`` if the message was released, or what `body`
    ///   throws.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try owner.locked {
            guard owner.isHeld(token: token, peer: peer) else { throw RoamError.Released }
            return try body(UnsafeRawBufferPointer(start: base, count: count))
        }
    }

    /// Copy the payload out of shared memory (the explicit opt-in to a copy).
    ///
    /// - Throws: ``RoamError/Released`` if the message was released.
    public func copyData() throws -> Data {
        try withUnsafeBytes { Data($0) }
    }

    /// Give the payload's storage back to the sender (its slot or ring bytes) so the
    /// link can deliver the next message. Releasing twice does nothing.
    ///
    /// - Throws: ``RoamError/Corrupt(message:)`` if the sender corrupted the slot.
    public func release() throws {
        try owner.locked { try owner.releaseHeld(token: token, peer: peer) }
    }
}

extension MessageKind {
    /// From `RoamMessage.kind`.
    init(cKind: UInt32) {
        switch cKind {
        case ROAM_MESSAGE_SLOT.rawValue: self = .slot
        case ROAM_MESSAGE_MMAP.rawValue: self = .mmap
        default: self = .inline
        }
    }
}
