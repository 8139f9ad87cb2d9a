// Deterministic payloads and sizes, byte for byte the same as the Rust CLI's
// (rust/roam-shm-cli/src/payload.rs), so either side can check an echo without
// shipping a checksum.

import Foundation

/// Payload number `seq` of stream `seed`, `count` bytes long.
public enum Payload {
    static func splitmix(_ input: UInt64) -> UInt64 {
        let x = input &+ 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func start(seed: UInt64, seq: UInt64, count: Int) -> UInt64 {
        seed ^ (seq &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(count)
    }

    /// Write the payload into `buffer` (its whole length).
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer, seed: UInt64, seq: UInt64) {
        guard let base = buffer.baseAddress else { return }
        var x = start(seed: seed, seq: seq, count: buffer.count)
        var i = 0
        while i + 8 <= buffer.count {
            x = splitmix(x)
            base.storeBytes(of: x.littleEndian, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        if i < buffer.count {
            x = splitmix(x)
            var tail = x.littleEndian
            withUnsafeBytes(of: &tail) { t in
                for j in 0..<(buffer.count - i) { base.storeBytes(of: t[j], toByteOffset: i + j, as: UInt8.self) }
            }
        }
    }

    /// The payload as bytes.
    public static func bytes(seed: UInt64, seq: UInt64, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { fill($0, seed: seed, seq: seq) }
        return out
    }

    /// Whether `bytes` is exactly payload `seq` of stream `seed` (length included).
    public static func matches(_ bytes: UnsafeRawBufferPointer, seed: UInt64, seq: UInt64) -> Bool {
        guard let base = bytes.baseAddress else { return bytes.isEmpty }
        var x = start(seed: seed, seq: seq, count: bytes.count)
        var i = 0
        while i + 8 <= bytes.count {
            x = splitmix(x)
            if base.loadUnaligned(fromByteOffset: i, as: UInt64.self) != x.littleEndian { return false }
            i += 8
        }
        if i < bytes.count {
            x = splitmix(x)
            var tail = x.littleEndian
            return withUnsafeBytes(of: &tail) { t in
                (0..<(bytes.count - i)).allSatisfy { bytes[i + $0] == t[$0] }
            }
        }
        return true
    }
}

/// Sizes drawn log-uniformly from `min...max` (the Rust CLI's `Sizes`).
public struct PayloadSizes: IteratorProtocol, Sendable {
    private var state: UInt64
    private let min: Int
    private let max: Int
    private var upcoming = 0

    public init(seed: UInt64, min: Int, max: Int) {
        state = seed
        self.min = min
        self.max = Swift.max(max, min)
        upcoming = draw()
    }

    private mutating func draw() -> Int {
        if min == max { return min }
        state = Payload.splitmix(state)
        let u = Double(state >> 11) / Double(UInt64(1) << 53)
        let lo = Foundation.log(Double(Swift.max(min, 1)))
        let hi = Foundation.log(Double(max + 1))
        let v = Int(Foundation.exp(lo + u * (hi - lo)))
        if min == 0 && v <= 1 && state & 1 == 0 { return 0 }
        return Swift.min(Swift.max(v, min), max)
    }

    /// The next size without consuming it.
    public var peek: Int { upcoming }

    public mutating func next() -> Int? {
        let v = upcoming
        upcoming = draw()
        return v
    }
}
