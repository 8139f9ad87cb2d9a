//! A mapped segment as one process sees it: the mapping, the validated header, the
//! layout, the pool and the peer table. Shared (`Arc`) by every link of a process.

use std::os::fd::OwnedFd;
use std::path::Path;

use super::SessionError;
use super::config::{SegmentConfig, SegmentLayout};
use super::header::{SEGMENT_HEADER_SIZE, SegmentHeader};
use super::mapping::{PathCleanup, SegmentMapping};
use super::peer::{PeerEntry, PeerTable};
use super::var_pool::{RawVarSlotPool, SizeClass};
use crate::bipbuf::{BIPBUF_HEADER_SIZE, BipBufHeader, BipBufRaw};

/// Where a host puts its segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentBacking {
    /// A file (normally under `/dev/shm`), created with `mode` (0o600 by default).
    /// roam-built guests need this: they open the segment by the path in the
    /// bootstrap response.
    File {
        /// Path of the file to create (must not exist).
        path: std::path::PathBuf,
        /// Unlink on drop, or keep.
        cleanup: PathCleanup,
        /// File mode.
        mode: u32,
    },
    /// An anonymous memfd sealed against shrinking; guests get its fd (and, on
    /// Linux, the `/proc/<pid>/fd/<n>` path) in the bootstrap response.
    Anonymous,
}

/// One process's view of a mapped segment.
#[derive(Debug)]
pub struct SegmentShared {
    mapping: SegmentMapping,
    layout: SegmentLayout,
    pool: RawVarSlotPool,
    inline_threshold: u32,
    max_payload_size: u32,
    max_slot_payload: u32,
}

impl SegmentShared {
    /// Create and initialise a segment (host side).
    pub fn create(
        config: &SegmentConfig,
        backing: &SegmentBacking,
    ) -> Result<SegmentShared, SessionError> {
        let layout = SegmentLayout::compute(config)?;
        let mapping = match backing {
            SegmentBacking::File {
                path,
                cleanup,
                mode,
            } => SegmentMapping::create_file(path, layout.total_size, *mode, *cleanup)?,
            SegmentBacking::Anonymous => {
                SegmentMapping::create_anonymous("roam-shm-segment", layout.total_size)?
            }
        };
        let region = mapping.region();
        // SAFETY: the segment was just created by us and is not shared with anyone yet.
        unsafe {
            let header = SegmentHeader::init_in(&region, layout.header_init(config))?;
            PeerTable::init(&region, &layout)?;
            for i in 0..layout.max_guests {
                for off in [layout.g2h_offset(i), layout.h2g_offset(i)] {
                    let off = off.ok_or(SessionError::Internal("ring offset out of range"))?;
                    let (h, d) = ring_ptrs(&region, off, layout.bipbuf_capacity)?;
                    BipBufRaw::init(h, d, layout.bipbuf_capacity)?;
                }
            }
            let pool = RawVarSlotPool::new(
                region.as_ptr(),
                region.len(),
                to_usize(layout.var_pool_offset)?,
                &layout.size_classes,
            )?;
            pool.init();
            header.set_current_size(layout.total_size);
        }
        Self::finish(mapping, layout)
    }

    /// Map an existing segment from its fd (guests) or path, validating everything
    /// a peer could have got wrong before any pointer into it is formed.
    pub fn open(fd: Option<OwnedFd>, path: Option<&Path>) -> Result<SegmentShared, SessionError> {
        let hdr_len = SEGMENT_HEADER_SIZE as u64;
        let mapping = match (fd, path) {
            (Some(fd), _) => SegmentMapping::from_fd(fd, hdr_len)?,
            (None, Some(p)) => SegmentMapping::open_path(p, hdr_len)?,
            (None, None) => return Err(SessionError::Internal("open: neither fd nor path")),
        };
        let (total, classes_n) = {
            let region = mapping.region();
            let header = SegmentHeader::from_region(&region)?;
            header.validate().map_err(SessionError::BadSegment)?;
            let file_len = mapping.file_len()?;
            header.validate_strict(file_len)?;
            (
                header.current_size().max(header.total_size),
                header.num_var_slot_classes,
            )
        };
        mapping.remap(total)?;
        let region = mapping.region();
        let header = SegmentHeader::from_region(&region)?;
        // SAFETY: the pool lies inside the mapping (checked by from_headers against
        // region.len()), which lives as long as `mapping` (moved into Self below; the
        // base address is stable).
        let pool = unsafe {
            RawVarSlotPool::from_headers(
                region.as_ptr(),
                region.len(),
                to_usize(header.var_pool_offset)?,
                classes_n,
            )?
        };
        let layout = SegmentLayout::from_header(header, &pool.classes())?;
        Self::finish_with_pool(mapping, layout, pool)
    }

