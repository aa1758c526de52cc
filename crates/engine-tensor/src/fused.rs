//! Fused operations for the flex CPU backend: recurrent cells, 1-D convolution and pooling.
//!
//! An LSTM or GRU step written with tensor operations is a dozen elementwise operations forward
//! and more backward, each a pass over the batch with a libm call per value for the sigmoids and
//! tanhs; on CPU at Keras's sizes that costs several times the step's matrix products. Here the
//! elementwise part of a step is one operation with a hand-written backward (Burn's backend
//! extension mechanism), computed in one pass with the shared kernels' vectorizable arithmetic
//! ([`trainbench_engine::kernels`], f32 or f64).
//!
//! Flex runs a 1-D convolution as a general 3-D one and a max-pool through a 3-D pool with an
//! index tensor; at the 1-D CNN's sizes (sequences of 28, 32–64 channels) their per-plane
//! bookkeeping costs more than the arithmetic. Here a convolution is one matrix product over
//! the unfolded input (im2col) and the pool one pass.
//!
//! The composed versions in `model.rs` stay for other backends, bf16 / f16 and CNN activations
//! other than ReLU and linear; the tests check that both give the same values and gradients.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::tensor::{DType, Element, Tensor, TensorData};
use trainbench_engine::kernels::{Float, gemm, vectorized};

/// Whether the fused operations can run on tensors of this device and dtype.
pub fn supported<const D: usize>(x: &Tensor<D>) -> bool {
    matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_)) && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// The LSTM's new cell state c' = σ(z_f)·c + σ(z_i)·tanh(z_g) from the step's gate
/// pre-activations `z` (`rows × 4u`, gates in the order i, f, o, g) and the cell state `c`.
pub fn lstm_cell(z: Tensor<2>, c: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::lstm_cell(z.into_dispatch(), c.into_dispatch()))
}

/// The LSTM's hidden state h = σ(z_o)·tanh(c') from the gate pre-activations and the new cell
/// state.
pub fn lstm_hidden(z: Tensor<2>, c: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::lstm_hidden(z.into_dispatch(), c.into_dispatch()))
}

/// The GRU's new hidden state (Keras's reset_after=True) from the input part `xw` = x·W + b and
/// the hidden part `hu` = h·U + b' of the pre-activations (both `rows × 3u`, gates z, r, n):
/// z, r = σ(xw + hu), n = tanh(xw_n + r·hu_n), h' = z·h + (1 − z)·n.
pub fn gru_cell(xw: Tensor<2>, hu: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::gru_cell(xw.into_dispatch(), hu.into_dispatch(), h.into_dispatch()))
}

/// Keras's Conv1D ('valid' padding, stride 1: Burn's Conv1d defaults) with a ReLU or no
/// activation, then MaxPooling1D (stride = pool size, 'valid'; a pool of 1 is none), as one
/// operation. `x` is `rows × channels × length`, `weight` `filters × channels × kernel`, `bias`
/// `filters`; the result is `rows × filters × ⌊(length − kernel + 1) / pool⌋`. The gradient of a
/// window goes to its first largest value.
pub fn conv1d_pool(x: Tensor<3>, weight: Tensor<3>, bias: Tensor<1>, relu: bool, pool: usize) -> Tensor<3> {
    let out = <Dispatch as FusedOps>::conv1d_pool(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        relu,
        pool,
    );
    Tensor::from_dispatch(out)
}

/// The fused operations, implemented for flex and for autodiff over flex.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// See [`conv1d_pool`].
    fn conv1d_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
        pool: usize,
    ) -> FloatTensor<Self>;
    /// See [`lstm_cell`].
    fn lstm_cell(z: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self>;
    /// See [`lstm_hidden`].
    fn lstm_hidden(z: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self>;
    /// See [`gru_cell`].
    fn gru_cell(xw: FloatTensor<Self>, hu: FloatTensor<Self>, h: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The float types the fused operations run in: the shared kernels' [`Float`] (f32 with the
/// vectorizable functions, f64), as flex stores it.
trait KernelFloat: Float + Element + bytemuck::Pod {}

impl KernelFloat for f32 {}
impl KernelFloat for f64 {}

/// A tensor's values, contiguous, and its `[rows, cols]`.
fn values<E: KernelFloat>(t: &FlexTensor) -> (FlexTensor, usize, usize) {
    let t = t.to_contiguous();
    let dims = t.layout().shape().dims::<2>();
    (t, dims[0], dims[1])
}

fn slice<E: KernelFloat>(t: &FlexTensor) -> &[E] {
    t.as_slice::<E>().expect("contiguous after to_contiguous")
}

fn tensor<E: KernelFloat>(v: Vec<E>, rows: usize, cols: usize) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, [rows, cols]))
}

