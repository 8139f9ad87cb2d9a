import Foundation
import RoamShm

/// What an echo run did.
public struct EchoStats: Sendable {
    public var sent = 0
    public var verified = 0
    public var bytes = 0
    public var kinds: [MessageKind: Int] = [:]
}

/// Send `count` deterministic payloads (sizes from `sizes`) to the host and check
/// every echo byte for byte, keeping at most `window` messages in flight. Payloads
/// are written straight into shared memory and checked in place (zero-copy both
/// ways). `onSent` runs after each send (pacing, progress).
public func runEchoClient(guest: RoamGuest, count: Int, seed: UInt64, sizes: PayloadSizes, window: Int = 16,
                          timeout: Duration = .seconds(120), onSent: (Int) -> Void = { _ in }) throws -> EchoStats
{
    var sizes = sizes
    var pending: [Int] = []  // sizes in flight, in send order
    var stats = EchoStats()
    let deadline = ContinuousClock.now.advanced(by: timeout)

    func verify(_ m: Message) throws {
        let seq = UInt64(stats.verified)
        let expected = pending.removeFirst()
        let ok = try m.withUnsafeBytes { $0.count == expected && Payload.matches($0, seed: seed, seq: seq) }
        guard ok else {
            throw RoamError.Corrupt(message: "echo #\(seq) differs from what was sent (\(m.count) vs \(expected) bytes)")
        }
        stats.kinds[m.kind, default: 0] += 1
        try m.release()
        stats.verified += 1
    }

    while stats.verified < count {
        var progress = false
        while stats.sent < count && stats.sent - stats.verified < window {
            let len = sizes.peek
            let seq = UInt64(stats.sent)
            do {
                try guest.trySend(count: len) { Payload.fill($0, seed: seed, seq: seq) }
            } catch let e as RoamError where e.isBackpressure {
                break
            }
            _ = sizes.next()
            pending.append(len)
            stats.sent += 1
            stats.bytes += len
            progress = true
            onSent(stats.sent)
        }
        while let m = try guest.tryReceive() {
            try verify(m)
            progress = true
        }
        if !progress {
            guard ContinuousClock.now < deadline else { throw RoamError.Timeout }
            // Sleep on the doorbell until an echo arrives (or room is freed).
            do {
                try verify(try guest.receive(timeout: .milliseconds(20)))
            } catch RoamError.Timeout {}
        }
    }
    return stats
}