    fn finish(
        mapping: SegmentMapping,
        layout: SegmentLayout,
    ) -> Result<SegmentShared, SessionError> {
        let region = mapping.region();
        // SAFETY: as in `open`: the pool is inside the stable mapping owned by Self.
        let pool = unsafe {
            RawVarSlotPool::new(
                region.as_ptr(),
                region.len(),
                to_usize(layout.var_pool_offset)?,
                &layout.size_classes,
            )?
        };
        Self::finish_with_pool(mapping, layout, pool)
    }

    fn finish_with_pool(
        mapping: SegmentMapping,
        layout: SegmentLayout,
        pool: RawVarSlotPool,
    ) -> Result<SegmentShared, SessionError> {
        let (inline_threshold, max_payload_size) = {
            let region = mapping.region();
            let h = SegmentHeader::from_region(&region)?;
            (h.effective_inline_threshold(), h.max_payload_size)
        };
        let max_slot_payload = layout
            .size_classes
            .iter()
            .map(|c| c.slot_size.saturating_sub(4))
            .max()
            .unwrap_or(0);
        Ok(SegmentShared {
            mapping,
            layout,
            pool,
            inline_threshold,
            max_payload_size,
            max_slot_payload,
        })
    }

    /// The segment header.
    pub fn header(&self) -> &SegmentHeader {
        // SAFETY: the header was validated at construction, lies at offset 0 of the
        // stable mapping, and lives as long as self; any bit pattern is a valid header.
        unsafe { &*self.mapping.base().cast::<SegmentHeader>() }
    }

    /// The peer table.
    pub fn peer_table(&self) -> PeerTable<'_> {
        let region = self.mapping.region();
        // The table's placement was validated when the layout was computed/checked.
        PeerTable::attach(
            &region,
            self.layout.peer_table_offset,
            self.layout.max_guests,
        )
        .expect("peer table placement validated at open")
    }

    /// The entry of `peer_id` (1-based).
    pub fn peer(&self, peer_id: u8) -> Result<&PeerEntry, SessionError> {
        Ok(self.peer_table().entry(u32::from(peer_id))?)
    }

    /// The shared slot pool.
    pub fn pool(&self) -> &RawVarSlotPool {
        &self.pool
    }

    /// The layout.
    pub fn layout(&self) -> &SegmentLayout {
        &self.layout
    }

    /// The size classes.
    pub fn size_classes(&self) -> &[SizeClass] {
        &self.layout.size_classes
    }

    /// The mapping.
    pub fn mapping(&self) -> &SegmentMapping {
        &self.mapping
    }

    /// Effective inline threshold.
    pub fn inline_threshold(&self) -> u32 {
        self.inline_threshold
    }

    /// Largest payload the segment accepts.
    pub fn max_payload_size(&self) -> u32 {
        self.max_payload_size
    }

    /// Largest payload that fits in a slot (slot size minus the 4-byte prefix).
    pub fn max_slot_payload(&self) -> u32 {
        self.max_slot_payload
    }

    /// The guest-to-host (`g2h = true`) or host-to-guest ring of `peer_id`.
    pub fn ring(&self, peer_id: u8, g2h: bool) -> Result<BipBufRaw, SessionError> {
        let idx = u32::from(peer_id)
            .checked_sub(1)
            .ok_or(SessionError::Internal("peer id 0 has no ring"))?;
        let off = if g2h {
            self.layout.g2h_offset(idx)
        } else {
            self.layout.h2g_offset(idx)
        }
        .ok_or(SessionError::Internal("peer id out of range"))?;
        let region = self.mapping.region();
        let (h, d) = ring_ptrs(&region, off, self.layout.bipbuf_capacity)?;
        // SAFETY: header and data lie inside the stable mapping (checked by
        // ring_ptrs), which outlives every link (links hold an Arc<SegmentShared>).
        // The capacity comes from the validated segment header, not from the ring's
        // own (peer-writable) header.
        Ok(unsafe { BipBufRaw::from_parts(h, d, self.layout.bipbuf_capacity)? })
    }

    /// If the host grew the segment, map the new size (guests call this on wake-up).
    pub fn refresh_size(&self) -> Result<(), SessionError> {
        let cur = self.header().current_size();
        if cur > self.mapping.len() as u64 {
            self.mapping.remap(cur)?;
        }
        Ok(())
    }

    /// Whether the segment file was truncated under this process (see `sigbus`).
    pub fn is_truncated(&self) -> bool {
        self.mapping.is_truncated()
    }
}

fn to_usize(v: u64) -> Result<usize, SessionError> {
    usize::try_from(v).map_err(|_| SessionError::Internal("offset exceeds usize"))
}

fn ring_ptrs(
    region: &crate::region::Region<'_>,
    off: u64,
    capacity: u32,
) -> Result<(*mut BipBufHeader, *mut u8), SessionError> {
    let off = to_usize(off)?;
    region.check(off, BIPBUF_HEADER_SIZE + capacity as usize)?;
    let h = region.typed_ptr::<BipBufHeader>(off)?;
    let d = region.ptr_at(off + BIPBUF_HEADER_SIZE, capacity as usize)?;
    Ok((h, d))
}