/// Runs `$body` with `$E` bound to the tensor's float type (f32 or f64; [`supported`] keeps the
/// others away).
macro_rules! by_dtype {
    ($t:expr, $E:ident => $body:expr) => {
        match $t.dtype() {
            DType::F32 => {
                type $E = f32;
                $body
            }
            DType::F64 => {
                type $E = f64;
                $body
            }
            other => panic!("fused operations run in f32 or f64, not {other:?}"),
        }
    };
}

#[inline(always)]
fn lstm_cell_forward<E: KernelFloat>(z: &FlexTensor, c: &FlexTensor) -> FlexTensor {
    let ((z, rows, _), (c, _, u)) = (values::<E>(z), values::<E>(c));
    let (z, c) = (slice::<E>(&z), slice::<E>(&c));
    let mut out = vec![E::ZERO; rows * u];
    for ((zr, cr), or) in z.chunks_exact(4 * u).zip(c.chunks_exact(u)).zip(out.chunks_exact_mut(u)) {
        let (zi, zf, zg) = (&zr[..u], &zr[u..2 * u], &zr[3 * u..]);
        for k in 0..u {
            or[k] = zf[k].sigmoid() * cr[k] + zi[k].sigmoid() * zg[k].tanh();
        }
    }
    tensor(out, rows, u)
}

/// Gradients of [`lstm_cell`] for `dc_new`: [dz, dc], dz's o block zero.
#[inline(always)]
fn lstm_cell_backward<E: KernelFloat>(z: &FlexTensor, c: &FlexTensor, grad: &FlexTensor) -> [FlexTensor; 2] {
    let ((z, rows, _), (c, _, u), (g, _, _)) = (values::<E>(z), values::<E>(c), values::<E>(grad));
    let (z, c, g) = (slice::<E>(&z), slice::<E>(&c), slice::<E>(&g));
    let (mut dz, mut dc) = (vec![E::ZERO; rows * 4 * u], vec![E::ZERO; rows * u]);
    let rows_in = z.chunks_exact(4 * u).zip(c.chunks_exact(u)).zip(g.chunks_exact(u));
    for (((zr, cr), gr), (dzr, dcr)) in rows_in.zip(dz.chunks_exact_mut(4 * u).zip(dc.chunks_exact_mut(u))) {
        let (dzi, rest) = dzr.split_at_mut(u);
        let (dzf, rest) = rest.split_at_mut(u);
        lstm_cell_backward_row([&zr[..u], &zr[u..2 * u], &zr[3 * u..], cr, gr], dzi, dzf, &mut rest[u..], dcr);
    }
    [tensor(dz, rows, 4 * u), tensor(dc, rows, u)]
}

/// One row of [`lstm_cell_backward`]. The outputs are separate arguments so that the compiler
/// knows they do not overlap, which it needs to vectorize the loop.
#[inline(always)]
fn lstm_cell_backward_row<E: KernelFloat>(
    inputs: [&[E]; 5],
    dzi: &mut [E],
    dzf: &mut [E],
    dzg: &mut [E],
    dc: &mut [E],
) {
    let n = dc.len();
    let [zi, zf, zg, c, g] = inputs.map(|v| &v[..n]);
    let (dzi, dzf, dzg) = (&mut dzi[..n], &mut dzf[..n], &mut dzg[..n]);
    for k in 0..n {
        let (i, f, gg) = (zi[k].sigmoid(), zf[k].sigmoid(), zg[k].tanh());
        dzi[k] = g[k] * gg * i * (E::ONE - i);
        dzf[k] = g[k] * c[k] * f * (E::ONE - f);
        dzg[k] = g[k] * i * (E::ONE - gg * gg);
        dc[k] = g[k] * f;
    }
}

