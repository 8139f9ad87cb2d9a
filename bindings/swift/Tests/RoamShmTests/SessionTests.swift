import Foundation
import RoamShm
import RoamShmTestSupport
import XCTest

/// RoamHost and guest in one process: every public call of the session API, its
/// errors, and the lifetime rules of handles and message views.
final class SessionTests: XCTestCase {
    func testCopySendAndZeroCopyReceiveBothWays() throws {
        let (host, guest) = try makePair()
        XCTAssertGreaterThan(guest.peerID, 0)
        XCTAssertEqual(host.peers, [guest.peerID])

        try guest.trySend(Data("ping".utf8))
        let event = try waitForEvent(host) { $0 == .readable(peer: guest.peerID) }
        XCTAssertEqual(event, .readable(peer: guest.peerID))
        let m = try XCTUnwrap(host.tryReceive(from: guest.peerID))
        XCTAssertEqual(m.count, 4)
        XCTAssertEqual(m.kind, .inline)
        XCTAssertEqual(m.peer, guest.peerID)
        XCTAssertEqual(try m.withUnsafeBytes { Array($0) }, Array("ping".utf8))
        try m.release()
        XCTAssertNil(try host.tryReceive(from: guest.peerID))

        try host.send(to: guest.peerID, [UInt8]("pong".utf8), timeout: .seconds(1))
        let reply = try guest.receive(timeout: .seconds(5))
        XCTAssertEqual(reply.peer, 0)
        XCTAssertEqual(try reply.copyData(), Data("pong".utf8))
        try reply.release()
        XCTAssertNil(try guest.tryReceive())

        try guest.send(Data(), timeout: .seconds(1))  // empty payloads are messages too
        let empty = try receive(on: host, from: guest.peerID)
        XCTAssertEqual(empty.count, 0)
        XCTAssertEqual(try empty.copyData(), Data())
    }

    func testPayloadSizesTakeEachRoute() throws {
        let (host, guest) = try makePair()
        // Inline up to the threshold (256), then pool slots (largest 256 KiB minus
        // the length prefix), then a separate mapping.
        let cases: [(Int, MessageKind)] = [(0, .inline), (256, .inline), (257, .slot), (1000, .slot),
                                           (200_000, .slot), (262_140, .slot), (262_141, .mmap), (3_000_000, .mmap)]
        for (seq, (size, kind)) in cases.enumerated() {
            try guest.send(count: size, timeout: .seconds(5)) { Payload.fill($0, seed: 9, seq: UInt64(seq)) }
            let m = try receive(on: host, from: guest.peerID)
            XCTAssertEqual(m.count, size)
            XCTAssertEqual(m.kind, kind, "size \(size)")
            XCTAssertTrue(try m.withUnsafeBytes { Payload.matches($0, seed: 9, seq: UInt64(seq)) }, "size \(size)")
            // Echo it back zero-copy from inside the view (the lock is recursive).
            try m.withUnsafeBytes { src in
                try host.send(to: guest.peerID, count: src.count, timeout: .seconds(5)) { dst in
                    dst.copyMemory(from: src)
                }
            }
            try m.release()
            let echo = try guest.receive(timeout: .seconds(5))
            XCTAssertEqual(echo.kind, kind, "echo of size \(size)")
            XCTAssertTrue(try echo.withUnsafeBytes { Payload.matches($0, seed: 9, seq: UInt64(seq)) })
            try echo.release()
        }
    }

