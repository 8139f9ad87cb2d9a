import CRoamShm
import Foundation
import RoamShmFFI

/// A guest: a process attached to a host's segment, exchanging messages with it.
///
/// ```swift
/// let guest = try RoamGuest(socketPath: "/tmp/app.sock")
/// try guest.send(Data("ping".utf8))
/// let reply = try await guest.receive(timeout: .seconds(1))
/// print(try reply.copyData())
/// ```
///
/// Sending copies the payload into shared memory once (``send(_:timeout:)``) or
/// lets you write it there directly (``send(count:timeout:_:)``); receiving hands
/// out zero-copy ``Message`` views. `RoamGuest` is thread-safe: calls are serialized
/// (a blocking receive yields to other threads at least every few milliseconds).
/// ``close()`` (or `deinit`) says goodbye to the host.
public final class RoamGuest: NativeHandleOwner, MessageHolder, @unchecked Sendable {
    // @unchecked Sendable: mutable state is guarded by `lock` (see NativeHandleOwner).

    /// The peer id the host assigned to this guest (1...255).
    public let peerID: UInt8
    /// Token of the held message (0: none).
    private var heldToken: UInt64 = 0
    private var nextToken: UInt64 = 1
    /// Blocking waits of the async API run here, off the cooperative thread pool.
    private let waitQueue: DispatchQueue

    /// Connect to the host listening on the Unix socket at `socketPath`: handshake,
    /// map its segment, claim a peer entry.
    ///
    /// - Parameter timeout: bound for the handshake.
    /// - Throws: ``RoamError/Io(operation:message:errno:)`` (e.g. nobody listens),
    ///   ``RoamError/Rejected(reason:)`` (the host refused, e.g. it is full),
    ///   ``RoamError/Protocol(message:)``, ``RoamError/BadSegment(message:)``.
    public init(socketPath: String, timeout: Duration = .seconds(5)) throws {
        let session = try RoamShmFFI.connectGuest(socketPath: socketPath, timeout: timeout.timeInterval)
        let raw = try session.takeHandle()
        guard let handle = OpaquePointer(bitPattern: UInt(raw)) else {
            throw RoamError.Internal(message: "connectGuest returned a NULL handle")
        }
        peerID = session.peerId() ?? 0
        waitQueue = DispatchQueue(label: "roam-shm.guest.\(peerID).wait")
        super.init(handle: handle, destroy: { roam_guest_destroy($0) })
    }

    // MARK: Host status

    /// Throws if the host is no longer there for this guest:
    /// ``RoamError/HostGoodbye``, ``RoamError/Evicted``, ``RoamError/BadSegment(message:)``.
    public func checkHost() throws {
        try withHandle { try check(roam_guest_check_host($0)) }
    }

    // MARK: Sending

    /// Send a copy of `bytes` without waiting.
    ///
    /// - Throws: ``RoamError/Full`` or ``RoamError/PoolExhausted(len:)`` when the
    ///   link is full for now (``RoamError/isBackpressure``),
    ///   ``RoamError/TooLarge(len:max:)``, ``RoamError/PeerGone``,
    ///   ``RoamError/HostGoodbye``, ``RoamError/Closed``.
    public func trySend(_ bytes: some ContiguousBytes) throws {
        try bytes.withUnsafeBytes { buf in
            try withHandle { h in
                try check(roam_guest_try_send(h, buf.cStart, buf.cCount),
                          payloadLength: buf.count)
            }
        }
    }

    /// Send a copy of `bytes`, waiting while the link is full.
    ///
    /// - Parameter timeout: how long to wait for room; `nil` waits as long as it takes.
    /// - Throws: ``RoamError/Timeout``, or what ``trySend(_:)`` throws other than
    ///   backpressure.
    public func send(_ bytes: some ContiguousBytes, timeout: Duration? = nil) throws {
        try bytes.withUnsafeBytes { buf in
            try retryingBackpressure(timeout, payloadLength: buf.count) { h in
                roam_guest_try_send(h, buf.cStart, buf.cCount)
            }
        }
    }

