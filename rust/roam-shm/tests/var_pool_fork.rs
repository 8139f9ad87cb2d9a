//! Cross-process test: a parent and a forked child allocate and free from one pool in
//! a `MAP_SHARED` anonymous mapping. Each owner stamps its slot, checks the stamp
//! survives while it holds the slot, and frees it; a slot handed to both processes at
//! once shows up as a foreign stamp. The child then "crashes" holding a slot, and the
//! parent reclaims it by owner id.
#![cfg(not(feature = "loom"))]

use roam_shm::region::Region;
use roam_shm::segment::var_pool::{SizeClass, VarSlotHandle, VarSlotPool, calculate_size};

const CLASSES: [SizeClass; 2] = [
    SizeClass {
        slot_size: 64,
        count: 2,
    },
    SizeClass {
        slot_size: 256,
        count: 1,
    },
];
/// Each process churns for this long, so the two overlap despite the fork latency.
const CHURN: std::time::Duration = std::time::Duration::from_millis(300);
const PARENT: u32 = 1;
const CHILD: u32 = 2;

/// Alloc, stamp, check, free for [`CHURN`]; the number of stamps found overwritten,
/// or `u32::MAX` on a pool error (a double hand-out also makes a free fail).
fn churn(pool: &VarSlotPool<'_>, owner: u32) -> u32 {
    let mut clobbered = 0;
    let start = std::time::Instant::now();
    let mut round = 0u32;
    while start.elapsed() < CHURN {
        round = round.wrapping_add(1);
        let Some(h) = pool.alloc(8, owner) else {
            continue;
        };
        let Ok(p) = pool.payload_ptr(h) else {
            return u32::MAX;
        };
        let stamp = (u64::from(owner) << 32) | u64::from(round);
        let p = p.cast::<u64>();
        // SAFETY: the slot (>= 64 bytes, 64-aligned) is allocated to `owner`; volatile
        // because the other process shares the mapping.
        unsafe { p.write_volatile(stamp) };
        for _ in 0..16 {
            std::hint::spin_loop();
            // SAFETY: as above.
            if unsafe { p.read_volatile() } != stamp {
                clobbered += 1;
                break;
            }
        }
        if pool.free(h).is_err() {
            return u32::MAX;
        }
    }
    clobbered
}

#[test]
fn parent_and_child_never_share_a_slot() {
    let len = calculate_size(&CLASSES).unwrap() as usize;
    // SAFETY: a fresh anonymous shared mapping; checked for MAP_FAILED below.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    // SAFETY: the mapping is valid for `len` bytes until the munmap at the end, after
    // every use of the region.
    let region = unsafe { Region::from_raw(base.cast(), len) };
    // SAFETY: the mapping is fresh; the child is forked only after init.
    let pool = unsafe { VarSlotPool::init(region, &CLASSES) }.unwrap();

    // SAFETY: the child only runs the pool's lock-free, allocation-free operations on
    // the shared mapping and leaves with _exit, which is fork-safe in a threaded test
    // harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let clobbered = churn(&pool, CHILD);
        // Crash while holding a slot: the parent must reclaim it.
        let leaked: Option<VarSlotHandle> = pool.alloc(1, CHILD);
        let code = match (clobbered, leaked) {
            (0, Some(_)) => 0,
            (0, None) => 3,
            (u32::MAX, _) => 2,
            _ => 1,
        };
        // SAFETY: terminates the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }

    let clobbered = churn(&pool, PARENT);
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child died: status {status}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "child: 1 = slot shared, 2 = pool error, 3 = no slot to leak"
    );
    assert_eq!(clobbered, 0, "parent saw a slot shared with the child");

    let allocated: u32 = pool.stats().iter().map(|s| s.allocated).sum();
    assert_eq!(allocated, 1, "the child's leaked slot");
    assert_eq!(pool.reclaim_peer_slots(CHILD), 1);
    assert_eq!(pool.free_count(0), Ok(2));
    assert_eq!(pool.free_count(1), Ok(1));

    drop(pool);
    // SAFETY: unmaps the mapping created above; nothing uses it any more.
    assert_eq!(unsafe { libc::munmap(base, len) }, 0);
}