    func testZeroCopySendVariantsAndAFailingFillSendsNothing() throws {
        let (host, guest) = try makePair()
        struct Oops: Error {}
        XCTAssertThrowsError(try guest.send(count: 100) { _ in throw Oops() }) { XCTAssertTrue($0 is Oops) }
        XCTAssertThrowsError(try guest.trySend(count: 5000) { _ in throw Oops() }) { XCTAssertTrue($0 is Oops) }
        XCTAssertNil(try host.tryReceive(from: guest.peerID), "a cancelled reservation must send nothing")

        try guest.trySend(count: 3) { $0.copyBytes(from: [1, 2, 3]) }
        XCTAssertEqual(try receive(on: host, from: guest.peerID).copyData(), Data([1, 2, 3]))

        XCTAssertThrowsError(try host.send(to: guest.peerID, count: 10) { _ in throw Oops() })
        XCTAssertThrowsError(try host.trySend(to: guest.peerID, count: 10) { _ in throw Oops() })
        try host.trySend(to: guest.peerID, count: 2) { $0.copyBytes(from: [7, 8]) }
        XCTAssertEqual(try guest.receive(timeout: .seconds(5)).copyData(), Data([7, 8]))
        try host.trySend(to: guest.peerID, Data([9]))
        XCTAssertEqual(try guest.receive(timeout: .seconds(5)).copyData(), Data([9]))

        // Nested reservations on one link are refused.
        assertRoamError(try guest.send(count: 4) { _ in try guest.send(count: 4) { _ in } }) { $0 == .ReservationPending }
        assertRoamError(try guest.send(count: -1) { _ in }) {
            if case .InvalidArgument = $0 { return true } else { return false }
        }
        assertRoamError(try host.send(to: guest.peerID, count: -1) { _ in }) {
            if case .InvalidArgument = $0 { return true } else { return false }
        }
    }

    func testAViewAfterReleaseThrowsAndReleaseIsIdempotent() throws {
        let (host, guest) = try makePair()
        try host.send(to: guest.peerID, Data("abc".utf8))
        let m = try guest.receive(timeout: .seconds(5))
        XCTAssertFalse(m.isReleased)
        try m.release()
        XCTAssertTrue(m.isReleased)
        assertRoamError(try m.withUnsafeBytes { _ in 0 }) { $0 == .Released }
        assertRoamError(try m.copyData()) { $0 == .Released }
        XCTAssertNoThrow(try m.release())
    }

    func testOneHeldMessagePerLinkAndDeinitReleases() throws {
        let (host, guest) = try makePair()
        for byte in [UInt8(1), 2, 3] { try host.send(to: guest.peerID, [byte]) }
        let first = try guest.receive(timeout: .seconds(5))
        assertRoamError(try guest.tryReceive()) { $0 == .MessageHeld }
        assertRoamError(try guest.receive(timeout: .milliseconds(10))) { $0 == .MessageHeld }
        try first.release()
        do {
            let second = try guest.receive(timeout: .seconds(5))
            XCTAssertEqual(try second.copyData(), Data([2]))
        }  // dropped without release(): deinit releases it
        XCTAssertEqual(try guest.receive(timeout: .seconds(5)).copyData(), Data([3]))

        try guest.send([UInt8](repeating: 1, count: 10))
        try guest.send([UInt8](repeating: 2, count: 10))
        let a = try receive(on: host, from: guest.peerID)
        assertRoamError(try host.tryReceive(from: guest.peerID)) { $0 == .MessageHeld }
        try a.release()
        XCTAssertEqual(try receive(on: host, from: guest.peerID).copyData(), Data(repeating: 2, count: 10))
    }

    func testCloseInvalidatesViewsAndLaterCallsThrowClosed() throws {
        let (host, guest) = try makePair()
        try host.send(to: guest.peerID, Data("held".utf8))
        let m = try guest.receive(timeout: .seconds(5))
        XCTAssertFalse(guest.isClosed)
        guest.close()
        XCTAssertTrue(guest.isClosed)
        XCTAssertTrue(m.isReleased)
        assertRoamError(try m.withUnsafeBytes { _ in 0 }) { $0 == .Released }
        XCTAssertNoThrow(try m.release())
        assertRoamError(try guest.trySend(Data([1]))) { $0 == .Closed }
        assertRoamError(try guest.tryReceive()) { $0 == .Closed }
        assertRoamError(try guest.checkHost()) { $0 == .Closed }
        guest.close()  // idempotent

        let gone = try waitForEvent(host) { if case .peerGone = $0 { return true } else { return false } }
        guard case .peerGone(let peer, let reason, _) = gone else { return XCTFail() }
        XCTAssertEqual(peer, guest.peerID)
        XCTAssertEqual(reason, .goodbye)
        XCTAssertEqual(host.peers, [])

        host.close()
        assertRoamError(try host.poll()) { $0 == .Closed }
        assertRoamError(try host.trySend(to: 1, Data())) { $0 == .Closed }
    }

