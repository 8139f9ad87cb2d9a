import Foundation
import XCTest

import RoamShm

final class ControlPlaneTests: XCTestCase {
    func testDefaultConfigIsValidAndLaidOut() throws {
        let config = SegmentConfig.default
        XCTAssertEqual(config.maxGuests, 8)
        XCTAssertEqual(config.bipbufCapacity, 64 * 1024)
        let sizes: [UInt32] = config.sizeClasses.map { $0.slotSize }
        XCTAssertEqual(sizes, [1024, 16_384, 262_144])
        XCTAssertEqual(config.heartbeatInterval, 0)
        let layout = try config.layout()
        XCTAssertEqual(layout.peerTableOffset, 128)
        XCTAssertEqual(layout.ringBase, 128 + 64 * 8)
        XCTAssertEqual(layout.effectiveInlineThreshold, 256)
        XCTAssertEqual(layout.totalSize, layout.varPoolOffset + layout.varPoolSize)
    }

    func testInvalidConfigsThrowNamingTheRule() {
        var config = SegmentConfig.default
        config.bipbufCapacity = 1000
        XCTAssertThrowsError(try config.layout()) { error in
            guard case RoamError.InvalidConfig(let message) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertTrue(message.contains("multiple of 64"), message)
        }
        config = .default
        config.maxGuests = 0
        XCTAssertThrowsError(try config.layout()) { error in
            guard case RoamError.InvalidConfig(let message) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertTrue(message.contains("max_guests"), message)
        }
        config = .default
        config.sizeClasses = []
        XCTAssertThrowsError(try config.layout())
        config = .default
        config.sizeClasses.reverse()
        XCTAssertThrowsError(try config.layout())
    }

    func testInspectRejectsBadPaths() throws {
        XCTAssertThrowsError(try SegmentInfo(inspecting: "")) { error in
            guard case RoamError.InvalidArgument = error else { return XCTFail("unexpected \(error)") }
        }
        XCTAssertThrowsError(try SegmentInfo(inspecting: "/nonexistent/roam-shm-segment")) { error in
            guard case RoamError.Io(_, _, let errno) = error else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(errno, ENOENT)
        }
        let junk = FileManager.default.temporaryDirectory
            .appendingPathComponent(try RoamShmLibrary.uniqueName(prefix: "roam-swift-junk")).path
        XCTAssertTrue(FileManager.default.createFile(atPath: junk, contents: Data(count: 4096)))
        defer { try? FileManager.default.removeItem(atPath: junk) }
        XCTAssertThrowsError(try SegmentInfo(inspecting: junk)) { error in
            guard case RoamError.BadSegment = error else { return XCTFail("unexpected \(error)") }
        }
    }

    func testLibraryFactsAndUniqueNames() throws {
        XCTAssertEqual(RoamShmLibrary.segmentFormatVersion, 7)
        XCTAssertFalse(RoamShmLibrary.version.isEmpty)
        let a = try RoamShmLibrary.uniqueName(prefix: "t")
        let b = try RoamShmLibrary.uniqueName(prefix: "t")
        XCTAssertNotEqual(a, b)
        XCTAssertTrue(a.hasPrefix("t-\(getpid())-"))
        for bad in ["", "a/b"] {
            XCTAssertThrowsError(try RoamShmLibrary.uniqueName(prefix: bad)) { error in
                guard case RoamError.InvalidArgument = error else { return XCTFail("unexpected \(error)") }
            }
        }
    }

    func testBackpressureClassification() {
        XCTAssertTrue(RoamError.Full.isBackpressure)
        XCTAssertTrue(RoamError.PoolExhausted(len: 3).isBackpressure)
        XCTAssertFalse(RoamError.Timeout.isBackpressure)
        XCTAssertFalse(RoamError.PeerGone.isBackpressure)
    }
}
