import Foundation
import RoamShm
import XCTest

/// A socket path no other test (or test process) uses.
func tempSocketPath() throws -> String {
    "/tmp/\(try RoamShmLibrary.uniqueName(prefix: "roam-swift-test")).sock"
}

/// A `/dev/shm` path no other test uses.
func tempSegmentPath() throws -> String {
    "/dev/shm/\(try RoamShmLibrary.uniqueName(prefix: "roam-swift-test"))"
}

/// Connect a guest to `socket` while a background thread accepts it on `host`.
func connectGuest(to host: RoamHost, socket: String, timeout: Duration = .seconds(5)) throws -> RoamGuest {
    let done = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let peer = try? host.accept(), peer > 0 { break }
            usleep(500)
        }
        done.signal()
    }
    let guest = try RoamGuest(socketPath: socket, timeout: timeout)
    done.wait()
    // One poll so the host sees the guest attached: a guest that attaches and
    // leaves before the host's next poll is reported as .neverAttached.
    XCTAssertEqual(try host.poll(), [])
    return guest
}

/// A host listening on a fresh socket and one guest connected to it.
func makePair(config: SegmentConfig = .default, segmentPath: String? = nil) throws -> (RoamHost, RoamGuest) {
    let socket = try tempSocketPath()
    let host = try RoamHost(config: config, segmentPath: segmentPath, socketPath: socket)
    return (host, try connectGuest(to: host, socket: socket))
}

/// Poll `host` until an event matching `match` comes (other events are dropped).
@discardableResult
func waitForEvent(_ host: RoamHost, timeout: Duration = .seconds(5),
                  file: StaticString = #filePath, line: UInt = #line,
                  _ match: (HostEvent) -> Bool) throws -> HostEvent
{
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        for event in try host.poll(timeout: .milliseconds(20)) where match(event) {
            return event
        }
    }
    XCTFail("no matching host event within \(timeout)", file: file, line: line)
    throw RoamError.Timeout
}

/// Receive the next message from `peer` on `host`, polling up to `timeout`.
func receive(on host: RoamHost, from peer: UInt8, timeout: Duration = .seconds(5)) throws -> Message {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if let m = try host.tryReceive(from: peer) { return m }
        _ = try host.poll(timeout: .milliseconds(10))
    }
    throw RoamError.Timeout
}

/// Assert that `body` throws a `RoamError` matching `match`.
func assertRoamError<T>(_ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line,
                        _ match: (RoamError) -> Bool)
{
    do {
        _ = try body()
        XCTFail("expected a RoamError, got success", file: file, line: line)
    } catch let e as RoamError {
        XCTAssertTrue(match(e), "unexpected error \(e)", file: file, line: line)
    } catch {
        XCTFail("expected a RoamError, got \(error)", file: file, line: line)
    }
}