    func testAMessageKeepsItsSessionAlive() throws {
        let socket = try tempSocketPath()
        let host = try RoamHost(socketPath: socket)
        var message: Message?
        do {
            let guest = try connectGuest(to: host, socket: socket)
            try host.send(to: guest.peerID, Data("still here".utf8))
            message = try guest.receive(timeout: .seconds(5))
        }  // the last reference to the guest is gone, but the message holds it
        XCTAssertEqual(try message?.copyData(), Data("still here".utf8))
        let events = try host.poll(timeout: .milliseconds(100))
        XCTAssertFalse(events.contains { if case .peerGone = $0 { return true } else { return false } })
        message = nil  // now the guest goes: deinit says goodbye
        try waitForEvent(host) { if case .peerGone(_, .goodbye, _) = $0 { return true } else { return false } }
    }

    func testBackpressureThenTimeout() throws {
        var config = SegmentConfig.default
        config.bipbufCapacity = 4096
        let (host, guest) = try makePair(config: config)
        var sent = 0
        var backpressure: RoamError?
        while backpressure == nil && sent < 10_000 {
            do {
                try guest.trySend([UInt8](repeating: 0xAB, count: 200))
                sent += 1
            } catch let e as RoamError {
                backpressure = e
            }
        }
        XCTAssertEqual(backpressure, .Full)
        XCTAssertTrue(backpressure?.isBackpressure ?? false)
        XCTAssertGreaterThan(sent, 5)
        let start = ContinuousClock.now
        assertRoamError(try guest.send([UInt8](repeating: 1, count: 200), timeout: .milliseconds(50))) { $0 == .Timeout }
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - start, .milliseconds(45))
        assertRoamError(try guest.send(count: 200, timeout: .zero) { _ in }) { $0 == .Timeout }
        assertRoamError(try guest.trySend(count: 200) { _ in }) { $0 == .Full }

        // The host reading frees room: a waiting send goes through.
        let reader = DispatchQueue.global()
        reader.asyncAfter(deadline: .now() + .milliseconds(50)) {
            while let m = try? host.tryReceive(from: guest.peerID) { try? m.release() }
        }
        try guest.send([UInt8](repeating: 2, count: 200), timeout: .seconds(5))

