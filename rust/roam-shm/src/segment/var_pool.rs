//! The shared variable-size slot pool (VarSlotPool), roam v7 layout (notes §5).
//!
//! Layout at `var_pool_offset` (64-aligned): `num_classes` × 64-byte
//! [`SizeClassHeader`]s, then for each class its meta array (16 B × count, rounded up
//! to 64) followed by its data (slot_size × count, rounded up to 64).

/// Size of one size-class header in shared memory.
pub const SIZE_CLASS_HEADER_SIZE: u64 = 64;
/// Size of one slot's metadata entry in shared memory.
pub const VAR_SLOT_META_SIZE: u64 = 16;

/// A size class: `count` slots of `slot_size` bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct SizeClass {
    /// Bytes per slot (including the 4-byte length prefix used by slot-ref frames).
    pub slot_size: u32,
    /// Number of slots in the class.
    pub count: u32,
}

/// Round `x` up to a multiple of 64 (`None` on overflow).
#[inline]
pub const fn align64(x: u64) -> Option<u64> {
    match x.checked_add(63) {
        Some(v) => Some(v & !63),
        None => None,
    }
}

/// Offsets of one class's meta array and data, relative to the pool start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLayout {
    /// Offset of the class's `SizeClassHeader`.
    pub header_offset: u64,
    /// Offset of the class's meta array (16 B per slot).
    pub meta_offset: u64,
    /// Offset of the class's slot data (`slot_size` B per slot).
    pub data_offset: u64,
}

/// Compute every class's offsets and the pool's total size, or `None` when a size
/// overflows `u64`. This is the single place the pool layout formula lives.
pub fn pool_layout(classes: &[SizeClass]) -> Option<(Vec<ClassLayout>, u64)> {
    let n = classes.len() as u64;
    let mut off = n.checked_mul(SIZE_CLASS_HEADER_SIZE)?;
    let mut out = Vec::with_capacity(classes.len());
    for (i, c) in classes.iter().enumerate() {
        let meta_offset = off;
        let meta_len = align64(u64::from(c.count).checked_mul(VAR_SLOT_META_SIZE)?)?;
        let data_offset = meta_offset.checked_add(meta_len)?;
        let data_len = align64(u64::from(c.slot_size).checked_mul(u64::from(c.count))?)?;
        off = data_offset.checked_add(data_len)?;
        out.push(ClassLayout {
            header_offset: i as u64 * SIZE_CLASS_HEADER_SIZE,
            meta_offset,
            data_offset,
        });
    }
    Some((out, off))
}

/// Total size in bytes of a pool with these classes (roam's `calculate_size`);
/// `None` on overflow.
pub fn calculate_size(classes: &[SizeClass]) -> Option<u64> {
    pool_layout(classes).map(|(_, size)| size)
}

#[cfg(all(test, not(feature = "loom")))]
mod layout_tests {
    use super::*;

    #[test]
    fn layout_matches_roam_formula() {
        let classes = [
            SizeClass {
                slot_size: 1024,
                count: 3,
            },
            SizeClass {
                slot_size: 100,
                count: 5,
            },
        ];
        let (l, total) = pool_layout(&classes).unwrap();
        // 2 headers = 128; class0 meta 48 -> 64; data 3072; class1 meta 80 -> 128; data 500 -> 512
        assert_eq!(
            l[0],
            ClassLayout {
                header_offset: 0,
                meta_offset: 128,
                data_offset: 192
            }
        );
        assert_eq!(
            l[1],
            ClassLayout {
                header_offset: 64,
                meta_offset: 192 + 3072,
                data_offset: 192 + 3072 + 128
            }
        );
        assert_eq!(total, 192 + 3072 + 128 + 512);
        // Sizes whose total does not fit in u64 are reported, not wrapped.
        let huge = SizeClass {
            slot_size: u32::MAX,
            count: u32::MAX,
        };
        assert_eq!(calculate_size(&[huge; 2]), None);
    }
}
