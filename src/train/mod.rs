//! Training of target and reference models: tokenizer, a Llama-architecture language model built
//! from differentiable primitive ops, AdamW, DP-SGD with per-example clipping, the privacy
//! accountant, canary plans and reference-model fleets.
//!
//! Only this module and `model/` touch candle and tokenizers. The accountant is pure maths.

pub mod accountant;
pub mod bpe;
pub mod canary;
pub mod dp;
pub mod llama;
pub mod ops;
pub mod optim;
pub mod run;
pub mod trainer;