#[inline(always)]
fn lstm_hidden_forward<E: KernelFloat>(z: &FlexTensor, c: &FlexTensor) -> FlexTensor {
    let ((z, rows, _), (c, _, u)) = (values::<E>(z), values::<E>(c));
    let (z, c) = (slice::<E>(&z), slice::<E>(&c));
    let mut out = vec![E::ZERO; rows * u];
    for ((zr, cr), or) in z.chunks_exact(4 * u).zip(c.chunks_exact(u)).zip(out.chunks_exact_mut(u)) {
        let zo = &zr[2 * u..3 * u];
        for k in 0..u {
            or[k] = zo[k].sigmoid() * cr[k].tanh();
        }
    }
    tensor(out, rows, u)
}

/// Gradients of [`lstm_hidden`] for `dh`: [dz, dc], dz zero but for the o block.
#[inline(always)]
fn lstm_hidden_backward<E: KernelFloat>(z: &FlexTensor, c: &FlexTensor, grad: &FlexTensor) -> [FlexTensor; 2] {
    let ((z, rows, _), (c, _, u), (g, _, _)) = (values::<E>(z), values::<E>(c), values::<E>(grad));
    let (z, c, g) = (slice::<E>(&z), slice::<E>(&c), slice::<E>(&g));
    let (mut dz, mut dc) = (vec![E::ZERO; rows * 4 * u], vec![E::ZERO; rows * u]);
    let rows_in = z.chunks_exact(4 * u).zip(c.chunks_exact(u)).zip(g.chunks_exact(u));
    for (((zr, cr), gr), (dzr, dcr)) in rows_in.zip(dz.chunks_exact_mut(4 * u).zip(dc.chunks_exact_mut(u))) {
        lstm_hidden_backward_row([&zr[2 * u..3 * u], cr, gr], &mut dzr[2 * u..3 * u], dcr);
    }
    [tensor(dz, rows, 4 * u), tensor(dc, rows, u)]
}

/// One row of [`lstm_hidden_backward`] (separate outputs, as in [`lstm_cell_backward_row`]).
#[inline(always)]
fn lstm_hidden_backward_row<E: KernelFloat>(inputs: [&[E]; 3], dzo: &mut [E], dc: &mut [E]) {
    let n = dc.len();
    let [zo, c, g] = inputs.map(|v| &v[..n]);
    let dzo = &mut dzo[..n];
    for k in 0..n {
        let (o, t) = (zo[k].sigmoid(), c[k].tanh());
        dzo[k] = g[k] * t * o * (E::ONE - o);
        dc[k] = g[k] * o * (E::ONE - t * t);
    }
}

#[inline(always)]
fn gru_cell_forward<E: KernelFloat>(xw: &FlexTensor, hu: &FlexTensor, h: &FlexTensor) -> FlexTensor {
    let ((xw, rows, _), (hu, _, _), (h, _, u)) = (values::<E>(xw), values::<E>(hu), values::<E>(h));
    let (xw, hu, h) = (slice::<E>(&xw), slice::<E>(&hu), slice::<E>(&h));
    let mut out = vec![E::ZERO; rows * u];
    let rows_in = xw.chunks_exact(3 * u).zip(hu.chunks_exact(3 * u)).zip(h.chunks_exact(u));
    for (((x, p), hr), or) in rows_in.zip(out.chunks_exact_mut(u)) {
        let (xz, xr, xn) = (&x[..u], &x[u..2 * u], &x[2 * u..]);
        let (pz, pr, pn) = (&p[..u], &p[u..2 * u], &p[2 * u..]);
        for k in 0..u {
            let z = (xz[k] + pz[k]).sigmoid();
            let r = (xr[k] + pr[k]).sigmoid();
            let n = (xn[k] + r * pn[k]).tanh();
            or[k] = z * hr[k] + (E::ONE - z) * n;
        }
    }
    tensor(out, rows, u)
}

