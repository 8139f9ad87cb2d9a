//! `roam_shm._native`: the PyO3 extension module behind the `roam_shm` package.
//!
//! - [`session`]: `Host`, `Guest`, `Message`, `Reservation`, `HostEvent`, `Recovery`.
//! - [`prims`]: `SharedMemory`, `BipBuffer`/`Grant`, `SpscRing` and its roles,
//!   `VarSlotPool`/`Slot`, `Doorbell`, `WaitCell`.
//! - [`errors`]: the exception hierarchy (`RoamError` and below).
//!
//! The GIL is released around every wait and every copy larger than a page; waits run
//! in slices of at most 50 ms with `check_signals` in between, so Ctrl-C works.

mod errors;
mod prims;
mod session;
mod util;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<session::Host>()?;
    m.add_class::<session::Guest>()?;
    m.add_class::<session::Message>()?;
    m.add_class::<session::MessageIter>()?;
    m.add_class::<session::Reservation>()?;
    m.add_class::<session::HostEvent>()?;
    m.add_class::<session::Recovery>()?;
    m.add_class::<prims::SharedMemory>()?;
    m.add_class::<prims::BipBuffer>()?;
    m.add_class::<prims::Grant>()?;
    m.add_class::<prims::SpscRing>()?;
    m.add_class::<prims::SpscRingProducer>()?;
    m.add_class::<prims::SpscRingConsumer>()?;
    m.add_class::<prims::VarSlotPool>()?;
    m.add_class::<prims::Slot>()?;
    m.add_class::<prims::PoolClassStats>()?;
    m.add_class::<prims::Doorbell>()?;
    m.add_class::<prims::WaitCell>()?;
    m.add("PAGE_COPY_THRESHOLD", util::GIL_FREE_COPY)?;
    // Whether this extension was built without optimisation (`maturin develop`
    // without --release): several times slower, so benchmarks say so.
    m.add("DEBUG_BUILD", cfg!(debug_assertions))?;
    Ok(())
}
