//! Packing of ℓ-bit values (1 ≤ ℓ ≤ 64) into bytes, little-endian bit order: the wire format of
//! ring elements.

/// Bytes needed for `n` values of `bits` bits.
pub fn packed_len(n: usize, bits: u32) -> usize {
    (n * bits as usize).div_ceil(8)
}

/// The mask of the low `bits` bits.
#[inline]
pub fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Pack the low `bits` bits of every value (higher bits are ignored).
pub fn pack(values: &[u64], bits: u32) -> Vec<u8> {
    assert!((1..=64).contains(&bits), "bit width must be 1..=64");
    if bits == 64 {
        return values.iter().flat_map(|v| v.to_le_bytes()).collect();
    }
    if bits == 8 {
        return values.iter().map(|&v| v as u8).collect();
    }
    let m = mask(bits);
    if 64 % bits == 0 {
        // Whole values per 64-bit word.
        let per = (64 / bits) as usize;
        let mut out = Vec::with_capacity(values.len().div_ceil(per) * 8);
        for chunk in values.chunks(per) {
            let mut w = 0u64;
            for (k, &v) in chunk.iter().enumerate() {
                w |= (v & m) << (k as u32 * bits);
            }
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(packed_len(values.len(), bits));
        return out;
    }
    let mut out = vec![0u8; packed_len(values.len(), bits) + 8];
    let mut acc: u128 = 0;
    let mut nacc: u32 = 0;
    let mut pos = 0;
    for &v in values {
        acc |= ((v & m) as u128) << nacc;
        nacc += bits;
        if nacc >= 64 {
            out[pos..pos + 8].copy_from_slice(&(acc as u64).to_le_bytes());
            pos += 8;
            acc >>= 64;
            nacc -= 64;
        }
    }
    out[pos..pos + 8].copy_from_slice(&(acc as u64).to_le_bytes());
    out.truncate(packed_len(values.len(), bits));
    out
}

/// Unpack `n` values of `bits` bits each from `bytes` (which must hold at least
/// `packed_len(n, bits)` bytes).
pub fn unpack(bytes: &[u8], n: usize, bits: u32) -> Vec<u64> {
    assert!((1..=64).contains(&bits), "bit width must be 1..=64");
    assert!(
        bytes.len() >= packed_len(n, bits),
        "not enough packed bytes"
    );
    if bits == 64 {
        return bytes
            .chunks_exact(8)
            .take(n)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
    }
    if bits == 8 {
        return bytes[..n].iter().map(|&b| b as u64).collect();
    }
    let m = mask(bits);
    let mut out = Vec::with_capacity(n);
    if 64 % bits == 0 {
        let per = (64 / bits) as usize;
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            let w = u64::from_le_bytes(w);
            let take = per.min(n - out.len());
            for k in 0..take {
                out.push((w >> (k as u32 * bits)) & m);
            }
            if out.len() == n {
                break;
            }
        }
        return out;
    }
    let mut acc: u128 = 0;
    let mut nacc: u32 = 0;
    let mut pos = 0;
    for _ in 0..n {
        if nacc < bits {
            let mut w = [0u8; 8];
            let take = (bytes.len() - pos).min(8);
            w[..take].copy_from_slice(&bytes[pos..pos + take]);
            pos += take;
            acc |= (u64::from_le_bytes(w) as u128) << nacc;
            nacc += 8 * take as u32;
        }
        out.push(acc as u64 & m);
        acc >>= bits;
        nacc -= bits;
    }
    out
}

/// Bytes that [`pack_widths`] produces for these widths.
pub fn packed_len_widths(widths: &[u32]) -> usize {
    let total: u64 = widths.iter().map(|&w| w as u64).sum();
    total.div_ceil(8) as usize
}

/// Pack `values[i]` in `widths[i]` bits (0..=64; higher bits ignored), little-endian bit order.
pub fn pack_widths(values: &[u64], widths: &[u32]) -> Vec<u8> {
    assert_eq!(values.len(), widths.len(), "length mismatch");
    let mut out = Vec::with_capacity(packed_len_widths(widths) + 8);
    let mut acc: u128 = 0;
    let mut nacc: u32 = 0;
    for (&v, &w) in values.iter().zip(widths) {
        let v = if w == 0 { 0 } else { v & mask(w) };
        acc |= (v as u128) << nacc;
        nacc += w;
        if nacc >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            nacc -= 64;
        }
    }
    out.extend_from_slice(&(acc as u64).to_le_bytes());
    out.truncate(packed_len_widths(widths));
    out
}

/// Inverse of [`pack_widths`]; `bytes` must hold at least `packed_len_widths(widths)` bytes.
pub fn unpack_widths(bytes: &[u8], widths: &[u32]) -> Vec<u64> {
    assert!(bytes.len() >= packed_len_widths(widths), "not enough bytes");
    let mut out = Vec::with_capacity(widths.len());
    let mut acc: u128 = 0;
    let mut nacc: u32 = 0;
    let mut pos = 0;
    for &w in widths {
        if nacc < w {
            let mut b = [0u8; 8];
            let take = (bytes.len() - pos).min(8);
            b[..take].copy_from_slice(&bytes[pos..pos + take]);
            pos += take;
            acc |= (u64::from_le_bytes(b) as u128) << nacc;
            nacc += 8 * take as u32;
        }
        out.push(if w == 0 { 0 } else { acc as u64 & mask(w) });
        acc >>= w;
        nacc -= w;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn roundtrip_all_widths() {
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(1);
        for bits in 1..=64u32 {
            for n in [0usize, 1, 2, 7, 8, 9, 63, 64, 65, 1000] {
                let v: Vec<u64> = (0..n).map(|_| rng.gen::<u64>() & mask(bits)).collect();
                let p = pack(&v, bits);
                assert_eq!(p.len(), packed_len(n, bits));
                assert_eq!(unpack(&p, n, bits), v, "bits {bits} n {n}");
            }
        }
    }
}
