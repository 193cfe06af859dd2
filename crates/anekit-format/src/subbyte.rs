//! Packing of sub-byte elements (1, 2, 3, 4 and 6 bits), shared by weight blobs and
//! `bytes` immediates.
//!
//! Element *i* occupies bits `[i·b, (i+1)·b)` of the byte stream counted from the least
//! significant bit of byte 0 upward (LSB-first), so a 3- or 6-bit element may straddle two
//! bytes. Signed int4 is stored as its two's-complement low four bits. Sources:
//! `SubByteTypes.cpp` (`PackSubByteVecForNonByteAligned`) in coremltools and
//! `coremltools/optimize/_utils.py` (`numpy.unpackbits(..., bitorder="little")`).

/// Number of bytes that `count` elements of `bits` bits occupy.
pub fn packed_len(count: usize, bits: u32) -> Option<usize> {
    count.checked_mul(bits as usize).map(|b| b.div_ceil(8))
}

/// Unused trailing bits after packing `count` elements of `bits` bits.
pub fn padding_bits(count: usize, bits: u32) -> u64 {
    let used = (count as u64).wrapping_mul(u64::from(bits)) % 8;
    if used == 0 { 0 } else { 8 - used }
}

/// Pack the low `bits` bits of each value LSB-first. Higher bits of the inputs are ignored.
pub fn pack(values: &[u8], bits: u32) -> Vec<u8> {
    assert!(
        (1..=8).contains(&bits),
        "sub-byte width must be 1..=8, got {bits}"
    );
    let mut out = vec![0u8; packed_len(values.len(), bits).unwrap_or(0)];
    let mask = if bits == 8 {
        0xff
    } else {
        (1u16 << bits) as u8 - 1
    };
    let mut bit = 0usize;
    for &v in values {
        let v = u16::from(v & mask) << (bit % 8);
        let byte = bit / 8;
        if let Some(b) = out.get_mut(byte) {
            *b |= v as u8;
        }
        if v > 0xff
            && let Some(b) = out.get_mut(byte + 1)
        {
            *b |= (v >> 8) as u8;
        }
        bit += bits as usize;
    }
    out
}

/// Unpack `count` elements of `bits` bits (zero-extended). Returns `None` when `data` is
/// shorter than `count` elements need.
pub fn unpack(data: &[u8], bits: u32, count: usize) -> Option<Vec<u8>> {
    if !(1..=8).contains(&bits) || data.len() < packed_len(count, bits)? {
        return None;
    }
    let mask = if bits == 8 {
        0xffu16
    } else {
        (1u16 << bits) - 1
    };
    let mut out = Vec::with_capacity(count);
    let mut bit = 0usize;
    for _ in 0..count {
        let byte = bit / 8;
        let lo = u16::from(*data.get(byte)?);
        let hi = u16::from(data.get(byte + 1).copied().unwrap_or(0));
        out.push((((hi << 8 | lo) >> (bit % 8)) & mask) as u8);
        bit += bits as usize;
    }
    Some(out)
}

/// Sign-extend a two's-complement value of `bits` bits stored in the low bits of `v`.
pub fn sign_extend(v: u8, bits: u32) -> i8 {
    let shift = 8 - bits;
    ((v << shift) as i8) >> shift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_bit_low_nibble_first() {
        // Element 0 is the low nibble of byte 0 (docs/references.md#sub-byte-packing).
        assert_eq!(pack(&[0x1, 0x2, 0x3], 4), vec![0x21, 0x03]);
        assert_eq!(unpack(&[0x21, 0x03], 4, 3).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn three_bit_straddles_bytes() {
        // 0b101, 0b011, 0b111: bits 0-2 = 101, 3-5 = 011, 6-8 = 111 (straddles into byte 1).
        let packed = pack(&[0b101, 0b011, 0b111], 3);
        assert_eq!(packed, vec![0b1101_1101, 0b0000_0001]);
        assert_eq!(unpack(&packed, 3, 3).unwrap(), vec![0b101, 0b011, 0b111]);
        assert_eq!(padding_bits(3, 3), 7);
    }

    #[test]
    fn round_trip_all_widths() {
        for bits in [1u32, 2, 3, 4, 6, 8] {
            let vals: Vec<u8> = (0..257u32).map(|i| (i * 37 % (1 << bits)) as u8).collect();
            let p = pack(&vals, bits);
            assert_eq!(p.len(), packed_len(vals.len(), bits).unwrap());
            assert_eq!(unpack(&p, bits, vals.len()).unwrap(), vals, "bits={bits}");
        }
        assert!(unpack(&[0], 4, 3).is_none());
    }

    #[test]
    fn int4_sign() {
        assert_eq!(sign_extend(0xf, 4), -1);
        assert_eq!(sign_extend(0x8, 4), -8);
        assert_eq!(sign_extend(0x7, 4), 7);
    }
}