/// Gradients of [`gru_cell`] for `dh_new`: (dxw, dhu, dh).
#[inline(always)]
fn gru_cell_backward<E: KernelFloat>(
    xw: &FlexTensor,
    hu: &FlexTensor,
    h: &FlexTensor,
    grad: &FlexTensor,
) -> [FlexTensor; 3] {
    let ((xw, rows, _), (hu, _, _), (h, _, u)) = (values::<E>(xw), values::<E>(hu), values::<E>(h));
    let (g, _, _) = values::<E>(grad);
    let (xw, hu, h, g) = (slice::<E>(&xw), slice::<E>(&hu), slice::<E>(&h), slice::<E>(&g));
    let (mut dxw, mut dhu, mut dh) =
        (vec![E::ZERO; rows * 3 * u], vec![E::ZERO; rows * 3 * u], vec![E::ZERO; rows * u]);
    let rows_in = xw.chunks_exact(3 * u).zip(hu.chunks_exact(3 * u)).zip(h.chunks_exact(u)).zip(g.chunks_exact(u));
    let rows_out = dxw.chunks_exact_mut(3 * u).zip(dhu.chunks_exact_mut(3 * u)).zip(dh.chunks_exact_mut(u));
    for ((((x, p), hr), gr), ((dx, dp), dhr)) in rows_in.zip(rows_out) {
        let (dxz, rest) = dx.split_at_mut(u);
        let (dxr, dxn) = rest.split_at_mut(u);
        let (dpz, rest) = dp.split_at_mut(u);
        let (dpr, dpn) = rest.split_at_mut(u);
        let inputs = [&x[..u], &x[u..2 * u], &x[2 * u..], &p[..u], &p[u..2 * u], &p[2 * u..], hr, gr];
        gru_cell_backward_row(inputs, [dxz, dxr, dxn, dpz, dpr, dpn], dhr);
    }
    [tensor(dxw, rows, 3 * u), tensor(dhu, rows, 3 * u), tensor(dh, rows, u)]
}

/// One row of [`gru_cell_backward`] (separate outputs, as in [`lstm_cell_backward_row`]).
#[inline(always)]
fn gru_cell_backward_row<E: KernelFloat>(inputs: [&[E]; 8], outputs: [&mut [E]; 6], dh: &mut [E]) {
    let n = dh.len();
    let [xz, xr, xn, pz, pr, pn, h, g] = inputs.map(|v| &v[..n]);
    let [dxz, dxr, dxn, dpz, dpr, dpn] = outputs.map(|v| &mut v[..n]);
    for k in 0..n {
        let z = (xz[k] + pz[k]).sigmoid();
        let r = (xr[k] + pr[k]).sigmoid();
        let nn = (xn[k] + r * pn[k]).tanh();
        let dz = g[k] * (h[k] - nn) * z * (E::ONE - z);
        let dn = g[k] * (E::ONE - z) * (E::ONE - nn * nn);
        let dr = dn * pn[k] * r * (E::ONE - r);
        (dxz[k], dxr[k], dxn[k]) = (dz, dr, dn);
        (dpz[k], dpr[k], dpn[k]) = (dz, dr, dn * r);
        dh[k] = g[k] * z;
    }
}

/// A contiguous 3-D tensor and its dimensions.
fn values3(t: &FlexTensor) -> (FlexTensor, [usize; 3]) {
    let t = t.to_contiguous();
    let dims = t.layout().shape().dims::<3>();
    (t, dims)
}

/// The input unfolded for a convolution (im2col): row (b, t) holds, channel after channel, the
/// `kernel` values from position t of row b, so that the convolution is this matrix times the
/// weights (`filters × channels·kernel`) transposed.
#[inline(always)]
fn im2col<E: KernelFloat>(x: &[E], [rows, channels, length]: [usize; 3], kernel: usize) -> Vec<E> {
    let (out_len, ck) = (length + 1 - kernel, channels * kernel);
    let mut cols = vec![E::ZERO; rows * out_len * ck];
    // Column by column: each is a contiguous run of the input. Copying `kernel` values per row
    // instead compiles to a `memcpy` call per 3 values, which cost more than the product.
    for (xr, cr) in x.chunks_exact(channels * length).zip(cols.chunks_exact_mut(out_len * ck)) {
        for (ch, xc) in xr.chunks_exact(length).enumerate() {
            for j in 0..kernel {
                for (t, &v) in xc[j..j + out_len].iter().enumerate() {
                    cr[t * ck + ch * kernel + j] = v;
                }
            }
        }
    }
    cols
}

