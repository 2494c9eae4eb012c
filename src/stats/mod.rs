//! Pure mathematics: special functions, intervals, ROC and membership metrics, ε lower bounds,
//! exposure, a deterministic RNG.
//!
//! No I/O, no ML types and no polars here (DESIGN.md §2).

pub mod accountant;
pub mod bayes;
pub mod cluster;
pub mod epsilon;
pub mod exposure;
pub mod gdp;
pub mod interval;
pub mod one_run;
pub mod rng;
pub mod roc;
pub mod skewnorm;
pub mod special;

pub use interval::{bind, clopper_pearson, newcombe_difference, probit, residual_success, wilson};
pub use rng::{Rng, Weighted};
