//! Vectorizable f32 exponential, sigmoid and tanh, and f64 exponential, sigmoid and ln(1 + x),
//! for the engines' hot loops, and the AVX2 dispatch they run under.
//!
//! libm's `expf` and `tanhf` are a call per value, which keeps loops over activations from
//! vectorizing; these are plain arithmetic with no branches, so the compiler turns a loop of
//! them into SIMD code. Both engines' networks need one per unit per row; logistic regression
//! needs one e^−|m| and one ln(1 + e^−|m|) per row.

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

/// e^x for x ≤ 0, in f64: the same reduction as [`exp_f32`] (x = n·ln2 + r, |r| ≤ ln2/2, ln2
/// in two parts), e^r by its Taylor series to r¹³ (the first term left out is below 5·10⁻¹⁸).
/// Within a few ulp of libm's `exp`. Below −708 it returns 0: the exact value is under 10⁻³⁰⁷,
/// and 2^n would leave the normal range.
#[inline(always)]
pub fn exp_neg_f64(x: f64) -> f64 {
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52
    const LN2_HI: f64 = 6.931_471_803_691_238e-1; // fdlibm's split: n · LN2_HI is exact
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // NaN goes through (it is how a diverging fit is seen).
    debug_assert!(x <= 0.0 || x.is_nan(), "exp_neg_f64 takes x ≤ 0, not {x}");
    let underflow = x < -708.0;
    let x = x.clamp(-708.0, 0.0);
    let shifted = x * std::f64::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // 1/k! for k = 0..=13, Horner from the highest.
    const INV_FACTORIAL: [f64; 14] = {
        let mut c = [1.0; 14];
        let mut k = 1;
        while k < 14 {
            c[k] = c[k - 1] / k as f64;
            k += 1;
        }
        c
    };
    let mut p = INV_FACTORIAL[13];
    for &c in INV_FACTORIAL[..13].iter().rev() {
        p = p * r + c;
    }
    let biased = shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(1023);
    let value = p * f64::from_bits(biased << 52);
    if underflow { 0.0 } else { value }
}

/// 1 / (1 + e^−x) in f64, from one e^−|x| ([`exp_neg_f64`]) and a select, so a loop of it
/// vectorizes: the f64 MLP's hidden layers (MLlib's arithmetic) need one per unit per row.
#[inline(always)]
pub fn sigmoid_f64(x: f64) -> f64 {
    let e = exp_neg_f64(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 { r } else { e * r }
}

/// ln(1 + x) for 0 ≤ x ≤ 1, in f64 (a log-loss's softplus term, x = e^−|m|). u = 1 + x is
/// halved above √2, so ln u = k·ln2 + ln f with f within [1/√2, √2]; ln f = 2 atanh s with
/// s = (f − 1)/(f + 1), |s| ≤ 0.172, by its series to s²³. Then Kahan's correction
/// ln(1 + x) = ln u · x / (u − 1) recovers what rounding 1 + x lost, so tiny x stay exact.
/// Within a few ulp of libm's `ln_1p`.
#[inline(always)]
pub fn ln_1p_unit_f64(x: f64) -> f64 {
    debug_assert!((0.0..=1.0).contains(&x) || x.is_nan(), "ln_1p_unit_f64 takes 0 ≤ x ≤ 1, not {x}");
    let u = 1.0 + x;
    let halve = u > std::f64::consts::SQRT_2;
    let f = if halve { u * 0.5 } else { u };
    let s = (f - 1.0) / (f + 1.0);
    let z = s * s;
    // 1/(2k + 1) for k = 0..=11, Horner from the highest.
    const INV_ODD: [f64; 12] = {
        let mut c = [1.0; 12];
        let mut k = 0;
        while k < 12 {
            c[k] = 1.0 / (2 * k + 1) as f64;
            k += 1;
        }
        c
    };
    let mut series = INV_ODD[11];
    for &c in INV_ODD[..11].iter().rev() {
        series = series * z + c;
    }
    let ln_u = if halve { std::f64::consts::LN_2 } else { 0.0 } + 2.0 * s * series;
    if u == 1.0 { x } else { ln_u * (x / (u - 1.0)) }
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
    fn f64_sigmoid_is_within_a_few_ulp_of_libm() {
        for i in -80_000..=80_000 {
            let x = i as f64 * 0.01;
            let libm = if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) };
            let fast = sigmoid_f64(x);
            // Below −708 the exponential is 0 where libm is subnormal (under 1e-307).
            let close = (fast - libm).abs() <= 4.0 * f64::EPSILON * libm || (x < -708.0 && fast == 0.0);
            assert!(close, "sigmoid({x}): {fast} vs {libm}");
        }
        assert_eq!(sigmoid_f64(-1000.0), 0.0);
        assert_eq!(sigmoid_f64(1000.0), 1.0);
        assert!(sigmoid_f64(f64::NAN).is_nan());
    }

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
    fn f64_exp_and_ln_1p_are_within_a_few_ulp_of_libm() {
        let ulps = |a: f64, b: f64| (a - b).abs() / (f64::EPSILON * b.abs().max(f64::MIN_POSITIVE));
        let mut worst = (0.0f64, 0.0f64);
        for i in 0..=786_000 {
            let x = -(i as f64) * 0.000_9; // down to −707.4
            let e = exp_neg_f64(x);
            worst.0 = worst.0.max(ulps(e, x.exp()));
            worst.1 = worst.1.max(ulps(ln_1p_unit_f64(e), e.ln_1p()));
        }
        // Values of 1 + x that round, tiny and subnormal x, both ends.
        for x in [0.0, 1.0, 1e-300, 5e-324, 1e-17, 1.1e-16, 3e-16, 1e-9, 0.414_213_562_373_095, 0.414_213_562_373_096] {
            worst.1 = worst.1.max(ulps(ln_1p_unit_f64(x), x.ln_1p()).min(if x == 0.0 { 0.0 } else { f64::MAX }));
        }
        assert!(worst.0 <= 4.0 && worst.1 <= 4.0, "worst ulps: exp {}, ln_1p {}", worst.0, worst.1);
        assert_eq!(
            (exp_neg_f64(0.0), exp_neg_f64(-708.5), exp_neg_f64(-800.0), ln_1p_unit_f64(0.0)),
            (1.0, 0.0, 0.0, 0.0)
        );
        assert!((-708.5f64).exp() < 1e-307);
        assert!(exp_neg_f64(f64::NAN).is_nan() && ln_1p_unit_f64(f64::NAN).is_nan());
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
