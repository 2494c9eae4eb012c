//! Writing per-record score tables (the output of `phiprobe score --data`).

use std::path::Path;

use polars::prelude as pl;
use polars::prelude::{IntoColumn, NamedFrom};

use crate::{Error, Result};

/// One scored record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScoreRow {
    /// Record id (never the text).
    pub record_id: String,
    /// Number of scored tokens.
    pub n_tokens: usize,
    /// Sum of log-probabilities (nats).
    pub total_logprob: f64,
    /// Mean log-probability per scored token (nats).
    pub mean_logprob: f64,
}

/// Writes `rows` as Parquet to `path`, via a temporary file in the same folder renamed into place.
pub fn write_parquet(rows: &[ScoreRow], path: &Path) -> Result<()> {
    let werr = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let cols = vec![
        pl::Series::new(
            "record_id".into(),
            rows.iter()
                .map(|r| r.record_id.as_str())
                .collect::<Vec<_>>(),
        )
        .into_column(),
        pl::Series::new(
            "n_tokens".into(),
            rows.iter().map(|r| r.n_tokens as u32).collect::<Vec<_>>(),
        )
        .into_column(),
        pl::Series::new(
            "total_logprob".into(),
            rows.iter().map(|r| r.total_logprob).collect::<Vec<_>>(),
        )
        .into_column(),
        pl::Series::new(
            "mean_logprob".into(),
            rows.iter().map(|r| r.mean_logprob).collect::<Vec<_>>(),
        )
        .into_column(),
    ];
    let mut df = pl::DataFrame::new_infer_height(cols)
        .map_err(|e| werr(std::io::Error::other(e.to_string())))?;
    crate::fsx::write_with(path, |w| {
        pl::ParquetWriter::new(w)
            .finish(&mut df)
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
}
