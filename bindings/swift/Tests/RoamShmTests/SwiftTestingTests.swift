import Foundation
import RoamShm
import RoamShmTestSupport
import Testing

/// Swift Testing suites (run by `swift test` beside the XCTest ones).
@Suite("Layout and payload facts")
struct LayoutAndPayloadTests {
    @Test("the ring area starts after the header and one 64-byte peer entry per guest",
          arguments: [UInt32(1), 2, 8, 64, 255])
    func ringBaseFollowsMaxGuests(guests: UInt32) throws {
        var config = SegmentConfig.default
        config.maxGuests = guests
        let layout = try config.layout()
        #expect(layout.ringBase == 128 + 64 * UInt64(guests))
        #expect(layout.varPoolOffset % 64 == 0)
        #expect(layout.totalSize == layout.varPoolOffset + layout.varPoolSize)
    }

    @Test("a larger ring never shrinks the segment", arguments: [UInt32(256), 4096, 65_536, 1 << 20])
    func ringCapacityGrowsTheSegment(capacity: UInt32) throws {
        var small = SegmentConfig.default
        small.bipbufCapacity = 256
        small.inlineThreshold = 64
        var config = small
        config.bipbufCapacity = capacity
        #expect(try config.layout().totalSize >= small.layout().totalSize)
    }

    /// Expected bytes computed from the Rust CLI's algorithm (payload.rs).
    @Test("payloads match the Rust CLI's generator", arguments: [
        (UInt64(1), UInt64(0), "ca8a33e272"),
        (7, 3, "cc8aa2b0c774004b53dc1f546b300991"),
        (42, 9999, "8d1750cb48993d2be74f2f"),
    ])
    func payloadsMatchRust(seed: UInt64, seq: UInt64, hex: String) {
        let bytes = Payload.bytes(seed: seed, seq: seq, count: hex.count / 2)
        #expect(bytes.map { String(format: "%02x", $0) }.joined() == hex)
        #expect(bytes.withUnsafeBytes { Payload.matches($0, seed: seed, seq: seq) })
        var corrupted = bytes
        corrupted[corrupted.count - 1] ^= 1
        #expect(!corrupted.withUnsafeBytes { Payload.matches($0, seed: seed, seq: seq) })
    }

    @Test("sizes are log-uniform like the Rust CLI's")
    func sizesMatchRust() {
        var sizes = PayloadSizes(seed: 7, min: 0, max: 300_000)
        #expect((0..<8).map { _ in sizes.next()! } == [136, 8949, 2176, 8, 0, 41405, 68, 8104])
        var fixed = PayloadSizes(seed: 1, min: 64, max: 64)
        #expect(fixed.peek == 64 && fixed.next() == 64 && fixed.next() == 64)
    }
}

@Suite("Sessions (Swift Testing)")
struct SessionSuite {
    @Test("an async round trip through the message sequence")
    func asyncRoundTrip() async throws {
        let (host, guest) = try makePair()
        let echo = Task.detached {
            let m = try await host.receive(from: guest.peerID, timeout: .seconds(5))
            try m.withUnsafeBytes { try host.send(to: guest.peerID, $0) }
            try m.release()
        }
        try guest.send(Data("swift-testing".utf8))
        try await echo.value
        for try await reply in guest.messages {
            #expect(try reply.copyData() == Data("swift-testing".utf8))
            break
        }
        guest.close()
        #expect(guest.isClosed)
        #expect(throws: RoamError.Closed) { try guest.tryReceive() }
    }
}
