import CRoamShm
import Foundation
import RoamShmFFI

/// Why a guest went away (``HostEvent/peerGone(peer:reason:recovery:)``).
public enum GoneReason: Sendable, Equatable {
    /// Its doorbell was closed: the process closed it or died (e.g. `kill -9`).
    case doorbellClosed
    /// The process it recorded in its peer entry no longer exists.
    case processGone(pid: UInt32)
    /// Its heartbeat is older than twice the segment's interval.
    case heartbeatStale
    /// It said goodbye (``NativeHandleOwner/close()``) and its ring is drained.
    case goodbye
    /// It never claimed its peer entry after the handshake.
    case neverAttached
    /// It wrote data that failed validation.
    case corrupt
    /// The host disconnected it (``RoamHost/disconnect(peer:)``).
    case requested
    /// A reason this version does not know (the raw C value).
    case unknown(UInt32)
}

/// What the host freed when a guest went away.
public struct Recovery: Sendable, Equatable {
    /// Messages the guest never read (their slots were freed).
    public let drainedFrames: Int
    /// Host-sent slots the guest still held, now freed.
    public let freedSentSlots: Int
    /// The guest's own slots, reclaimed from the pool.
    public let reclaimedSlots: Int

    public init(drainedFrames: Int, freedSentSlots: Int, reclaimedSlots: Int) {
        self.drainedFrames = drainedFrames
        self.freedSentSlots = freedSentSlots
        self.reclaimedSlots = reclaimedSlots
    }
}

/// Something that happened on a host (`RoamHost/poll(timeout:)`).
public enum HostEvent: Sendable, Equatable {
    /// A guest finished the handshake and got this peer id.
    case connected(peer: UInt8)
    /// The guest has messages to receive (``RoamHost/tryReceive(from:)``).
    case readable(peer: UInt8)
    /// The guest went away; its resources were recovered and its id may be reused.
    case peerGone(peer: UInt8, reason: GoneReason, recovery: Recovery)
}

/// A host: creates a segment, accepts guests on a Unix socket, exchanges messages
/// with each, and recovers the resources of guests that die.
///
/// ```swift
/// let host = try RoamHost(socketPath: "/tmp/app.sock")
/// for try await event in host.events {
///     if case .readable(let peer) = event, let m = try host.tryReceive(from: peer) {
///         try m.withUnsafeBytes { bytes in try host.send(to: peer, bytes) }  // echo
///         try m.release()
///     }
/// }
/// ```
///
/// `RoamHost` is thread-safe: calls are serialized, and a blocking poll yields to other
/// threads at least every few milliseconds. ``close()`` (or `deinit`) shuts down:
/// guests see ``RoamError/HostGoodbye``, and the socket and segment file go away.
public final class RoamHost: NativeHandleOwner, MessageHolder, @unchecked Sendable {
    // @unchecked Sendable: mutable state is guarded by `lock` (see NativeHandleOwner).

    /// The path guests (including roam 7.x ones) open to map the segment, for
    /// ``SegmentInfo/init(inspecting:)`` too.
    public let segmentPath: String
    /// The segment's configuration.
    public let config: SegmentConfig
    /// Token of the message held from each peer.
    private var held: [UInt8: UInt64] = [:]
    private var connected: Set<UInt8> = []
    private var nextToken: UInt64 = 1
    /// Blocking waits of the async API run here, off the cooperative thread pool.
    private let waitQueue = DispatchQueue(label: "roam-shm.host.wait")

    /// Create a segment and a host for it.
    ///
    /// - Parameters:
    ///   - config: the segment's geometry.
    ///   - segmentPath: `nil` backs the segment with an anonymous memfd (roam-shm
    ///     guests only); a path such as `/dev/shm/NAME` (which must not exist)
    ///     creates that file, removed on close (roam 7.x guests need a file).
    ///   - socketPath: if given, listen there for guests at once.
    /// - Throws: ``RoamError/InvalidConfig(message:)`` naming the rule broken,
    ///   ``RoamError/InvalidArgument(message:)``, ``RoamError/Io(operation:message:errno:)``.
    public init(config: SegmentConfig = .default, segmentPath: String? = nil, socketPath: String? = nil) throws {
        let session = try RoamShmFFI.createHost(config: config, segmentPath: segmentPath, socketPath: socketPath)
        let raw = try session.takeHandle()
        guard let handle = OpaquePointer(bitPattern: UInt(raw)) else {
            throw RoamError.Internal(message: "createHost returned a NULL handle")
        }
        self.segmentPath = session.segmentPath() ?? ""
        self.config = config
        super.init(handle: handle, destroy: { roam_host_destroy($0) })
    }