    /// Zero-copy send: reserve `count` bytes in shared memory, let `fill` write the
    /// payload there, then publish it. If `fill` throws, nothing is sent.
    ///
    /// The buffer is valid only during `fill`. Waits while the link is full.
    ///
    /// - Parameter timeout: how long to wait for room; `nil` waits as long as it takes.
    /// - Throws: as ``send(_:timeout:)``, ``RoamError/ReservationPending`` if
    ///   called from inside another `fill`, or what `fill` throws.
    public func send(count: Int, timeout: Duration? = nil,
                     _ fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws
    {
        try retryingBackpressure(timeout, payloadLength: count) { h in try zeroCopySend(h, count, fill) }
    }

    /// Zero-copy send without waiting: as ``send(count:timeout:_:)``, but a full
    /// link throws ``RoamError/Full`` or ``RoamError/PoolExhausted(len:)`` at once.
    public func trySend(count: Int, _ fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        try withHandle { h in try check(zeroCopySend(h, count, fill), payloadLength: count) }
    }

    private func zeroCopySend(_ h: OpaquePointer, _ count: Int,
                              _ fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws -> Int32
    {
        try reserveFillCommit(count: count, fill, reserve: { roam_guest_reserve(h, $0, &$1) },
                              commit: { roam_guest_commit(h) }, cancel: { roam_guest_cancel(h) })
    }

    /// Run `attempt` (a send returning its status) until it stops reporting
    /// backpressure or the deadline passes, waiting on the doorbell in slices and
    /// releasing the lock between them: a receive on another thread may be what
    /// frees the room (the peer may be waiting for us to read before it reads).
    private func retryingBackpressure(_ timeout: Duration?, payloadLength: Int,
                                      _ attempt: (OpaquePointer) throws -> Int32) throws
    {
        let deadline = Deadline(timeout)
        while true {
            let done: Bool = try withHandle { h in
                let s = try attempt(h)
                if s == statusOK { return true }
                guard s == statusFull || s == statusPoolExhausted else {
                    throw statusError(s, payloadLength: payloadLength)
                }
                if deadline.hasPassed { throw RoamError.Timeout }
                // Room only: messages waiting to be received must not end the wait
                // (a sender that does not read would spin and miss the host's death).
                let w = roam_guest_wait_for_space(h, deadline.nextSlice.cMilliseconds)
                if w == statusPeerGone { throw RoamError.PeerGone }
                if w != statusOK && w != statusTimeout { throw statusError(w) }
                return false
            }
            if done { return }
            try betweenSlices(nil)
        }
    }

    // MARK: Receiving

    /// The next message if one is waiting, else `nil`.
    ///
    /// - Throws: ``RoamError/MessageHeld`` while the previous message is not
    ///   released, ``RoamError/Corrupt(message:)``, ``RoamError/Closed``.
    public func tryReceive() throws -> Message? {
        try withHandle { h in try receiveNow(h) }
    }

    /// Wait for the next message, blocking the calling thread.
    ///
    /// - Parameter timeout: `nil` waits as long as it takes.
    /// - Throws: ``RoamError/Timeout``, ``RoamError/PeerGone`` (the host died; what it
    ///   sent before is delivered first), ``RoamError/HostGoodbye``,
    ///   ``RoamError/Evicted``, and what ``tryReceive()`` throws.
    public func receive(timeout: Duration? = nil) throws -> Message {
        try blockingReceive(timeout, cancel: nil)
    }

    /// Wait for the next message without blocking a Swift concurrency thread: the
    /// wait runs on this guest's own dispatch queue. Cancelling the task ends it
    /// with `CancellationError`.
    ///
    /// - Parameter timeout: `nil` waits as long as it takes.
    /// - Throws: as `receive(timeout:)`, or `CancellationError`.
    public func receive(timeout: Duration? = nil) async throws -> Message {
        try await runBlocking(on: waitQueue) { [self] flag in
            try blockingReceive(timeout, cancel: flag)
        }
    }

    /// The messages from the host, as they arrive. Each message is released when
    /// the loop asks for the next one (copy what you want to keep); the sequence
    /// ends when the host goes away or says goodbye, or the guest is closed.
    ///
    /// ```swift
    /// for try await message in guest.messages {
    ///     try message.withUnsafeBytes { handle($0) }
    /// }
    /// ```
    public var messages: Messages { Messages(guest: self) }

    /// An `AsyncSequence` of the messages a guest receives (see ``RoamGuest/messages``).
    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = Message
        let guest: RoamGuest

        public func makeAsyncIterator() -> Iterator { Iterator(guest: guest) }

        /// Iterator of ``RoamGuest/Messages``: releases each message before fetching the next.
        public struct Iterator: AsyncIteratorProtocol {
            let guest: RoamGuest
            var current: Message?

            public mutating func next() async throws -> Message? {
                if let previous = current {
                    current = nil
                    try previous.release()
                }
                do {
                    let m = try await guest.receive()
                    current = m
                    return m
                } catch RoamError.PeerGone, RoamError.HostGoodbye, RoamError.Closed {
                    return nil
                }
            }
        }
    }

    private func blockingReceive(_ timeout: Duration?, cancel: CancellationFlag?) throws -> Message {
        let deadline = Deadline(timeout)
        while true {
            let got: Message? = try withHandle { h in
                if let m = try receiveNow(h) { return m }
                try check(roam_guest_check_host(h))
                if deadline.hasPassed { throw RoamError.Timeout }
                let w = roam_guest_wait(h, deadline.nextSlice.cMilliseconds)
                if w == statusPeerGone {
                    // Deliver what the host sent before it went away.
                    if let m = try receiveNow(h) { return m }
                    throw RoamError.PeerGone
                }
                if w != statusOK && w != statusTimeout { throw statusError(w) }
                return nil
            }
            if let got { return got }
            try betweenSlices(cancel)
        }
    }

    /// `roam_guest_try_recv` (lock held).
    private func receiveNow(_ h: OpaquePointer) throws -> Message? {
        guard heldToken == 0 else { throw RoamError.MessageHeld }
        var msg = RoamMessage()
        let s = roam_guest_try_recv(h, &msg)
        if s == statusWouldBlock { return nil }
        try check(s)
        guard let data = msg.data else { throw RoamError.Internal(message: "received a NULL payload") }
        heldToken = nextToken
        nextToken += 1
        return Message(base: UnsafeRawPointer(data), count: Int(msg.len), kind: MessageKind(cKind: msg.kind),
                       peer: 0, token: heldToken, owner: self)
    }

    // MARK: MessageHolder (lock held)

    func isHeld(token: UInt64, peer: UInt8) -> Bool {
        heldToken != 0 && heldToken == token
    }

    func releaseHeld(token: UInt64, peer: UInt8) throws {
        guard isHeld(token: token, peer: peer) else { return }
        heldToken = 0
        try withHandle { try check(roam_guest_release($0)) }
    }

    override func invalidateViews() {
        heldToken = 0
    }
}
