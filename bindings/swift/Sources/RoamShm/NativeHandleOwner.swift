import Foundation

/// Base class of the objects that own a handle of the C ABI (`RoamHost *`,
/// `RoamGuest *`): ``RoamHost`` and ``RoamGuest``.
///
/// Modelled on libsignal's `NativeHandleOwner`: the handle is destroyed exactly
/// once, by ``close()`` or, at the latest, by `deinit`; every use goes through
/// `withHandle`, which keeps the owner alive and holds its lock for the call.
///
/// The C handles are not thread-safe ("one thread at a time"), so the lock is what
/// makes the owners `Sendable`: all access to the handle and to the state that
/// tracks it is serialized by it. It is recursive, so code running inside a
/// message view (``Message/withUnsafeBytes(_:)``) may call back into its owner,
/// e.g. to echo the message.
public class NativeHandleOwner: @unchecked Sendable {
    // @unchecked Sendable: `handle` and every subclass's mutable state are only
    // touched with `lock` held.
    private var handle: OpaquePointer?
    private let destroy: (OpaquePointer) -> Void
    let lock = NSRecursiveLock()

    init(handle: OpaquePointer, destroy: @escaping (OpaquePointer) -> Void) {
        self.handle = handle
        self.destroy = destroy
    }

    deinit {
        if let handle { destroy(handle) }
    }

    /// Whether ``close()`` ran: every later call throws ``RoamError/Closed``.
    public var isClosed: Bool {
        locked { handle == nil }
    }

    /// Destroy the native handle now: a guest says goodbye to its host, a host
    /// shuts down and removes its socket and segment file. Messages still held
    /// become invalid (their views throw ``RoamError/Released``). Idempotent.
    public func close() {
        locked {
            guard let h = handle else { return }
            handle = nil
            invalidateViews()
            destroy(h)
        }
    }

    /// Subclasses forget their held messages here (called with the lock held,
    /// before the handle is destroyed).
    func invalidateViews() {}

    /// Run `body` with the lock held.
    func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Run `body` with the live handle and the lock held.
    ///
    /// - Throws: ``RoamError/Closed`` after ``close()``, or what `body` throws.
    func withHandle<R>(_ body: (OpaquePointer) throws -> R) throws -> R {
        lock.lock()
        defer { lock.unlock() }
        guard let h = handle else { throw RoamError.Closed }
        return try body(h)
    }
}
