//! Pure mathematics: special functions, intervals, a deterministic RNG.
//!
//! No I/O, no ML types and no polars here (DESIGN.md §2).

pub mod interval;
pub mod rng;
pub mod special;

pub use interval::{clopper_pearson, probit, wilson};
pub use rng::{Rng, Weighted};
