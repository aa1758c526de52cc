//! Vectorizable f32 exponential, sigmoid and tanh for the engines' hot loops.
//!
//! libm's `expf` and `tanhf` are a call per value, which keeps loops over activations from
//! vectorizing; these are plain f32 arithmetic with no branches, so the compiler turns a loop of
//! them into SIMD code. Both engines' networks need one per unit per row.

/// e^x: x = n·ln2 + r with n = round(x·log2 e) and |r| ≤ ln2/2, r computed with ln2 split in two
/// parts (Cody–Waite) so it stays exact, e^r by its Taylor series to r⁶, times 2^n built from
/// exponent bits. Within a few f32 ulp of `expf`; inputs are clamped to ±87, where f32's range
/// ends.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to an integer
    const LN2_HI: f32 = 0.693_359_4; // few mantissa bits: n · LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 87.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // n sits in the low mantissa bits of `shifted` (whose own bits are ROUND's plus n), so 2^n
    // comes from integer arithmetic alone: `n as i32` would be a saturating conversion that
    // keeps the loop from vectorizing.
    let biased = shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

/// 1 / (1 + e^−x).
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// tanh x = 1 − 2 / (e^2x + 1). Absolute error within a few f32 ulp of 1 (the cancellation
/// near 0 costs relative, not absolute, precision, which is what a gate's value needs).
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    1.0 - 2.0 / (exp_f32(2.0 * x) + 1.0)
}

/// Runs `kernel` compiled for AVX2 + FMA when the CPU has them (8 f32 lanes instead of the
/// baseline target's 4): a kernel marked `#[inline(always)]` (the closure and what it calls) is
/// inlined into a function with those features enabled. Same bits either way, since Rust never
/// fuses a multiply and an add on its own.
#[inline(always)]
pub fn vectorized<R>(kernel: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        fn with_avx2<R>(kernel: impl FnOnce() -> R) -> R {
            kernel()
        }
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { with_avx2(kernel) };
    }
    kernel()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_as_precise_as_f32() {
        // Below about −80 results are subnormal (< 1e-35) and lose relative precision, which
        // is irrelevant next to the 1 of a sigmoid or the largest term of a softmax.
        for i in -8000..=8700 {
            let x = i as f32 * 0.01;
            let (fast, libm) = (exp_f32(x), x.exp());
            assert!((fast - libm).abs() <= 4.0 * f32::EPSILON * libm, "exp({x}): {fast} vs {libm}");
        }
        assert_eq!(sigmoid_f32(-200.0), 1.0 / (1.0 + exp_f32(87.0)));
        assert_eq!(sigmoid_f32(200.0), 1.0);
    }

    #[test]
    fn sigmoid_and_tanh_match_f64_to_a_few_ulp_of_one() {
        for i in -3000..=3000 {
            let x = i as f32 * 0.01;
            let (xs, s) = (f64::from(x), f64::from(sigmoid_f32(x)));
            let expected = 1.0 / (1.0 + (-xs).exp());
            assert!(
                (s - expected).abs() <= 4.0 * f64::from(f32::EPSILON) * expected,
                "sigmoid({x}): {s} vs {expected}"
            );
            let (t, expected) = (f64::from(tanh_f32(x)), xs.tanh());
            assert!((t - expected).abs() <= 4.0 * f64::from(f32::EPSILON), "tanh({x}): {t} vs {expected}");
        }
        assert_eq!((tanh_f32(100.0), tanh_f32(-100.0), tanh_f32(0.0)), (1.0, -1.0, 0.0));
    }
}