    /// Listen for guests on a Unix socket at `socketPath` (a stale socket file is
    /// replaced; one somebody listens on is an error).
    ///
    /// - Throws: ``RoamError/Io(operation:message:errno:)``, ``RoamError/InvalidArgument(message:)``.
    public func listen(socketPath: String) throws {
        // A Swift string passed as `const char *` would be cut at an embedded NUL.
        guard !socketPath.utf8.contains(0) else {
            throw RoamError.InvalidArgument(message: "socket path contains a NUL byte")
        }
        try withHandle { h in try check(roam_host_listen(h, socketPath)) }
    }

    /// Ids of the guests connected now.
    public var peers: [UInt8] {
        locked { connected.sorted() }
    }

    /// Complete the handshake of a connected guest whose request has arrived, if
    /// any, without blocking, and return its peer id; `nil` otherwise (a guest
    /// still sending its request completes in a later call). (`poll(timeout:)`
    /// accepts by itself; use one or the other.)
    ///
    /// - Throws: ``RoamError/InvalidState(message:)`` if not listening,
    ///   ``RoamError/NoFreePeer`` if the segment is full (the guest was refused).
    public func accept() throws -> UInt8? {
        try withHandle { h in
            var peer: UInt8 = 0
            let s = roam_host_accept(h, &peer)
            if s == statusWouldBlock { return nil }
            try check(s)
            connected.insert(peer)
            return peer
        }
    }

    // MARK: Events

    /// Wait up to `timeout` for events (connections, accepted here; messages; guests
    /// going away, recovered here), blocking the calling thread. Returns `[]` when
    /// the timeout expires; at once when messages are already waiting.
    ///
    /// - Parameter timeout: `.zero` (the default) only looks; `nil` waits as long
    ///   as it takes.
    public func poll(timeout: Duration? = .zero) throws -> [HostEvent] {
        try blockingPoll(timeout, cancel: nil)
    }

    /// `poll(timeout:)` without blocking a Swift concurrency thread (the wait
    /// runs on the host's own dispatch queue); cancelling the task ends it with
    /// `CancellationError`.
    public func poll(timeout: Duration? = nil) async throws -> [HostEvent] {
        try await runBlocking(on: waitQueue) { [self] flag in try blockingPoll(timeout, cancel: flag) }
    }

    /// The host's events, as they happen; the sequence ends when the host is closed.
    public var events: Events { Events(host: self) }

    /// An `AsyncSequence` of a host's events (see ``RoamHost/events``).
    public struct Events: AsyncSequence, Sendable {
        public typealias Element = HostEvent
        let host: RoamHost

        public func makeAsyncIterator() -> Iterator { Iterator(host: host) }

        /// Iterator of ``RoamHost/Events``.
        public struct Iterator: AsyncIteratorProtocol {
            let host: RoamHost
            var pending: [HostEvent] = []

            public mutating func next() async throws -> HostEvent? {
                while pending.isEmpty {
                    do {
                        pending = try await host.poll(timeout: nil)
                    } catch RoamError.Closed {
                        return nil
                    }
                }
                return pending.removeFirst()
            }
        }
    }

    private func blockingPoll(_ timeout: Duration?, cancel: CancellationFlag?) throws -> [HostEvent] {
        let deadline = Deadline(timeout)
        while true {
            let events: [HostEvent] = try withHandle { h in
                var buf = [RoamHostEvent](repeating: RoamHostEvent(), count: 64)
                var n: UInt = 0
                try check(roam_host_poll(h, deadline.nextSlice.cMilliseconds, &buf, UInt(buf.count), &n))
                return buf.prefix(Int(n)).map(record)
            }
            if !events.isEmpty || deadline.hasPassed { return events }
            try betweenSlices(cancel)
        }
    }

