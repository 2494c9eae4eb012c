//! Training of target and reference models: tokenizer, a Llama-architecture language model built
//! from differentiable primitive ops, AdamW, DP-SGD with per-example clipping, the privacy
//! accountant, canary plans and reference-model fleets.
//!
//! Only this module and `model/` touch candle and tokenizers. The accountant is pure maths.

pub mod bpe;
pub mod canary;
pub mod dp;
pub mod llama;
pub mod ops;
pub mod optim;
pub mod run;
pub mod trainer;
pub mod whitebox;

/// Helpers shared by the training tests.
#[cfg(test)]
pub(crate) mod test_util {
    use super::llama::LlamaConfig;
    use candle_core::Tensor;

    /// A test-sized model: vocabulary 300, 2 heads, the given width, blocks and context.
    pub fn micro(hidden: usize, layers: usize, max_len: usize) -> LlamaConfig {
        LlamaConfig {
            vocab_size: 300,
            hidden,
            layers,
            heads: 2,
            intermediate: hidden + 8,
            max_len,
            rope_theta: 10_000.0,
            rms_eps: 1e-5,
        }
    }

    /// All values of a tensor, row-major.
    pub fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// Largest absolute value of a tensor.
    pub fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Largest absolute difference of two tensors.
    pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        max_abs(&(a - b).unwrap())
    }
}