/// The convolution block's forward pass: the output (`rows × filters × pooled length`) and the
/// activations before pooling, kept for the backward pass, as `(rows·out_len) × filters`.
#[inline(always)]
fn conv1d_pool_forward<E: KernelFloat>(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    relu: bool,
    pool: usize,
) -> (FlexTensor, FlexTensor) {
    let ((x, dims @ [rows, channels, length]), (w, [filters, _, kernel])) = (values3(x), values3(weight));
    let bias = bias.to_contiguous();
    let (x, w, bias) = (slice::<E>(&x), slice::<E>(&w), slice::<E>(&bias));
    let (out_len, ck) = (length + 1 - kernel, channels * kernel);
    // act = cols · weightsᵀ + bias, then the ReLU: one row per (row, position).
    let mut act = vec![E::ZERO; rows * out_len * filters];
    gemm([rows * out_len, ck, filters], (&im2col(x, dims, kernel), [ck, 1]), (w, [1, ck]), &mut act);
    for row in act.chunks_exact_mut(filters) {
        if relu {
            // Written as selects, which vectorize; NaN stays NaN and is caught by the loss check.
            for (a, &b) in row.iter_mut().zip(bias) {
                let v = *a + b;
                *a = if v < E::ZERO { E::ZERO } else { v };
            }
        } else {
            for (a, &b) in row.iter_mut().zip(bias) {
                *a += b;
            }
        }
    }
    // Pooled and laid out filter-major, as Burn's (and Keras's channels-first) convolutions are.
    let pooled = out_len / pool;
    let mut out = vec![E::ZERO; rows * filters * pooled];
    let mut max = vec![E::ZERO; filters];
    for (act_r, out_row) in act.chunks_exact(out_len * filters).zip(out.chunks_exact_mut(filters * pooled)) {
        // `chunks_exact` leaves out a last partial window, as 'valid' pooling does.
        for (j, window) in act_r.chunks_exact(pool * filters).enumerate() {
            window_max(window, &mut max);
            for (f, &v) in max.iter().enumerate() {
                out_row[f * pooled + j] = v;
            }
        }
    }
    let act = FlexTensor::from_data(TensorData::new(act, [rows * out_len, filters]));
    (FlexTensor::from_data(TensorData::new(out, [rows, filters, pooled])), act)
}

/// As [`window_max`], with the window row of each largest value (the first, on ties).
#[inline(always)]
fn window_argmax<E: KernelFloat>(window: &[E], max: &mut [E], best: &mut [u32]) {
    let (first, rest) = window.split_at(max.len());
    max.copy_from_slice(first);
    best.fill(0);
    for (i, row) in (1..).zip(rest.chunks_exact(max.len())) {
        // Selects rather than branches, so the loop vectorizes.
        for ((m, b), &v) in max.iter_mut().zip(best.iter_mut()).zip(row) {
            let larger = v > *m;
            *m = if larger { v } else { *m };
            *b = if larger { i } else { *b };
        }
    }
}

/// The largest value per filter of a pooling window (`pool` rows of `max.len()` activations);
/// a loop over filters, so it vectorizes.
#[inline(always)]
fn window_max<E: KernelFloat>(window: &[E], max: &mut [E]) {
    let (first, rest) = window.split_at(max.len());
    max.copy_from_slice(first);
    for row in rest.chunks_exact(max.len()) {
        for (m, &v) in max.iter_mut().zip(row) {
            *m = if v > *m { v } else { *m };
        }
    }
}

