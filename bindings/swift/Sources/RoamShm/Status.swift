import CRoamShm
import Foundation
import RoamShmFFI

// The C ABI's status codes, as Swift sees them (`RoamStatus` is `int32_t`).
let statusOK = Int32(ROAM_OK.rawValue)
let statusWouldBlock = Int32(ROAM_ERR_WOULD_BLOCK.rawValue)
let statusFull = Int32(ROAM_ERR_FULL.rawValue)
let statusPoolExhausted = Int32(ROAM_ERR_POOL_EXHAUSTED.rawValue)
let statusTimeout = Int32(ROAM_ERR_TIMEOUT.rawValue)
let statusPeerGone = Int32(ROAM_ERR_PEER_GONE.rawValue)

/// The calling thread's last-error message from the C ABI (copied).
func lastErrorMessage() -> String {
    guard let p = roam_last_error_message() else { return "" }
    return String(cString: p)
}

/// The ``RoamError`` for a failed C call. The backpressure and timeout codes, which
/// busy loops see often, are mapped here; the rest by the Rust mapping
/// (`RoamError::from_status`, one place for every code), with the detailed
/// last-error message.
func statusError(_ status: Int32, payloadLength: Int = 0) -> RoamError {
    switch status {
    case statusFull: return .Full
    case statusPoolExhausted: return .PoolExhausted(len: UInt64(payloadLength))
    case statusTimeout: return .Timeout
    default: return RoamShmFFI.errorForStatus(status: status, message: lastErrorMessage())
    }
}

/// Throw unless `status` is `ROAM_OK`.
func check(_ status: Int32, payloadLength: Int = 0) throws {
    if status != statusOK { throw statusError(status, payloadLength: payloadLength) }
}

/// What `roam_status_str` says about a status code (for diagnostics).
func statusDescription(_ status: Int32) -> String {
    String(cString: roam_status_str(status))
}

/// The zero-copy send both sessions share: `reserve` hands out `count` bytes of
/// shared memory, `fill` writes them, `commit` publishes them, or `cancel` returns
/// them if `fill` throws. Returns the reserve's status if it failed, else the
/// commit's (the caller holds the session's lock throughout).
func reserveFillCommit(count: Int, _ fill: (UnsafeMutableRawBufferPointer) throws -> Void,
                       reserve: (UInt, inout UnsafeMutablePointer<UInt8>?) -> Int32,
                       commit: () -> Int32, cancel: () -> Int32) throws -> Int32
{
    guard count >= 0 else { throw RoamError.InvalidArgument(message: "count \(count) is negative") }
    var out: UnsafeMutablePointer<UInt8>?
    let s = reserve(UInt(count), &out)
    guard s == statusOK else { return s }
    do {
        try fill(UnsafeMutableRawBufferPointer(start: out, count: count))
    } catch {
        _ = cancel()
        throw error
    }
    return commit()
}

extension UnsafeRawBufferPointer {
    /// Start and length as the C ABI takes them (`const uint8_t *`, `uintptr_t`).
    var cStart: UnsafePointer<UInt8>? { baseAddress?.assumingMemoryBound(to: UInt8.self) }
    var cCount: UInt { UInt(count) }
}

/// Longest a blocking call holds a session's lock while it waits: other threads
/// using the same session get their turn at least this often (the C handles are
/// single-threaded, so a wait cannot run beside a send).
let waitSlice: Duration = .milliseconds(5)

extension Duration {
    /// Milliseconds for the C ABI, rounded up, clamped to `0...Int32.max`.
    var cMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let ms = Double(seconds) * 1000 + (Double(attoseconds) / 1e15).rounded(.up)
        return ms >= Double(Int32.max) ? Int32.max : Int32(ms)
    }

    /// Seconds, for UniFFI's `TimeInterval`.
    var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// A deadline for an optional timeout (`nil`: never).
struct Deadline {
    let instant: ContinuousClock.Instant?

    init(_ timeout: Duration?) {
        instant = timeout.map { ContinuousClock.now.advanced(by: max($0, .zero)) }
    }

    /// Time left, `nil` for "forever"; `.zero` once passed.
    var remaining: Duration? {
        instant.map { max(ContinuousClock.now.duration(to: $0), .zero) }
    }

    var hasPassed: Bool { remaining == .zero }

    /// The next wait: at most ``waitSlice``, at most what is left.
    var nextSlice: Duration {
        remaining.map { min($0, waitSlice) } ?? waitSlice
    }
}

/// Set by a task's cancellation handler, polled by the blocking loops between
/// wait slices.
final class CancellationFlag: @unchecked Sendable {
    // @unchecked Sendable: `cancelled` is only accessed with `lock` held.
    private let lock = NSLock()
    private var cancelled = false

    func cancel() {
        lock.lock()
        cancelled = true
        lock.unlock()
    }

    var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }
}

/// Run `body` on `queue` (a session's dedicated queue, off Swift's cooperative
/// pool, because it blocks) and await its result; the task's cancellation sets the
/// flag `body` polls.
func runBlocking<R: Sendable>(
    on queue: DispatchQueue,
    _ body: @escaping @Sendable (CancellationFlag) throws -> R
) async throws -> R {
    let flag = CancellationFlag()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R, Error>) in
            queue.async {
                continuation.resume(with: Result { try body(flag) })
            }
        }
    } onCancel: {
        flag.cancel()
    }
}

/// Between two slices of a blocking wait: give threads waiting for the lock a
/// chance, and honour cancellation.
func betweenSlices(_ flag: CancellationFlag?) throws {
    sched_yield()
    if flag?.isCancelled == true { throw CancellationError() }
}
