//! A 64-bit mixing function, the same in both builds.

/// MurmurHash3's 64-bit finaliser: every input bit flips about half of
/// the output bits, so slices of the result serve as independent hashes.
/// Two multiplications and three shifts, no branch.
#[inline(always)]
pub const fn mix64(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xff51_afd7_ed55_8ccd);
    value ^= value >> 33;
    value = value.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    value ^ (value >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbouring_inputs_differ_in_about_half_the_bits() {
        let flipped: u32 = (0..1000u64)
            .map(|value| (mix64(value) ^ mix64(value + 1)).count_ones())
            .sum();
        let mean = f64::from(flipped) / 1000.0;
        assert!((28.0..36.0).contains(&mean), "{mean} bits flip on average");
    }
}
