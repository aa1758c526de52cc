//! The numeric kernels both engines' hot loops run on, in one place: vectorizable elementwise
//! functions ([`math`]: exponential, sigmoid, tanh, the log-loss's ln(1 + x), and the AVX2
//! dispatch), and one checked matrix product over `matrixmultiply` for f32 and f64 ([`gemm`]).
//! The spark engine's MLP and the tensor engine's fused operations are written over [`Float`],
//! so either arithmetic is one type parameter.

pub mod math;

pub use math::vectorized;

/// `matrixmultiply::sgemm` / `dgemm`: (m, k, n, α, a, a's row and column strides, b, its
/// strides, β, c, its strides).
pub type RawGemm<E> =
    unsafe fn(usize, usize, usize, E, *const E, isize, isize, *const E, isize, isize, E, *mut E, isize, isize);

/// The number types the kernels compute in: f32 (the vectorizable functions of [`math`]) and
/// f64 (MLlib's arithmetic).
pub trait Float:
    Copy
    + Default
    + PartialOrd
    + Send
    + Sync
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// The smallest positive normal value (a probability of 0 is clamped to it in a log-loss).
    const MIN_POSITIVE: Self;
    /// `matrixmultiply`'s GEMM for the type.
    const GEMM: RawGemm<Self>;
    /// From an f32 (an input feature).
    fn from_f32(v: f32) -> Self;
    /// From an f64 (an optimizer's parameter).
    fn from_f64(v: f64) -> Self;
    /// To f64 (for sums).
    fn to_f64(self) -> f64;
    /// 1 / (1 + e^−x), vectorizable.
    fn sigmoid(self) -> Self;
    /// tanh x.
    fn tanh(self) -> Self;
    /// e^x for x ≤ 0 (a softmax's terms after subtracting the row's largest), vectorizable.
    fn exp_nonpositive(self) -> Self;
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const MIN_POSITIVE: Self = f32::MIN_POSITIVE;
    const GEMM: RawGemm<Self> = matrixmultiply::sgemm;
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        math::sigmoid_f32(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        math::tanh_f32(self)
    }
    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        math::exp_f32(self)
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const MIN_POSITIVE: Self = f64::MIN_POSITIVE;
    const GEMM: RawGemm<Self> = matrixmultiply::dgemm;
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        math::sigmoid_f64(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        math::exp_neg_f64(self)
    }
}

/// The sigmoid of every value, in a loop compiled for AVX2 + FMA too ([`vectorized`]) and the
/// same bits either way.
pub fn sigmoid_in_place<E: Float>(v: &mut [E]) {
    vectorized(
        #[inline(always)]
        || v.iter_mut().for_each(|x| *x = x.sigmoid()),
    );
}

/// Checks that every element a `rows × cols` matrix read with `strides` can reach lies in a
/// buffer of `len`, which is what makes the raw-pointer GEMM call sound.
fn fits(len: usize, rows: usize, cols: usize, [rs, cs]: [usize; 2]) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// c = a·b for `a` (m × k) and `b` (k × n), each given with its (row, column) strides (a
/// row-major matrix read transposed has strides [1, its row length]), into row-major `c`
/// (m × n), overwritten.
///
/// # Panics
///
/// When a matrix does not fit its buffer: a caller's shape bug, never user input.
pub fn gemm<E: Float>(
    [m, k, n]: [usize; 3],
    (a, [rsa, csa]): (&[E], [usize; 2]),
    (b, [rsb, csb]): (&[E], [usize; 2]),
    c: &mut [E],
) {
    assert!(
        fits(a.len(), m, k, [rsa, csa]) && fits(b.len(), k, n, [rsb, csb]) && c.len() >= m * n,
        "gemm: a matrix does not fit its buffer"
    );
    let (a, b, c) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let [rsa, csa, rsb, csb] = [rsa, csa, rsb, csb].map(|v| v as isize);
    // SAFETY: the assert above keeps every index the product reads or writes in bounds.
    unsafe { E::GEMM(m, k, n, E::ONE, a, rsa, csa, b, rsb, csb, E::ZERO, c, n as isize, 1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both arithmetics against a plain triple loop, with transposed operands.
    #[test]
    fn gemm_matches_a_plain_product() {
        fn check<E: Float>() {
            let (m, k, n) = (3, 4, 5);
            let a: Vec<E> = (0..m * k).map(|i| E::from_f64(i as f64 * 0.5 - 2.0)).collect();
            // b stored n × k, read transposed as k × n.
            let b: Vec<E> = (0..k * n).map(|i| E::from_f64((i % 7) as f64 - 3.0)).collect();
            let mut c = vec![E::ZERO; m * n];
            gemm([m, k, n], (&a, [k, 1]), (&b, [1, k]), &mut c);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|p| a[i * k + p].to_f64() * b[j * k + p].to_f64()).sum();
                    assert_eq!(c[i * n + j].to_f64(), want, "({i}, {j})");
                }
            }
        }
        check::<f32>();
        check::<f64>();
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn a_wrong_shape_is_refused() {
        gemm([2, 2, 2], (&[1.0f32; 3], [2, 1]), (&[1.0f32; 4], [2, 1]), &mut [0.0f32; 4]);
    }

    #[test]
    fn vector_sigmoid_gives_the_scalar_bits() {
        // From the clamped ends through the middle, with a tail that fills no whole vector.
        let mut v: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.05).collect();
        let scalar: Vec<u32> = v.iter().map(|&x| math::sigmoid_f32(x).to_bits()).collect();
        sigmoid_in_place(&mut v);
        assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), scalar);
        assert!(v[0] > 0.0 && v[0] < 1e-37 && v[4000] == 1.0);
        let mut v: Vec<f64> = (0..4001).map(|i| (i as f64 - 2000.0) * 0.05).collect();
        let scalar: Vec<u64> = v.iter().map(|&x| math::sigmoid_f64(x).to_bits()).collect();
        sigmoid_in_place(&mut v);
        assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), scalar);
    }
}
