// roam-shm-swift-peer: a Swift guest in its own process, for the tests that need
// one (e.g. killing it with SIGKILL mid-stream). Mirrors `roam-shm guest`:
//
//   roam-shm-swift-peer --socket PATH [--count N] [--size MIN] [--max-size MAX]
//                       [--seed S] [--pace-us U] [--progress-every K]
//
// Sends N deterministic payloads and checks every echo byte for byte (exit 1 on a
// mismatch). Prints "connected peer=<id> pid=<pid>", "sent <n>" every K messages,
// and a summary line.

import Foundation
import RoamShm
import RoamShmTestSupport

/// Write a line to stdout at once (unbuffered: the tests read it while we run).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ line: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data(("roam-shm-swift-peer: " + line + "\n").utf8))
    exit(status)
}

let options: [String: String] = {
    var options: [String: String] = [:]
    var args = CommandLine.arguments.dropFirst()
    while let flag = args.popFirst() {
        guard flag.hasPrefix("--"), let value = args.popFirst() else {
            fail("usage: roam-shm-swift-peer --socket PATH [--count N] [--size MIN] [--max-size MAX] [--seed S] "
                + "[--pace-us U] [--progress-every K]", status: 2)
        }
        options[String(flag.dropFirst(2))] = value
    }
    return options
}()

func intOption(_ options: [String: String], _ name: String, _ fallback: Int) -> Int {
    options[name].flatMap(Int.init) ?? fallback
}

guard let socket = options["socket"] else { fail("--socket is required", status: 2) }
let count = intOption(options, "count", 1000)
let minSize = intOption(options, "size", 64)
let maxSize = intOption(options, "max-size", minSize)
let seed = UInt64(intOption(options, "seed", 1))
let paceMicros = intOption(options, "pace-us", 0)
let progressEvery = max(intOption(options, "progress-every", 100), 1)

do {
    let guest = try RoamGuest(socketPath: socket)
    say("connected peer=\(guest.peerID) pid=\(getpid())")
    let sizes = PayloadSizes(seed: seed &* 0x100_0000_01B3 ^ UInt64(guest.peerID), min: minSize, max: maxSize)
    let start = ContinuousClock.now
    let stats = try runEchoClient(guest: guest, count: count, seed: seed, sizes: sizes) { sent in
        if sent % progressEvery == 0 { say("sent \(sent)") }
        if paceMicros > 0 { usleep(UInt32(paceMicros)) }
    }
    let elapsed = ContinuousClock.now - start
    say("guest \(guest.peerID): \(stats.sent) sent, \(stats.verified) echoes verified, \(stats.bytes) bytes each way in \(elapsed)")
    guest.close()
} catch {
    fail("error: \(error)", status: 1)
}
