//! Criterion micro-benchmarks of the primitives, single-threaded over heap memory
//! (no second party: these are the per-operation costs, without any cache-line
//! transfer; the cross-process harness measures those).
//!
//! `cargo bench -p roam-shm-bench --bench primitives`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use roam_shm::bipbuf::BipBuf;
use roam_shm::region::HeapRegion;
use roam_shm::segment::var_pool::{SizeClass, VarSlotPool};
use roam_shm::spsc::SpscRing;
use roam_shm::treiber::TreiberSlab;

fn ring(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_ring");
    let region = HeapRegion::new_zeroed(SpscRing::<u64>::required_size(1024));
    let (mut p, mut q) = SpscRing::<u64>::init(region.region(), 1024)
        .expect("ring")
        .split();
    g.throughput(Throughput::Elements(1));
    g.bench_function("push_pop_u64", |b| {
        b.iter(|| {
            assert!(p.push(black_box(42)).is_ok());
            black_box(q.pop())
        })
    });

    let region64 = HeapRegion::new_zeroed(SpscRing::<[u64; 8]>::required_size(1024));
    let (mut p64, mut q64) = SpscRing::<[u64; 8]>::init(region64.region(), 1024)
        .expect("ring")
        .split();
    g.bench_function("push_pop_64B", |b| {
        b.iter(|| {
            assert!(p64.push(black_box([7u64; 8])).is_ok());
            black_box(q64.pop())
        })
    });
    for batch in [16usize, 64, 256] {
        let src = vec![[7u64; 8]; batch];
        let mut dst = vec![[0u64; 8]; batch];
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("batch{batch}_64B"), |b| {
            b.iter(|| {
                assert_eq!(p64.push_batch(black_box(&src)), batch);
                black_box(q64.pop_batch(&mut dst))
            })
        });
    }
    g.finish();
}

fn bipbuf(c: &mut Criterion) {
    let mut g = c.benchmark_group("bipbuf");
    let cap = 64 * 1024;
    let mem = HeapRegion::new_zeroed(BipBuf::required_size(cap));
    // SAFETY: the only handle to this ring; `mem` outlives it.
    let buf = unsafe { BipBuf::init(mem.region(), cap) }.expect("bipbuf");
    let (mut tx, mut rx) = buf.split();
    for len in [8u32, 64, 256, 4096] {
        g.throughput(Throughput::Bytes(u64::from(len)));
        g.bench_function(format!("grant_commit_read_release_{len}B"), |b| {
            b.iter(|| {
                let mut grant = tx.grant(black_box(len)).expect("grant").expect("room");
                grant[0] = 1;
                grant.commit(len).expect("commit");
                let n = rx.read().expect("read").expect("data").len() as u32;
                rx.release(black_box(n)).expect("release");
            })
        });
    }
    g.finish();
}

fn slab(c: &mut Criterion) {
    let mut g = c.benchmark_group("treiber_slab");
    let mem = HeapRegion::new_zeroed(TreiberSlab::required_size(256, 1024));
    let slab = TreiberSlab::init(mem.region(), 256, 1024).expect("slab");
    g.throughput(Throughput::Elements(1));
    g.bench_function("alloc_free", |b| {
        b.iter(|| {
            let h = slab.alloc().ok().expect("free slot");
            slab.free(black_box(h)).expect("free");
        })
    });
    g.bench_function("alloc_free_x64", |b| {
        let mut hs = Vec::with_capacity(64);
        b.iter(|| {
            for _ in 0..64 {
                hs.push(slab.alloc().ok().expect("free slot"));
            }
            for h in hs.drain(..) {
                slab.free(h).expect("free");
            }
        })
    });
    g.finish();
}

fn var_pool(c: &mut Criterion) {
    let mut g = c.benchmark_group("var_slot_pool");
    let classes = [
        SizeClass {
            slot_size: 1024,
            count: 64,
        },
        SizeClass {
            slot_size: 16 * 1024,
            count: 16,
        },
        SizeClass {
            slot_size: 256 * 1024,
            count: 4,
        },
    ];
    let size = roam_shm::segment::var_pool::calculate_size(&classes).expect("size") as usize;
    let mem = HeapRegion::new_zeroed(size);
    // SAFETY: fresh heap memory, used by this pool only.
    let pool = unsafe { VarSlotPool::init(mem.region(), &classes) }.expect("pool");
    let raw = pool.raw();
    g.throughput(Throughput::Elements(1));
    for (name, size) in [("1KiB_class", 1000u32), ("256KiB_class", 200_000)] {
        g.bench_function(format!("alloc_free_{name}"), |b| {
            b.iter(|| {
                let h = raw.alloc(black_box(size), 1).expect("free slot");
                raw.free(black_box(h)).expect("free");
            })
        });
    }
    // Falling through an exhausted class to the next one.
    g.bench_function("alloc_free_fallthrough", |b| {
        b.iter_batched(
            || {
                (0..64)
                    .map(|_| raw.alloc(1000, 1).expect("slot"))
                    .collect::<Vec<_>>()
            },
            |held| {
                let h = raw.alloc(black_box(1000), 1).expect("16 KiB slot");
                raw.free(h).expect("free");
                for h in held {
                    raw.free(h).expect("free");
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, ring, bipbuf, slab, var_pool);
criterion_main!(benches);
