"""roam-shm: zero-copy shared-memory IPC, byte-compatible with roam 7.x segments.

Sessions
    :class:`Host` creates a segment and accepts guests on a Unix socket;
    :class:`Guest` connects to one. Both send any buffer-protocol object
    (``send``/``try_send``), reserve zero-copy sends (``reserve`` → :class:`Reservation`)
    and receive :class:`Message` objects whose ``data`` is a read-only ``memoryview``
    over the shared mapping.

Primitives
    :class:`SharedMemory` (memfd or file), :class:`BipBuffer`, :class:`SpscRing`,
    :class:`VarSlotPool`, :class:`Doorbell` and :class:`WaitCell`.

Lifetime guarantee
    A memoryview of a message, reservation, slot, grant or region never points at
    memory this process has unmapped or handed back: while such a view is alive, every
    call that would hand the memory back (release, commit, the next receive on the
    link, ``Host.poll``, ``disconnect``, ``close``, ``free``) raises ``BufferError``
    and changes nothing. After a message is released, ``msg.data``, ``bytes(msg)`` and
    new exports raise :class:`ClosedError`. (A peer process that breaks the protocol
    can still write into shared memory; that cannot be prevented.)

Errors derive from :class:`RoamError`; see ``_native.pyi`` for the hierarchy.
"""

from roam_shm._native import (
    DEBUG_BUILD,
    PAGE_COPY_THRESHOLD,
    BipBuffer,
    ClosedError,
    ConfigError,
    CorruptError,
    Doorbell,
    Grant,
    Guest,
    Host,
    HostEvent,
    HostGoodbyeError,
    InvalidHandleError,
    Message,
    MessageIter,
    PayloadTooLargeError,
    PeerGoneError,
    PoolClassStats,
    PoolExhaustedError,
    ProtocolError,
    Recovery,
    RejectedError,
    Reservation,
    ReservationPendingError,
    RingFullError,
    RoamError,
    RoamOSError,
    RoamTimeoutError,
    SegmentFormatError,
    SharedMemory,
    Slot,
    SpscRing,
    SpscRingConsumer,
    SpscRingProducer,
    VarSlotPool,
    WaitCell,
    WouldBlock,
    __version__,
)

__all__ = [
    "DEBUG_BUILD",
    "PAGE_COPY_THRESHOLD",
    "BipBuffer",
    "ClosedError",
    "ConfigError",
    "CorruptError",
    "Doorbell",
    "Grant",
    "Guest",
    "Host",
    "HostEvent",
    "HostGoodbyeError",
    "InvalidHandleError",
    "Message",
    "MessageIter",
    "PayloadTooLargeError",
    "PeerGoneError",
    "PoolClassStats",
    "PoolExhaustedError",
    "ProtocolError",
    "Recovery",
    "RejectedError",
    "Reservation",
    "ReservationPendingError",
    "RingFullError",
    "RoamError",
    "RoamOSError",
    "RoamTimeoutError",
    "SegmentFormatError",
    "SharedMemory",
    "Slot",
    "SpscRing",
    "SpscRingConsumer",
    "SpscRingProducer",
    "VarSlotPool",
    "WaitCell",
    "WouldBlock",
    "__version__",
]