/// Gradients of [`conv1d_pool`] for `grad`: [dx, dweight, dbias].
#[inline(always)]
fn conv1d_pool_backward<E: KernelFloat>(
    x: &FlexTensor,
    weight: &FlexTensor,
    act: &FlexTensor,
    relu: bool,
    pool: usize,
    grad: &FlexTensor,
) -> [FlexTensor; 3] {
    let ((x, dims @ [rows, channels, length]), (w, [filters, _, kernel])) = (values3(x), values3(weight));
    let (g, [_, _, pooled]) = values3(grad);
    let (x, w, g, act) = (slice::<E>(&x), slice::<E>(&w), slice::<E>(&g), slice::<E>(act));
    let (out_len, ck) = (length + 1 - kernel, channels * kernel);
    let m = rows * out_len;
    // d(activation before the ReLU), as (rows·out_len) × filters: each window's gradient goes
    // to its largest value, unless the ReLU cut that value to zero.
    let mut dact = vec![E::ZERO; m * filters];
    let (mut max, mut best, mut g_window) = (vec![E::ZERO; filters], vec![0u32; filters], vec![E::ZERO; filters]);
    let per_row = act.chunks_exact(out_len * filters).zip(dact.chunks_exact_mut(out_len * filters));
    for ((act_r, dact_r), g_row) in per_row.zip(g.chunks_exact(filters * pooled)) {
        let windows = act_r.chunks_exact(pool * filters).zip(dact_r.chunks_exact_mut(pool * filters));
        for (j, (window, d_window)) in windows.enumerate() {
            window_argmax(window, &mut max, &mut best);
            for (f, (gw, &m)) in g_window.iter_mut().zip(&max).enumerate() {
                *gw = if !relu || m > E::ZERO { g_row[f * pooled + j] } else { E::ZERO };
            }
            // Every row of the window written whole (the gradient or zero), which vectorizes
            // where a scatter to the largest values does not.
            for (i, d_row) in (0..).zip(d_window.chunks_exact_mut(filters)) {
                for ((d, &b), &gw) in d_row.iter_mut().zip(&best).zip(&g_window) {
                    *d = if b == i { gw } else { E::ZERO };
                }
            }
        }
    }
    // The bias gradient sums dact's rows: a vector add per row, independent across filters.
    let mut dbias = vec![E::ZERO; filters];
    for row in dact.chunks_exact(filters) {
        for (d, &v) in dbias.iter_mut().zip(row) {
            *d += v;
        }
    }
    // dweight (filters × ck) = dactᵀ · cols; dcols (m × ck) = dact · weights.
    let mut dweight = vec![E::ZERO; filters * ck];
    gemm([filters, m, ck], (&dact, [1, filters]), (&im2col(x, dims, kernel), [ck, 1]), &mut dweight);
    let mut dcols = vec![E::ZERO; m * ck];
    gemm([m, filters, ck], (&dact, [filters, 1]), (w, [ck, 1]), &mut dcols);
    // Folded back (col2im): every patch value adds to the input position it came from.
    let mut dx = vec![E::ZERO; rows * channels * length];
    for (dxr, dcr) in dx.chunks_exact_mut(channels * length).zip(dcols.chunks_exact(out_len * ck)) {
        for (t, patch) in dcr.chunks_exact(ck).enumerate() {
            for (ch, part) in patch.chunks_exact(kernel).enumerate() {
                for (d, &v) in dxr[ch * length + t..ch * length + t + kernel].iter_mut().zip(part) {
                    *d += v;
                }
            }
        }
    }
    [
        FlexTensor::from_data(TensorData::new(dx, dims)),
        FlexTensor::from_data(TensorData::new(dweight, [filters, channels, kernel])),
        FlexTensor::from_data(TensorData::new(dbias, [filters])),
    ]
}

impl FusedOps for Flex {
    fn conv1d_pool(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, relu: bool, pool: usize) -> FlexTensor {
        vectorized(
            #[inline(always)]
            || by_dtype!(x, E => conv1d_pool_forward::<E>(&x, &weight, &bias, relu, pool).0),
        )
    }

    fn lstm_cell(z: FlexTensor, c: FlexTensor) -> FlexTensor {
        vectorized(
            #[inline(always)]
            || by_dtype!(z, E => lstm_cell_forward::<E>(&z, &c)),
        )
    }

    fn lstm_hidden(z: FlexTensor, c: FlexTensor) -> FlexTensor {
        vectorized(
            #[inline(always)]
            || by_dtype!(z, E => lstm_hidden_forward::<E>(&z, &c)),
        )
    }

    fn gru_cell(xw: FlexTensor, hu: FlexTensor, h: FlexTensor) -> FlexTensor {
        vectorized(
            #[inline(always)]
            || by_dtype!(xw, E => gru_cell_forward::<E>(&xw, &hu, &h)),
        )
    }
}

/// Backward steps: each keeps its inputs (flex tensors share their buffers, so that is a
/// reference, not a copy) and recomputes the gates from them, which is cheaper than storing them.
#[derive(Debug)]
struct Conv1dPoolBackward;
#[derive(Debug)]
struct LstmCellBackward;
#[derive(Debug)]
struct LstmHiddenBackward;
#[derive(Debug)]
struct GruCellBackward;

/// What every backward step here does: computes the inputs' gradients from the saved state and
/// the output's gradient, and hands each input that wants one its part.
fn hand_out<S, const N: usize>(
    ops: Ops<S, N>,
    grads: &mut Gradients,
    parts: impl FnOnce(S, FlexTensor) -> [FlexTensor; N],
) {
    let grad = grads.consume::<Flex>(&ops.node);
    for (parent, part) in ops.parents.into_iter().zip(parts(ops.state, grad)) {
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, part);
        }
    }
}

