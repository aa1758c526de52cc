//! Replicas' gradients between the processes of an MPI job, as Horovod's all-reduce does for
//! Keras: every process computes its replicas of each global batch, the gradients of all
//! replicas reach every process, and each applies the same optimizer step to the same weights.
//!
//! The gradients travel whole (an all-gather of every replica's, not a sum): the optimizer then
//! adds them exactly as it adds a single process's replicas, so the weights are bit-identical to
//! one process running all the replicas.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use trainbench_engine::collective::{self, Exchange};
use trainbench_engine::{Error, Result};

use crate::model::Net;

/// One replica's part of a step, as it travels: loss, correct rows and every weight's gradient
/// (f32, in the network's parameter order; an empty one for a weight with no gradient).
pub struct Travelling {
    pub loss: f64,
    pub correct: usize,
    pub grads: Vec<Vec<f32>>,
}

impl Exchange for Travelling {
    fn encode(&self, out: &mut Vec<u8>) {
        vec![self.loss, self.correct as f64, self.grads.len() as f64].encode(out);
        for g in &self.grads {
            g.encode(out);
        }
    }

    fn decode(bytes: &mut &[u8]) -> Result<Self> {
        let head = Vec::<f64>::decode(bytes)?;
        let [loss, correct, count] = head[..] else {
            return Err(Error::Backend("a replica's message does not start with its loss and counts".into()));
        };
        let grads = (0..count as usize).map(|_| Vec::<f32>::decode(bytes)).collect::<Result<_>>()?;
        Ok(Self { loss, correct: correct as usize, grads })
    }
}

/// A replica's gradients as values, in `net`'s parameter order.
pub fn pack(net: &Net, grads: &GradientsParams, loss: f64, correct: usize) -> Result<Travelling> {
    struct Read<'a> {
        grads: &'a GradientsParams,
        out: Vec<Vec<f32>>,
        error: Option<String>,
    }
    impl ModuleVisitor for Read<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = match self.grads.get::<D>(param.id) {
                None => Vec::new(),
                Some(g) => g.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_else(|e| {
                    self.error.get_or_insert_with(|| format!("{e:?}"));
                    Vec::new()
                }),
            };
            self.out.push(values);
        }
    }
    let mut read = Read { grads, out: Vec::new(), error: None };
    net.visit(&mut read);
    match read.error {
        Some(e) => Err(Error::Backend(format!("cannot read a gradient to send it: {e}"))),
        None => Ok(Travelling { loss, correct, grads: read.out }),
    }
}

/// Gradients for `net`'s weights from a [`Travelling`] replica, as tensors on `device`.
pub fn unpack(net: &Net, replica: Travelling, device: &Device) -> Result<GradientsParams> {
    struct Write<'a> {
        values: std::vec::IntoIter<Vec<f32>>,
        grads: GradientsParams,
        device: &'a Device,
        error: Option<String>,
    }
    impl ModuleVisitor for Write<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Some(values) = self.values.next() else {
                self.error.get_or_insert_with(|| "fewer gradients than weights".into());
                return;
            };
            if values.is_empty() {
                return;
            }
            let shape = param.lazy_shape();
            if shape.num_elements() != values.len() {
                self.error.get_or_insert_with(|| {
                    format!("a gradient of {} values for a weight of shape {:?}", values.len(), shape)
                });
                return;
            }
            let tensor = Tensor::<D>::from_data(TensorData::new(values, shape), self.device);
            self.grads.register(param.id, tensor);
        }
    }
    let mut write = Write { values: replica.grads.into_iter(), grads: GradientsParams::new(), device, error: None };
    net.visit(&mut write);
    match write.error {
        Some(e) => Err(Error::Backend(format!("a gradient from another process does not fit this network: {e}"))),
        None => Ok(write.grads),
    }
}

/// Every process's replicas, in replica order, on every process ([`collective::all_gather_values`]).
pub fn all_replicas(local: Vec<Travelling>) -> Result<Vec<Travelling>> {
    collective::all_gather_values(local)
}
