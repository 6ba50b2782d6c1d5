//! Argmax and top-K sampling over the logits.

use super::{softmax_row, ExpTables, SemResult, SemanticsError};

/// Smallest index of the maximum (torch.argmax), computed by the protocol's pairwise tree:
/// each level pairs `(0,1), (2,3), …` (an odd last element passes up unchanged) and keeps the
/// left candidate unless the right one is strictly greater. Left subtrees hold smaller
/// indices, so ties resolve to the smallest index. Errors on an empty input.
pub fn argmax(z: &[i64]) -> SemResult<usize> {
    if z.is_empty() {
        return Err(SemanticsError::new("argmax", "empty input"));
    }
    let mut cur: Vec<usize> = (0..z.len()).collect();
    while cur.len() > 1 {
        cur = cur
            .chunks(2)
            .map(|c| match *c {
                [l, r] if z[r] > z[l] => r,
                [l, ..] => l,
                [] => unreachable!("chunks are never empty"),
            })
            .collect();
    }
    Ok(cur[0])
}

// ---------------------------------------------------------------------------------------------
// Top-K sampling
// ---------------------------------------------------------------------------------------------

/// The top `k` indices of `z`: larger value first, smaller index first among equal values (so
/// `top_k(z, 1) = [argmax(z)]`). The protocol returns this set, in an order of its own.
pub fn top_k(z: &[i64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..z.len()).collect();
    idx.sort_by(|&a, &b| z[b].cmp(&z[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// The temperature step: `⌊v·mul / 2^shift⌋` for the fixed-point reciprocal `mul` of T.
pub fn temperature(v: i64, mul: u64, shift: u32) -> i64 {
    ((v as i128 * mul as i128) >> shift.min(127)) as i64
}

/// Bits `w` of the uniform value of a draw for probabilities with `frac_out` fractional bits:
/// `w = 62 − frac_out`, so that `u·S_K` and `2^w·S_i` stay below 2^62.
pub fn sample_bits(frac_out: u32) -> u32 {
    62 - frac_out.min(60)
}

/// One draw from the K `values` (logits, in a given order): `y_i = temperature(v_i)`,
/// `p = softmax_row(y)`, prefix sums `S_i = p_1 + … + p_i`, and the first position i with
/// `u·S_K < 2^w·S_i` for the uniform `w`-bit `u` (`w` = [`sample_bits`]). Over a uniform u,
/// position i comes out with probability `p_i / S_K` up to 2^−w.
pub fn sample_top_k(
    values: &[i64],
    mul: u64,
    shift: u32,
    tables: &ExpTables,
    u: u64,
) -> SemResult<usize> {
    let y: Vec<i64> = values.iter().map(|&v| temperature(v, mul, shift)).collect();
    let p = softmax_row(&y, tables)?;
    let w = sample_bits(tables.frac_out);
    let total: i128 = p.iter().map(|&x| x as i128).sum();
    let target = u as i128 * total;
    let mut s = 0i128;
    for (i, &x) in p.iter().enumerate() {
        s += x as i128;
        if target < s << w {
            return Ok(i);
        }
    }
    Ok(p.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::semantics::fit_exp_tables;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn argmax_ties_and_tree() {
        assert_eq!(argmax(&[3]), Ok(0));
        assert_eq!(argmax(&[1, 5, 5, 2]), Ok(1));
        assert_eq!(argmax(&[5, 5, 5]), Ok(0));
        assert_eq!(argmax(&[0, 1, 2, 7, 7]), Ok(3));
        assert_eq!(argmax(&[i64::MIN, i64::MAX, i64::MAX]), Ok(1));
        assert!(argmax(&[]).is_err());
        // against the linear scan on random data with many ties
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for len in 1..200 {
            let z: Vec<i64> = (0..len).map(|_| rng.gen_range(-3..3)).collect();
            let m = *z.iter().max().unwrap();
            let first = z.iter().position(|&v| v == m).unwrap();
            assert_eq!(argmax(&z), Ok(first), "{z:?}");
        }
    }

    #[test]
    fn top_k_order_and_ties() {
        assert_eq!(top_k(&[1, 5, 5, 2], 3), vec![1, 2, 3]);
        assert_eq!(top_k(&[4, 4, 4, 4], 2), vec![0, 1]);
        assert_eq!(top_k(&[1, 2], 5), vec![1, 0]);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        for len in 1..100 {
            let z: Vec<i64> = (0..len).map(|_| rng.gen_range(-4..4)).collect();
            assert_eq!(top_k(&z, 1), vec![argmax(&z).unwrap()]);
            let t = top_k(&z, len);
            // Every kept value is at least every dropped one, for each K.
            for k in 1..len {
                let least_kept = t[..k].iter().map(|&i| z[i]).min().unwrap();
                assert!(t[k..].iter().all(|&i| z[i] <= least_kept));
            }
        }
    }

    #[test]
    fn sample_top_k_follows_the_prefix_sums() {
        let t = fit_exp_tables(12, 14, 12).unwrap();
        // T = 1 at the tables' scale: mul 2^16, shift 16.
        let (mul, shift) = (1u64 << 16, 16);
        let values = [3 << 12, 1 << 12, 0, 3 << 12];
        let p = softmax_row(&values, &t).unwrap();
        let w = sample_bits(12);
        let total: i128 = p.iter().map(|&x| x as i128).sum();
        // u at each prefix boundary picks the next position; u = 0 the first, the top the last.
        assert_eq!(sample_top_k(&values, mul, shift, &t, 0), Ok(0));
        assert_eq!(
            sample_top_k(&values, mul, shift, &t, (1u64 << w) - 1),
            Ok(3)
        );
        let mut s = 0i128;
        for (i, &x) in p.iter().enumerate().take(3) {
            s += x as i128;
            // The smallest u with u·S_K ≥ 2^w·S_i is the first that picks i + 1.
            let u = ((s << w) + total - 1) / total;
            assert_eq!(sample_top_k(&values, mul, shift, &t, u as u64), Ok(i + 1));
            assert_eq!(sample_top_k(&values, mul, shift, &t, u as u64 - 1), Ok(i));
        }
        // A low temperature (T = 1/16) makes the largest values take all the mass.
        let cold = (16u64 << 16, 16);
        for u in [0u64, 1 << (w - 1), (1 << w) - 1] {
            let i = sample_top_k(&values, cold.0, cold.1, &t, u).unwrap();
            assert!(i == 0 || i == 3, "u {u}: {i}");
        }
        assert_eq!(temperature(-5, 1 << 15, 16), -3);
    }
}