    /// Convert a C event and update the peer bookkeeping (lock held).
    private func record(_ e: RoamHostEvent) -> HostEvent {
        let peer = UInt8(truncatingIfNeeded: e.peer_id)
        switch e.kind {
        case ROAM_EVENT_CONNECTED.rawValue:
            connected.insert(peer)
            return .connected(peer: peer)
        case ROAM_EVENT_READABLE.rawValue:
            return .readable(peer: peer)
        default:
            connected.remove(peer)
            held[peer] = nil // its view died with the link
            let reason: GoneReason
            switch e.reason {
            case ROAM_GONE_DOORBELL_CLOSED.rawValue: reason = .doorbellClosed
            case ROAM_GONE_PROCESS_GONE.rawValue: reason = .processGone(pid: e.pid)
            case ROAM_GONE_HEARTBEAT_STALE.rawValue: reason = .heartbeatStale
            case ROAM_GONE_GOODBYE.rawValue: reason = .goodbye
            case ROAM_GONE_NEVER_ATTACHED.rawValue: reason = .neverAttached
            case ROAM_GONE_CORRUPT.rawValue: reason = .corrupt
            case ROAM_GONE_REQUESTED.rawValue: reason = .requested
            default: reason = .unknown(e.reason)
            }
            return .peerGone(peer: peer, reason: reason, recovery: Recovery(
                drainedFrames: Int(e.drained_frames), freedSentSlots: Int(e.freed_sent_slots),
                reclaimedSlots: Int(e.reclaimed_slots)))
        }
    }

    // MARK: Sending

    /// Send a copy of `bytes` to `peer` without waiting.
    ///
    /// - Throws: ``RoamError/Full`` or ``RoamError/PoolExhausted(len:)`` when the
    ///   link is full for now (``RoamError/isBackpressure``),
    ///   ``RoamError/TooLarge(len:max:)``, ``RoamError/UnknownPeer(peer:)``,
    ///   ``RoamError/PeerGone``, ``RoamError/Closed``.
    public func trySend(to peer: UInt8, _ bytes: some ContiguousBytes) throws {
        try bytes.withUnsafeBytes { buf in
            try withHandle { h in
                try check(roam_host_try_send(h, peer, buf.cStart, buf.cCount),
                          payloadLength: buf.count)
            }
        }
    }

    /// Send a copy of `bytes` to `peer`, waiting while the link is full.
    ///
    /// - Parameter timeout: how long to wait for room; `nil` waits as long as it takes.
    /// - Throws: ``RoamError/Timeout``, or what ``trySend(to:_:)`` throws other
    ///   than backpressure.
    public func send(to peer: UInt8, _ bytes: some ContiguousBytes, timeout: Duration? = nil) throws {
        try bytes.withUnsafeBytes { buf in
            try retryingBackpressure(timeout, payloadLength: buf.count) { h in
                roam_host_try_send(h, peer, buf.cStart, buf.cCount)
            }
        }
    }

