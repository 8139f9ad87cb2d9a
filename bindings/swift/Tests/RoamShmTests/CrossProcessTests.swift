import Foundation
import RoamShm
import RoamShmTestSupport
import XCTest

/// A host echo loop on its own thread, recording the host's events.
final class EchoServer: @unchecked Sendable {
    // @unchecked Sendable: `events`, `echoed` and `stopping` are guarded by `lock`.
    let host: RoamHost
    private let lock = NSLock()
    private var events: [HostEvent] = []
    private var echoed = 0
    private var stopping = false
    private var failure: Error?
    private let finished = DispatchSemaphore(value: 0)

    init(host: RoamHost) {
        self.host = host
        Thread { [self] in run() }.start()
    }

    private func run() {
        defer { finished.signal() }
        do {
            while !locked({ stopping }) {
                for event in try host.poll(timeout: .milliseconds(20)) {
                    locked { events.append(event) }
                    guard case .readable(let peer) = event else { continue }
                    do {
                        while let m = try host.tryReceive(from: peer) {
                            // Echo zero-copy: from the guest's shared memory into ours.
                            try m.withUnsafeBytes { src in
                                try host.send(to: peer, count: src.count, timeout: .seconds(30)) { $0.copyMemory(from: src) }
                            }
                            try m.release()
                            locked { echoed += 1 }
                        }
                    } catch RoamError.PeerGone, RoamError.UnknownPeer {
                        // A guest that died mid-echo: the next poll reports it gone.
                    }
                }
            }
        } catch {
            locked { failure = error }
        }
    }

    private func locked<R>(_ body: () -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    /// Messages echoed so far.
    var echoCount: Int { locked { echoed } }

    /// Wait for a `peerGone` event (returns it) or the timeout.
    func waitForDeparture(timeout: Duration) -> HostEvent? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let gone: HostEvent? = locked {
                events.first { if case .peerGone = $0 { return true } else { return false } }
            }
            if let gone { return gone }
            if locked({ failure }) != nil { return nil }
            usleep(2000)
        }
        return nil
    }

    /// Stop the loop; rethrow what it failed with, if anything.
    func stop() throws {
        locked { stopping = true }
        finished.wait()
        if let failure = locked({ failure }) { throw failure }
    }
}

/// The test helper executable (a Swift guest in its own process), built next to
/// the test bundle.
func peerExecutable() throws -> URL {
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
        Bundle.main.bundleURL,
        Bundle(for: EchoServer.self).bundleURL.deletingLastPathComponent(),
    ]
    for dir in candidates {
        let url = dir.appendingPathComponent("roam-shm-swift-peer")
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    throw XCTSkip("roam-shm-swift-peer not found next to the test bundle (looked in \(candidates.map(\.path)))")
}

/// A child process whose stdout lines are collected as they arrive.
final class ChildProcess: @unchecked Sendable {
    // @unchecked Sendable: `output` is guarded by `lock`.
    let process = Process()
    private let lock = NSLock()
    private var output = ""

    init(_ executable: URL, _ arguments: [String]) throws {
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        pipe.fileHandleForReading.readabilityHandler = { [self] handle in
            let data = handle.availableData
            lock.lock()
            output += String(decoding: data, as: UTF8.self)
            lock.unlock()
        }
        try process.run()
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return output
    }

    /// Wait until stdout contains `needle` (or the timeout, or the process exits).
    func waitForOutput(_ needle: String, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if text.contains(needle) { return true }
            if !process.isRunning { return text.contains(needle) }
            usleep(2000)
        }
        return false
    }

    /// Wait for the process to exit (killing it after `timeout`).
    func waitForExit(timeout: Duration) {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning && ContinuousClock.now < deadline { usleep(2000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// A Swift host (this process) and Swift guests in child processes: byte-exact
/// echoes across processes, and recovery of a guest killed with SIGKILL.
final class CrossProcessTests: XCTestCase {
    func testAGuestProcessEchoesMixedSizes() throws {
        let socket = try tempSocketPath()
        let server = EchoServer(host: try RoamHost(socketPath: socket))
        let child = try ChildProcess(try peerExecutable(),
                                     ["--socket", socket, "--count", "2000", "--size", "0", "--max-size", "300000"])
        child.waitForExit(timeout: .seconds(120))
        XCTAssertEqual(child.process.terminationStatus, 0, child.text)
        XCTAssertTrue(child.text.contains("2000 echoes verified"), child.text)
        let gone = server.waitForDeparture(timeout: .seconds(10))
        try server.stop()
        guard case .peerGone(_, let reason, _) = gone else { return XCTFail("no departure: \(String(describing: gone))") }
        XCTAssertEqual(reason, .goodbye)
        XCTAssertEqual(server.echoCount, 2000)
    }

    func testAGuestKilledMidStreamIsRecovered() throws {
        let socket = try tempSocketPath()
        let segment = try tempSegmentPath()
        let server = EchoServer(host: try RoamHost(segmentPath: segment, socketPath: socket))
        let child = try ChildProcess(try peerExecutable(), [
            "--socket", socket, "--count", "1000000", "--size", "1000", "--max-size", "200000",
            "--pace-us", "100", "--progress-every", "300",
        ])
        XCTAssertTrue(child.waitForOutput("sent 600\n", timeout: .seconds(60)), child.text)
        let before = try SegmentInfo(inspecting: segment)
        XCTAssertEqual(before.peers.filter { $0.state == .attached }.map(\.guestPid),
                       [UInt32(child.process.processIdentifier)])
        XCTAssertEqual(kill(child.process.processIdentifier, SIGKILL), 0)
        child.waitForExit(timeout: .seconds(10))
        XCTAssertEqual(child.process.terminationReason, .uncaughtSignal)
        XCTAssertEqual(child.process.terminationStatus, SIGKILL)

        let gone = server.waitForDeparture(timeout: .seconds(10))
        try server.stop()
        guard case .peerGone(_, let reason, _) = gone else { return XCTFail("no departure: \(String(describing: gone))") }
        XCTAssertTrue(reason == .doorbellClosed || reason == .processGone(pid: UInt32(child.process.processIdentifier)),
                      "\(reason)")
        let after = try SegmentInfo(inspecting: segment)
        XCTAssertEqual(after.allocatedSlots, 0, "the killed guest's slots are recovered")
        XCTAssertTrue(after.peers.allSatisfy { $0.state == .empty })
        server.host.close()
    }
}