        // RoamHost to guest, too.
        var hostSent = 0
        while hostSent < 10_000 {
            do { try host.trySend(to: guest.peerID, [UInt8](repeating: 3, count: 200)); hostSent += 1 } catch { break }
        }
        assertRoamError(try host.trySend(to: guest.peerID, [UInt8](repeating: 3, count: 200))) { $0.isBackpressure }
        assertRoamError(try host.send(to: guest.peerID, Data(count: 200), timeout: .milliseconds(20))) { $0 == .Timeout }
        assertRoamError(try host.trySend(to: guest.peerID, count: 200) { _ in }) { $0.isBackpressure }
    }

    func testTooLargeAndUnknownPeerAreTyped() throws {
        var config = SegmentConfig.default
        config.maxPayloadSize = 65_536
        let (host, guest) = try makePair(config: config)
        assertRoamError(try guest.trySend(Data(count: 70_000))) { $0 == .TooLarge(len: 70_000, max: 65_536) }
        assertRoamError(try guest.send(count: 70_000) { _ in }) { $0 == .TooLarge(len: 70_000, max: 65_536) }
        assertRoamError(try host.trySend(to: guest.peerID, Data(count: 65_537))) { $0 == .TooLarge(len: 65_537, max: 65_536) }
        assertRoamError(try host.trySend(to: 99, Data([1]))) { $0 == .UnknownPeer(peer: 99) }
        assertRoamError(try host.tryReceive(from: 99)) { $0 == .UnknownPeer(peer: 99) }
        assertRoamError(try host.disconnect(peer: 99)) { $0 == .UnknownPeer(peer: 99) }
        assertRoamError(try host.send(to: 0, count: 1) { _ in }) { $0 == .UnknownPeer(peer: 0) }
    }

    func testDisconnectEvictsTheGuest() throws {
        let (host, guest) = try makePair()
        try guest.send(Data("unread".utf8))
        try host.disconnect(peer: guest.peerID)
        XCTAssertEqual(host.peers, [])
        assertRoamError(try host.trySend(to: guest.peerID, Data([1]))) { $0 == .UnknownPeer(peer: guest.peerID) }
        assertRoamError(try guest.checkHost()) { $0 == .Evicted }
        assertRoamError(try guest.receive(timeout: .seconds(1))) { $0 == .Evicted || $0 == .PeerGone }
    }

    func testShutdownSaysGoodbyeAndClosingRemovesTheFiles() throws {
        let segment = try tempSegmentPath()
        let socket = try tempSocketPath()
        var config = SegmentConfig.default
        config.maxGuests = 3
        let host = try RoamHost(config: config, segmentPath: segment, socketPath: socket)
        XCTAssertEqual(host.segmentPath, segment)
        XCTAssertEqual(host.config, config)
        XCTAssertEqual(try SegmentInfo(inspecting: segment).maxGuests, 3)
        let guest = try connectGuest(to: host, socket: socket)
        XCTAssertTrue(FileManager.default.fileExists(atPath: socket))
        try host.shutdown()
        try host.shutdown()  // idempotent
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket), "shutdown stops listening")
        assertRoamError(try guest.checkHost()) { $0 == .HostGoodbye }
        assertRoamError(try guest.receive(timeout: .seconds(1))) { $0 == .HostGoodbye }
        assertRoamError(try guest.trySend(Data([1]))) { $0 == .HostGoodbye }
        XCTAssertThrowsError(try RoamGuest(socketPath: socket, timeout: .milliseconds(200)))
        host.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: segment), "close removes the segment file")
    }

    func testInspectingALiveSegment() throws {
        let segment = try tempSegmentPath()
        let (host, guest) = try makePair(segmentPath: segment)
        defer { host.close() }
        var info = try SegmentInfo(inspecting: host.segmentPath)
        XCTAssertEqual(info.version, 7)
        XCTAssertEqual(info.maxGuests, 8)
        XCTAssertFalse(info.hostGoodbye)
        let me = try XCTUnwrap(info.peers.first { $0.peerId == guest.peerID })
        XCTAssertEqual(me.state, .attached)
        XCTAssertEqual(me.guestPid, UInt32(getpid()))
        XCTAssertEqual(info.peers.filter { $0.state != .empty }.count, 1)
        XCTAssertEqual(info.allocatedSlots, 0)

        try guest.send(count: 5000) { $0.initializeMemory(as: UInt8.self, repeating: 1) }  // a slot, held by the host
        info = try SegmentInfo(inspecting: segment)
        XCTAssertEqual(info.allocatedSlots, 1)
        try receive(on: host, from: guest.peerID).release()
        XCTAssertEqual(try SegmentInfo(inspecting: segment).allocatedSlots, 0)
        guest.close()
        try waitForEvent(host) { if case .peerGone = $0 { return true } else { return false } }
        XCTAssertTrue(try SegmentInfo(inspecting: segment).peers.allSatisfy { $0.state == .empty })
    }

    func testSetUpErrorsAreTyped() throws {
        var bad = SegmentConfig.default
        bad.maxGuests = 0
        assertRoamError(try RoamHost(config: bad)) {
            if case .InvalidConfig(let m) = $0 { return m.contains("max_guests") } else { return false }
        }
        assertRoamError(try RoamHost(segmentPath: "")) { if case .InvalidArgument = $0 { return true } else { return false } }
        assertRoamError(try RoamHost(segmentPath: "/nonexistent-dir/segment")) {
            if case .Io = $0 { return true } else { return false }
        }
        let segment = try tempSegmentPath()
        let first = try RoamHost(segmentPath: segment)
        assertRoamError(try RoamHost(segmentPath: segment)) {  // the file exists
            if case .Io(_, _, let errno) = $0 { return errno == EEXIST } else { return false }
        }
        first.close()

        let unlistened = try RoamHost()
        assertRoamError(try unlistened.accept()) { if case .InvalidState = $0 { return true } else { return false } }
        XCTAssertEqual(try unlistened.poll(), [])
        assertRoamError(try unlistened.listen(socketPath: "")) { if case .InvalidArgument = $0 { return true } else { return false } }
        assertRoamError(try unlistened.listen(socketPath: "/tmp/a\u{0}b")) {
            if case .InvalidArgument = $0 { return true } else { return false }
        }
        assertRoamError(try unlistened.listen(socketPath: "/nonexistent-dir/x.sock")) {
            if case .Io = $0 { return true } else { return false }
        }
        let socket = try tempSocketPath()
        try unlistened.listen(socketPath: socket)
        XCTAssertNil(try unlistened.accept())
        assertRoamError(try RoamHost(socketPath: socket)) {  // somebody listens there
            if case .Io = $0 { return true } else { return false }
        }

        assertRoamError(try RoamGuest(socketPath: "")) { if case .InvalidArgument = $0 { return true } else { return false } }
        assertRoamError(try RoamGuest(socketPath: "/tmp/a\u{0}b")) {
            if case .InvalidArgument = $0 { return true } else { return false }
        }
        assertRoamError(try RoamHost(segmentPath: "/dev/shm/a\u{0}b")) {
            if case .InvalidArgument = $0 { return true } else { return false }
        }
        assertRoamError(try RoamGuest(socketPath: "/tmp/roam-swift-nobody-\(getpid()).sock", timeout: .milliseconds(200))) {
            if case .Io(_, _, let errno) = $0 { return errno == ENOENT } else { return false }
        }
    }

    func testAFullHostRejectsTheNextGuest() throws {
        var config = SegmentConfig.default
        config.maxGuests = 1
        let socket = try tempSocketPath()
        let host = try RoamHost(config: config, socketPath: socket)
        let first = try connectGuest(to: host, socket: socket)
        defer { first.close() }
        let refused = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            let deadline = ContinuousClock.now.advanced(by: .seconds(5))
            while ContinuousClock.now < deadline {
                do {
                    if try host.accept() != nil { break }
                } catch {
                    if (error as? RoamError) == .NoFreePeer { break }
                }
                usleep(500)
            }
            refused.signal()
        }
        assertRoamError(try RoamGuest(socketPath: socket, timeout: .seconds(5))) {
            if case .Rejected(let reason) = $0 { return reason.contains("no free peer") } else { return false }
        }
        refused.wait()
    }

    func testAsyncReceiveAndTheMessageSequence() async throws {
        let (host, guest) = try makePair()
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(30)) {
            for i in 0..<5 { try? host.send(to: guest.peerID, [UInt8(i)], timeout: .seconds(5)) }
        }
        let first = try await guest.receive(timeout: .seconds(5))
        XCTAssertEqual(try first.copyData(), Data([0]))
        try first.release()
        var seen: [UInt8] = []
        for try await m in guest.messages {
            seen.append(try m.withUnsafeBytes { $0[0] })
            if seen.count == 4 { break }
        }
        XCTAssertEqual(seen, [1, 2, 3, 4])
        await assertThrowsAsync(try await guest.receive(timeout: .milliseconds(30))) { ($0 as? RoamError) == .Timeout }

        // The sequence ends when the host goes away.
        try host.send(to: guest.peerID, [9])
        try host.shutdown()
        var tail = 0
        for try await _ in guest.messages { tail += 1 }
        XCTAssertEqual(tail, 1, "what the host sent before its goodbye is delivered")
    }

    func testAsyncReceiveIsCancellable() async throws {
        let (host, guest) = try makePair()
        let task = Task { try await guest.receive() }
        try await Task.sleep(for: .milliseconds(30))
        task.cancel()
        await assertThrowsAsync(try await task.value) { $0 is CancellationError }
        // The guest is still usable afterwards.
        XCTAssertNil(try guest.tryReceive())
        host.close()
    }

    func testHostEventsSequenceAndAsyncPoll() async throws {
        let socket = try tempSocketPath()
        let host = try RoamHost(socketPath: socket)
        let guestTask = Task.detached { () throws -> UInt8 in
            let g = try RoamGuest(socketPath: socket)
            try g.send(Data("hello".utf8))
            try await Task.sleep(for: .milliseconds(20))
            g.close()
            return g.peerID
        }
        var log: [String] = []
        for try await event in host.events {
            switch event {
            case .connected: log.append("connected")
            case .readable(let peer):
                if let m = try host.tryReceive(from: peer) {
                    log.append("message \(String(decoding: try m.copyData(), as: UTF8.self))")
                    try m.release()
                }
            case .peerGone(_, let reason, _):
                log.append("gone \(reason)")
            }
            if log.last?.hasPrefix("gone") == true { break }
        }
        let peer = try await guestTask.value
        XCTAssertEqual(log, ["connected", "message hello", "gone goodbye"], "peer \(peer)")
        let none = try await host.poll(timeout: .milliseconds(20))
        XCTAssertEqual(none, [])

        let poller = Task { try await host.poll(timeout: nil) }
        try await Task.sleep(for: .milliseconds(20))
        poller.cancel()
        await assertThrowsAsync(try await poller.value) { $0 is CancellationError }

        host.close()
        var after = 0
        for try await _ in host.events { after += 1 }
        XCTAssertEqual(after, 0, "a closed host's event sequence ends at once")
    }

    func testConcurrentSendersAndAnAsyncReceiverShareOneGuest() async throws {
        let (host, guest) = try makePair()
        let total = 2000
        let echo = Thread {
            var echoed = 0
            while echoed < total {
                guard let events = try? host.poll(timeout: .milliseconds(50)) else { return }
                for case .readable(let p) in events {
                    while let m = try? host.tryReceive(from: p) {
                        try? m.withUnsafeBytes { b in try host.send(to: p, b, timeout: .seconds(10)) }
                        try? m.release()
                        echoed += 1
                    }
                }
            }
        }
        echo.start()
        let senders = (0..<2).map { worker in
            Task.detached {
                for i in 0..<(total / 2) {
                    var value = UInt32(worker * 100_000 + i).littleEndian
                    try withUnsafeBytes(of: &value) { try guest.send($0, timeout: .seconds(10)) }
                }
            }
        }
        var received = Set<UInt32>()
        var iterator = guest.messages.makeAsyncIterator()
        while received.count < total, let m = try await iterator.next() {
            received.insert(try m.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
        }
        for s in senders { try await s.value }
        XCTAssertEqual(received.count, total)
    }

    func testReadmeExample() throws {
        // Keep in sync with bindings/swift/README.md ("/tmp/demo.sock" made unique).
        let path = "/tmp/\(try RoamShmLibrary.uniqueName(prefix: "demo")).sock"
        let host = try RoamHost(socketPath: path)                   // creates the shared-memory segment
        Task.detached { try await host.poll(timeout: .seconds(5)) }  // accepts the guest
        let guest = try RoamGuest(socketPath: path)                 // usually in another process

        try guest.send(count: 5) { $0.copyBytes(from: "hello".utf8) }  // written in place
        let request = try host.receive(from: guest.peerID, timeout: .seconds(1))
        try request.withUnsafeBytes { try host.send(to: guest.peerID, $0) }  // echoed from shared memory
        try request.release()
        let reply = try guest.receive(timeout: .seconds(1))
        XCTAssertEqual(String(decoding: try reply.copyData(), as: UTF8.self), "hello")
    }

    func testHostBlockingReceiveTimesOut() throws {
        let (host, guest) = try makePair()
        assertRoamError(try host.receive(from: guest.peerID, timeout: .milliseconds(20))) { $0 == .Timeout }
        assertRoamError(try host.receive(from: 77, timeout: .milliseconds(20))) { $0 == .UnknownPeer(peer: 77) }
    }

    func testHostAsyncReceive() async throws {
        let (host, guest) = try makePair()
        await assertThrowsAsync(try await host.receive(from: guest.peerID, timeout: .milliseconds(20))) {
            ($0 as? RoamError) == .Timeout
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(20)) { try? guest.send([5]) }
        let m = try await host.receive(from: guest.peerID, timeout: .seconds(5))
        XCTAssertEqual(try m.copyData(), Data([5]))
        let task = Task { try await host.receive(from: guest.peerID) }
        try await Task.sleep(for: .milliseconds(20))
        task.cancel()
        await assertThrowsAsync(try await task.value) { $0 is CancellationError || ($0 as? RoamError) == .MessageHeld }
    }
}

/// `XCTAssertThrowsError` for async expressions.
func assertThrowsAsync<T>(_ body: @autoclosure () async throws -> T, file: StaticString = #filePath,
                          line: UInt = #line, _ check: (Error) -> Bool) async
{
    do {
        _ = try await body()
        XCTFail("expected an error", file: file, line: line)
    } catch {
        XCTAssertTrue(check(error), "unexpected error \(error)", file: file, line: line)
    }
}