/// Keeps the input, the weights and the activations before pooling (whose recomputation would
/// cost a matrix product), with the block's settings.
impl Backward<Flex, 3> for Conv1dPoolBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor, bool, usize);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        hand_out(ops, grads, |(x, weight, act, relu, pool), grad| {
            vectorized(
                #[inline(always)]
                || by_dtype!(x, E => conv1d_pool_backward::<E>(&x, &weight, &act, relu, pool, &grad)),
            )
        });
    }
}

impl Backward<Flex, 2> for LstmCellBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        hand_out(ops, grads, |(z, c), grad| {
            vectorized(
                #[inline(always)]
                || by_dtype!(z, E => lstm_cell_backward::<E>(&z, &c, &grad)),
            )
        });
    }
}

impl Backward<Flex, 2> for LstmHiddenBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        hand_out(ops, grads, |(z, c), grad| {
            vectorized(
                #[inline(always)]
                || by_dtype!(z, E => lstm_hidden_backward::<E>(&z, &c, &grad)),
            )
        });
    }
}

impl Backward<Flex, 3> for GruCellBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        hand_out(ops, grads, |(xw, hu, h), grad| {
            vectorized(
                #[inline(always)]
                || by_dtype!(xw, E => gru_cell_backward::<E>(&xw, &hu, &h, &grad)),
            )
        });
    }
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn conv1d_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
        pool: usize,
    ) -> FloatTensor<Self> {
        match Conv1dPoolBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, weight, bias) = (x.primitive().clone(), weight.primitive().clone(), bias.into_primitive());
                let (out, act) = vectorized(
                    #[inline(always)]
                    || by_dtype!(x, E => conv1d_pool_forward::<E>(&x, &weight, &bias, relu, pool)),
                );
                prep.finish((x, weight, act, relu, pool), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::conv1d_pool(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                relu,
                pool,
            )),
        }
    }

    fn lstm_cell(z: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self> {
        match LstmCellBackward.prepare::<C>([z.node(), c.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (z, c) = (z.primitive().clone(), c.primitive().clone());
                let out = Flex::lstm_cell(z.clone(), c.clone());
                prep.finish((z, c), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::lstm_cell(z.into_primitive(), c.into_primitive())),
        }
    }

    fn lstm_hidden(z: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self> {
        match LstmHiddenBackward.prepare::<C>([z.node(), c.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (z, c) = (z.primitive().clone(), c.primitive().clone());
                let out = Flex::lstm_hidden(z.clone(), c.clone());
                prep.finish((z, c), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::lstm_hidden(z.into_primitive(), c.into_primitive())),
        }
    }

    fn gru_cell(xw: FloatTensor<Self>, hu: FloatTensor<Self>, h: FloatTensor<Self>) -> FloatTensor<Self> {
        match GruCellBackward.prepare::<C>([xw.node(), hu.node(), h.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (xw, hu, h) = (xw.primitive().clone(), hu.primitive().clone(), h.primitive().clone());
                let out = Flex::gru_cell(xw.clone(), hu.clone(), h.clone());
                prep.finish((xw, hu, h), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::gru_cell(xw.into_primitive(), hu.into_primitive(), h.into_primitive()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::{sigmoid, tanh};
    use burn::tensor::module::{conv1d as burn_conv1d, max_pool1d as burn_max_pool1d};
    use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
    use burn::tensor::{Device, Tensor, TensorData};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// An f32 tensor of values in ±3 (past the gates' linear range), tracked.
    fn random_nd<const D: usize>(rng: &mut ChaCha8Rng, shape: [usize; D], device: &Device) -> Tensor<D> {
        let v: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random::<f32>() * 6.0 - 3.0).collect();
        Tensor::from_data(TensorData::new(v, shape), device).require_grad()
    }

    fn random(rng: &mut ChaCha8Rng, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
        random_nd(rng, [rows, cols], device)
    }

    fn close<const D: usize>(a: Tensor<D>, b: Tensor<D>, what: &str) {
        let (a, b) = (a.into_data().try_into_vec::<f32>().unwrap(), b.into_data().try_into_vec::<f32>().unwrap());
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 2e-6 * (1.0 + y.abs()), "{what}[{i}]: fused {x} vs composed {y}");
        }
    }

    // 37 units: row lengths that fill no whole 8-lane vector, so the loops' tails run too.
    const ROWS: usize = 5;
    const UNITS: usize = 37;

    #[test]
    fn fused_lstm_step_matches_burns_own_operations() {
        let device = Device::flex().autodiff();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (z, c, w) = (
            random(&mut rng, ROWS, 4 * UNITS, &device),
            random(&mut rng, ROWS, UNITS, &device),
            random(&mut rng, ROWS, 2 * UNITS, &device),
        );
        assert!(supported(&z));
        let gate = |k: usize| z.clone().slice([0..ROWS, k * UNITS..(k + 1) * UNITS]);
        let c_ref = sigmoid(gate(1)) * c.clone() + sigmoid(gate(0)) * tanh(gate(3));
        let h_ref = sigmoid(gate(2)) * tanh(c_ref.clone());
        let c_new = lstm_cell(z.clone(), c.clone());
        let h = lstm_hidden(z.clone(), c_new.clone());
        close(c_new.clone(), c_ref.clone(), "c");
        close(h.clone(), h_ref.clone(), "h");
        // Without autodiff (inference) the values are the same.
        close(lstm_cell(z.clone().inner(), c.clone().inner()), c_ref.clone().inner(), "c without autodiff");
        // A loss that reaches both outputs, so every gradient path runs.
        let loss = |h: Tensor<2>, c: Tensor<2>| (Tensor::cat(vec![h, c], 1) * w.clone()).sum();
        let (fused, reference) = (loss(h, c_new).backward(), loss(h_ref, c_ref).backward());
        close(z.grad(&fused).unwrap(), z.grad(&reference).unwrap(), "dz");
        close(c.grad(&fused).unwrap(), c.grad(&reference).unwrap(), "dc");
    }

    #[test]
    fn fused_gru_step_matches_burns_own_operations() {
        let device = Device::flex().autodiff();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let xw = random(&mut rng, ROWS, 3 * UNITS, &device);
        let (hu, h, w) = (
            random(&mut rng, ROWS, 3 * UNITS, &device),
            random(&mut rng, ROWS, UNITS, &device),
            random(&mut rng, ROWS, UNITS, &device),
        );
        let part = |t: &Tensor<2>, k: usize| t.clone().slice([0..ROWS, k * UNITS..(k + 1) * UNITS]);
        let z = sigmoid(part(&xw, 0) + part(&hu, 0));
        let r = sigmoid(part(&xw, 1) + part(&hu, 1));
        let n = tanh(part(&xw, 2) + r * part(&hu, 2));
        let h_ref = z.clone() * h.clone() + z.neg().add_scalar(1.0) * n;
        let h_new = gru_cell(xw.clone(), hu.clone(), h.clone());
        close(h_new.clone(), h_ref.clone(), "h");
        let (fused, reference) = ((h_new * w.clone()).sum().backward(), (h_ref * w).sum().backward());
        for (t, name) in [(&xw, "dxw"), (&hu, "dhu"), (&h, "dh")] {
            close(t.grad(&fused).unwrap(), t.grad(&reference).unwrap(), name);
        }
    }

    #[test]
    fn fused_conv_block_matches_burns_own_operations() {
        let device = Device::flex().autodiff();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // 15 values, 13 positions after a kernel of 3: a pool of 2 leaves the last one out, as
        // Keras's 'valid' pooling does.
        let x = random_nd(&mut rng, [3, 4, 15], &device);
        let (w, b) = (random_nd(&mut rng, [5, 4, 3], &device), random_nd(&mut rng, [5], &device));
        for (relu, pool) in [(true, 2), (false, 3), (true, 1)] {
            let fused = conv1d_pool(x.clone(), w.clone(), b.clone(), relu, pool);
            let mut reference = burn_conv1d(x.clone(), w.clone(), Some(b.clone()), ConvOptions::new([1], [0], [1], 1));
            if relu {
                reference = burn::tensor::activation::relu(reference);
            }
            let reference = burn_max_pool1d(reference, MaxPoolOptions::new([pool]));
            assert_eq!(fused.dims(), [3, 5, 13 / pool]);
            let what = format!("relu {relu}, pool {pool}");
            close(fused.clone(), reference.clone(), &what);
            let weights = random_nd(&mut rng, fused.dims(), &device);
            let (g_fused, g_ref) = ((fused * weights.clone()).sum().backward(), (reference * weights).sum().backward());
            for (t, name) in [(&x, "dx"), (&w, "dweight")] {
                close(t.grad(&g_fused).unwrap(), t.grad(&g_ref).unwrap(), &format!("{name}, {what}"));
            }
            close(b.grad(&g_fused).unwrap(), b.grad(&g_ref).unwrap(), &format!("dbias, {what}"));
        }
    }
}