    /// Zero-copy send to `peer`: reserve `count` bytes in shared memory, let `fill`
    /// write the payload there, then publish it. If `fill` throws, nothing is sent.
    /// The buffer is valid only during `fill`. Waits while the link is full.
    ///
    /// - Parameter timeout: how long to wait for room; `nil` waits as long as it takes.
    /// - Throws: as ``send(to:_:timeout:)``, ``RoamError/ReservationPending`` if
    ///   called from inside another `fill` for the same peer, or what `fill` throws.
    public func send(to peer: UInt8, count: Int, timeout: Duration? = nil,
                     _ fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws
    {
        try retryingBackpressure(timeout, payloadLength: count) { h in try zeroCopySend(h, peer, count, fill) }
    }

    /// Zero-copy send without waiting: as ``send(to:count:timeout:_:)``, but a full
    /// link throws ``RoamError/Full`` or ``RoamError/PoolExhausted(len:)`` at once.
    public func trySend(to peer: UInt8, count: Int, _ fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        try withHandle { h in try check(zeroCopySend(h, peer, count, fill), payloadLength: count) }
    }

    private func zeroCopySend(_ h: OpaquePointer, _ peer: UInt8, _ count: Int,
                              _ fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws -> Int32
    {
        try reserveFillCommit(count: count, fill, reserve: { roam_host_reserve(h, peer, $0, &$1) },
                              commit: { roam_host_commit(h, peer) }, cancel: { roam_host_cancel(h, peer) })
    }

    /// Run `attempt` until it stops reporting backpressure or the deadline passes.
    /// A host has no per-guest doorbell wait, so it backs off (50 µs doubling to
    /// 1 ms) with the lock released, so polls and receives on other threads run.
    private func retryingBackpressure(_ timeout: Duration?, payloadLength: Int,
                                      _ attempt: (OpaquePointer) throws -> Int32) throws
    {
        let deadline = Deadline(timeout)
        var backoff: Duration = .microseconds(50)
        while true {
            let done: Bool = try withHandle { h in
                let s = try attempt(h)
                if s == statusOK { return true }
                guard s == statusFull || s == statusPoolExhausted else {
                    throw statusError(s, payloadLength: payloadLength)
                }
                if deadline.hasPassed { throw RoamError.Timeout }
                return false
            }
            if done { return }
            let pause = min(backoff, deadline.nextSlice)
            usleep(UInt32(pause.cMicroseconds))
            backoff = min(backoff * 2, .milliseconds(1))
        }
    }

    // MARK: Receiving

    /// The next message from `peer` if one is waiting, else `nil`. Poll for
    /// ``HostEvent/readable(peer:)`` to learn when to call it.
    ///
    /// - Throws: ``RoamError/MessageHeld`` while the previous message from `peer` is
    ///   not released, ``RoamError/UnknownPeer(peer:)``, ``RoamError/Corrupt(message:)``
    ///   (disconnect that guest), ``RoamError/Closed``.
    public func tryReceive(from peer: UInt8) throws -> Message? {
        try withHandle { h in
            guard held[peer] == nil else { throw RoamError.MessageHeld }
            var msg = RoamMessage()
            let s = roam_host_try_recv(h, peer, &msg)
            if s == statusWouldBlock { return nil }
            try check(s)
            guard let data = msg.data else { throw RoamError.Internal(message: "received a NULL payload") }
            let token = nextToken
            nextToken += 1
            held[peer] = token
            return Message(base: UnsafeRawPointer(data), count: Int(msg.len), kind: MessageKind(cKind: msg.kind),
                           peer: peer, token: token, owner: self)
        }
    }

    /// Wait for the next message from `peer`, blocking the calling thread.
    ///
    /// The host's C handle has no per-guest wait, so this checks the link with a
    /// short back-off (50 µs doubling to 1 ms, lock released in between). It does
    /// not poll: keep `poll(timeout:)` or ``events`` running elsewhere to
    /// accept guests and notice departures.
    ///
    /// - Parameter timeout: `nil` waits as long as it takes.
    /// - Throws: ``RoamError/Timeout``, and what ``tryReceive(from:)`` throws.
    public func receive(from peer: UInt8, timeout: Duration? = nil) throws -> Message {
        try blockingReceive(from: peer, timeout, cancel: nil)
    }

    /// `receive(from:timeout:)` without blocking a Swift concurrency thread
    /// (it waits on the host's own dispatch queue); cancelling the task ends it
    /// with `CancellationError`.
    public func receive(from peer: UInt8, timeout: Duration? = nil) async throws -> Message {
        try await runBlocking(on: waitQueue) { [self] flag in try blockingReceive(from: peer, timeout, cancel: flag) }
    }

    private func blockingReceive(from peer: UInt8, _ timeout: Duration?, cancel: CancellationFlag?) throws -> Message {
        let deadline = Deadline(timeout)
        var backoff: Duration = .microseconds(50)
        while true {
            if let m = try tryReceive(from: peer) { return m }
            if deadline.hasPassed { throw RoamError.Timeout }
            usleep(UInt32(min(backoff, deadline.nextSlice).cMicroseconds))
            backoff = min(backoff * 2, .milliseconds(1))
            if cancel?.isCancelled == true { throw CancellationError() }
        }
    }

    // MARK: Peers

    /// Disconnect `peer` and recover its resources (its held message is released,
    /// unread messages drained, slots reclaimed); its id becomes reusable.
    ///
    /// - Throws: ``RoamError/UnknownPeer(peer:)``.
    public func disconnect(peer: UInt8) throws {
        try withHandle { h in
            try check(roam_host_disconnect(h, peer))
            held[peer] = nil
            connected.remove(peer)
        }
    }

    /// Orderly shutdown: tell every guest goodbye and stop accepting (the socket
    /// file is removed). Links stay usable until ``close()``. Idempotent.
    public func shutdown() throws {
        try withHandle { h in try check(roam_host_shutdown(h)) }
    }

    // MARK: MessageHolder (lock held)

    func isHeld(token: UInt64, peer: UInt8) -> Bool {
        held[peer] == token
    }

    func releaseHeld(token: UInt64, peer: UInt8) throws {
        guard isHeld(token: token, peer: peer) else { return }
        held[peer] = nil
        try withHandle { try check(roam_host_release($0, peer)) }
    }

    override func invalidateViews() {
        held.removeAll()
        connected.removeAll()
    }
}

extension Duration {
    /// Microseconds, for `usleep`, clamped to `0...UInt32.max`.
    var cMicroseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        return min(UInt64(seconds) * 1_000_000 + UInt64(attoseconds / 1_000_000_000_000), UInt64(UInt32.max))
    }
}
