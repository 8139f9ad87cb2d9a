//! The iceoryx2 baseline (feature `iceoryx2`): publish-subscribe of `[u8]` slices
//! over two services (one per direction), zero-copy: `loan_slice_uninit` → write
//! the payload into the loaned sample → `send`; the subscriber busy-polls `receive`
//! and reads the sequence number from the sample in place.
//!
//! Latency services use iceoryx2's own benchmark settings (history 0, a buffer of 1
//! with safe overflow). Stream services buffer up to 256 samples (fewer for large
//! ones, to bound the data segment) without overflow, and publishers retry until
//! delivered, so nothing is dropped.

use std::time::Instant;

use iceoryx2::port::LoanError;
use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;

use crate::BoxError;
use crate::endpoint::{Endpoint, Side, Source, Spinner, read_seq};
use crate::rows::Measure;

/// Service names for a row: `roam-bench/<pid>/<tag>/a2b` and `.../b2a`.
pub fn service_base(tag: usize) -> String {
    format!("roam-bench/{}/{tag}", std::process::id())
}

fn buffer_for(measure: Measure, len: usize) -> usize {
    match measure {
        Measure::Latency => 1,
        Measure::Throughput => ((64 << 20) / len).clamp(2, 256),
    }
}

/// One side of an iceoryx2 link.
#[derive(Debug)]
pub struct IoxEp {
    publisher: Publisher<ipc::Service, [u8], ()>,
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    src: Source,
    spin: Spinner,
    // Dropped last: the ports above belong to the node.
    _node: Node<ipc::Service>,
}

impl IoxEp {
    /// Side A creates both services; side B (spawned after A's ports exist) opens
    /// them.
    pub fn new(
        base: &str,
        side: Side,
        measure: Measure,
        len: usize,
        deadline: Instant,
    ) -> Result<IoxEp, BoxError> {
        set_log_level(LogLevel::Error);
        let node = NodeBuilder::new().create::<ipc::Service>()?;
        let buffer = buffer_for(measure, len);
        let lossless = measure == Measure::Throughput;
        let service = |dir: &str| -> Result<_, BoxError> {
            let name: ServiceName = format!("{base}/{dir}").as_str().try_into()?;
            let b = node
                .service_builder(&name)
                .publish_subscribe::<[u8]>()
                .max_publishers(1)
                .max_subscribers(1)
                .history_size(0)
                .subscriber_max_buffer_size(buffer)
                .enable_safe_overflow(!lossless);
            Ok(match side {
                Side::A => b.create()?,
                Side::B => b.open()?,
            })
        };
        let a2b = service("a2b")?;
        let b2a = service("b2a")?;
        let (out, inp) = match side {
            Side::A => (&a2b, &b2a),
            Side::B => (&b2a, &a2b),
        };
        let mut pb = out.publisher_builder().initial_max_slice_len(len);
        if lossless {
            pb = pb.backpressure_strategy(BackpressureStrategy::RetryUntilDelivered);
        }
        let publisher = pb.create()?;
        let subscriber = inp.subscriber_builder().create()?;
        Ok(IoxEp {
            publisher,
            subscriber,
            src: Source::new(len),
            spin: Spinner::new(deadline),
            _node: node,
        })
    }
}

impl Endpoint for IoxEp {
    fn send(&mut self, seq: u64, len: usize) -> Result<(), BoxError> {
        loop {
            let sample = loop {
                match self.publisher.loan_slice_uninit(len) {
                    Ok(s) => break s,
                    Err(LoanError::OutOfMemory | LoanError::ExceedsMaxLoans) => self.spin.spin()?,
                    Err(e) => return Err(e.to_string().into()),
                }
            };
            let sample = sample.write_from_slice(self.src.stamped(len, seq));
            // The number of subscribers that got it: 0 while the peer's subscriber has
            // not connected yet (iceoryx2 then drops the sample once that buffer is
            // full, even when retrying until delivered): send it again.
            let delivered = sample.send().map_err(|e| format!("iceoryx2 send: {e:?}"))?;
            if delivered > 0 {
                return Ok(());
            }
            self.spin.spin()?;
        }
    }

    fn recv(&mut self) -> Result<u64, BoxError> {
        loop {
            if let Some(s) = self
                .subscriber
                .receive()
                .map_err(|e| format!("iceoryx2 receive: {e:?}"))?
            {
                let p = s.payload();
                if p.len() < 8 {
                    return Err("sample shorter than a sequence number".into());
                }
                // SAFETY: the payload holds at least 8 bytes (checked).
                return Ok(unsafe { read_seq(p.as_ptr()) });
            }
            self.spin.spin()?;
        }
    }
}
