import Foundation
import RoamShm
import RoamShmTestSupport
import XCTest

/// Swift against the Rust CLI (`roam-shm host` / `roam-shm guest`), which
/// scripts/test-swift.sh starts on the host side of the toolchain chroot; they
/// share sockets under /tmp and segments under /dev/shm. Without the script's
/// environment these tests are skipped (saying so).
///
/// - `ROAM_SHM_TEST_RUST_HOST_SOCKET`, `ROAM_SHM_TEST_RUST_HOST_SEGMENT`: a
///   `roam-shm host --echo --segment ...` is listening there.
/// - `ROAM_SHM_TEST_SWIFT_HOST_SOCKET`: the script runs `roam-shm guest` against
///   this socket once it appears.
/// - `ROAM_SHM_TEST_COUNT`: messages per run (10,000).
final class CrossLanguageTests: XCTestCase {
    private let env = ProcessInfo.processInfo.environment

    private func required(_ name: String) throws -> String {
        guard let value = env[name], !value.isEmpty else {
            throw XCTSkip("\(name) is not set: run scripts/test-swift.sh for the cross-language tests")
        }
        return value
    }

    private var count: Int { env["ROAM_SHM_TEST_COUNT"].flatMap(Int.init) ?? 10_000 }

    func testSwiftGuestEchoesThroughRustHost() throws {
        let socket = try required("ROAM_SHM_TEST_RUST_HOST_SOCKET")
        let guest = try RoamGuest(socketPath: socket)
        let start = ContinuousClock.now
        // Sizes 0...300,000 log-uniform: inline, pool slots and mapped regions.
        let stats = try runEchoClient(guest: guest, count: count, seed: 7,
                                      sizes: PayloadSizes(seed: 7, min: 0, max: 300_000))
        guest.close()
        XCTAssertEqual(stats.verified, count)
        for kind in [MessageKind.inline, .slot, .mmap] {
            XCTAssertGreaterThan(stats.kinds[kind, default: 0], 0, "no \(kind) echoes")
        }
        print("cross-language: Swift guest -> Rust host: \(stats.verified) echoes verified byte for byte, "
            + "\(stats.bytes) bytes each way, kinds \(stats.kinds), \(ContinuousClock.now - start)")
    }

    func testSwiftHostServesRustGuest() throws {
        let socket = try required("ROAM_SHM_TEST_SWIFT_HOST_SOCKET")
        let start = ContinuousClock.now
        let server = EchoServer(host: try RoamHost(socketPath: socket))
        let gone = server.waitForDeparture(timeout: .seconds(180))
        try server.stop()
        server.host.close()
        guard case .peerGone(_, let reason, _) = gone else {
            return XCTFail("the Rust guest never left (\(server.echoCount) echoed)")
        }
        XCTAssertEqual(reason, .goodbye)
        XCTAssertEqual(server.echoCount, count)
        print("cross-language: Rust guest -> Swift host: \(server.echoCount) messages echoed, "
            + "\(ContinuousClock.now - start)")
    }

    func testSwiftGuestKilledMidStreamIsRecoveredByRustHost() throws {
        let socket = try required("ROAM_SHM_TEST_RUST_HOST_SOCKET")
        let segment = try required("ROAM_SHM_TEST_RUST_HOST_SEGMENT")
        let child = try ChildProcess(try peerExecutable(), [
            "--socket", socket, "--count", "1000000", "--size", "1000", "--max-size", "200000",
            "--pace-us", "100", "--progress-every", "300",
        ])
        XCTAssertTrue(child.waitForOutput("sent 600\n", timeout: .seconds(60)), child.text)
        let pid = UInt32(child.process.processIdentifier)
        XCTAssertTrue(try SegmentInfo(inspecting: segment).peers.contains { $0.guestPid == pid && $0.state == .attached })
        XCTAssertEqual(kill(child.process.processIdentifier, SIGKILL), 0)
        child.waitForExit(timeout: .seconds(10))
        XCTAssertEqual(child.process.terminationStatus, SIGKILL)

        // The Rust host notices on its next poll and recovers the peer's slots.
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        var info = try SegmentInfo(inspecting: segment)
        while ContinuousClock.now < deadline
            && (info.allocatedSlots != 0 || info.peers.contains { $0.guestPid == pid && $0.state != .empty })
        {
            usleep(10_000)
            info = try SegmentInfo(inspecting: segment)
        }
        XCTAssertEqual(info.allocatedSlots, 0, "slots still allocated: \(info.slotClasses)")
        XCTAssertFalse(info.peers.contains { $0.guestPid == pid && $0.state != .empty }, "\(info.peers)")
        print("cross-language: Swift guest pid \(pid) killed with SIGKILL mid-stream; the Rust host recovered "
            + "its peer entry and slots (0 allocated)")
    }
}
