//! Cached observations: the scores of audit records under one model, as Parquet.
//!
//! One file per chunk of records (`part-NNNNN.parquet`): `record_id` (string), `n` (scored
//! tokens, u32), `sum` (Σ log p, f64), and for the target two list columns (f32), `logprob` and
//! `z` (the Min-K%++ standardisation), **each sorted ascending**. Token ids, texts and token
//! order are never stored, so a cache (even with the model's weights) does not give back a
//! record's content.

use std::path::Path;

use polars::prelude as pl;
use polars::prelude::{IntoColumn, NamedFrom, SerReader};

use crate::evidence::{TokenRows, Total};
use crate::{Error, Result};

/// Writes one chunk atomically; `rows` (the target's) may be empty for reference models.
pub fn write_chunk(
    path: &Path,
    ids: &[String],
    totals: &[Total],
    rows: &[TokenRows],
) -> Result<()> {
    let werr = |e: String| Error::Write {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    };
    let empty = TokenRows::default();
    let row = |i: usize| rows.get(i).unwrap_or(&empty);
    let list = |name: &str, f: &dyn Fn(&TokenRows) -> &Vec<f32>| {
        let parts: Vec<pl::Series> = (0..ids.len())
            .map(|i| pl::Series::new("".into(), f(row(i)).as_slice()))
            .collect();
        pl::Series::new(name.into(), parts).into_column()
    };
    let cols = vec![
        pl::Series::new(
            "record_id".into(),
            ids.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .into_column(),
        pl::Series::new("n".into(), totals.iter().map(|t| t.n).collect::<Vec<_>>()).into_column(),
        pl::Series::new(
            "sum".into(),
            totals.iter().map(|t| t.sum).collect::<Vec<_>>(),
        )
        .into_column(),
        list("logprob", &|r| &r.logprob),
        list("z", &|r| &r.z),
    ];
    let mut df = pl::DataFrame::new_infer_height(cols).map_err(|e| werr(e.to_string()))?;
    crate::fsx::write_with(path, |w| {
        pl::ParquetWriter::new(w)
            .finish(&mut df)
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
}

/// One chunk read back.
pub type Chunk = (Vec<String>, Vec<Total>, Vec<TokenRows>);

/// Reads one chunk: record ids, totals, and the per-token rows (empty lists for reference
/// models). Any structural problem names the file.
pub fn read_chunk(path: &Path) -> Result<Chunk> {
    let bad = |m: String| Error::Parse {
        path: path.to_owned(),
        format: "phiprobe observations (Parquet)".into(),
        message: m,
    };
    let file = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let df = pl::ParquetReader::new(file)
        .finish()
        .map_err(|e| bad(e.to_string()))?;
    let col = |name: &str| df.column(name).map_err(|e| bad(e.to_string()));
    let ids_col = col("record_id")?
        .str()
        .map_err(|e| bad(format!("record_id: {e}")))?
        .clone();
    let ids: Vec<String> = (0..ids_col.len())
        .map(|i| {
            ids_col
                .get(i)
                .map(str::to_owned)
                .ok_or_else(|| bad("null record_id".into()))
        })
        .collect::<Result<_>>()?;
    let n_col = col("n")?.u32().map_err(|e| bad(format!("n: {e}")))?.clone();
    let sum_col = col("sum")?
        .f64()
        .map_err(|e| bad(format!("sum: {e}")))?
        .clone();
    let totals: Vec<Total> = (0..ids.len())
        .map(|i| match (n_col.get(i), sum_col.get(i)) {
            (Some(n), Some(sum)) => Ok(Total { n, sum }),
            _ => Err(bad("null n or sum".into())),
        })
        .collect::<Result<_>>()?;
    let lists = |name: &str| -> Result<Vec<Vec<f32>>> {
        let c = col(name)?;
        let l = c.list().map_err(|e| bad(format!("{name}: {e}")))?;
        (0..l.len())
            .map(|i| {
                let s = l
                    .get_as_series(i)
                    .ok_or_else(|| bad(format!("null {name} list")))?;
                let f = s.f32().map_err(|e| bad(format!("{name}: {e}")))?;
                (0..f.len())
                    .map(|j| f.get(j).ok_or_else(|| bad(format!("null value in {name}"))))
                    .collect()
            })
            .collect()
    };
    let (lp, z) = (lists("logprob")?, lists("z")?);
    if lp.len() != ids.len() || z.len() != ids.len() || totals.len() != ids.len() {
        return Err(bad("columns have different lengths".into()));
    }
    let rows = lp
        .into_iter()
        .zip(z)
        .map(|(logprob, z)| {
            if z.len() != logprob.len() {
                return Err(bad("a record's lists have different lengths".into()));
            }
            Ok(TokenRows { logprob, z })
        })
        .collect::<Result<_>>()?;
    Ok((ids, totals, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("part-00000.parquet");
        let rows = vec![
            TokenRows::from_scores(&[-0.25, -1.5], &[-1.0, -2.0], &[0.25, 0.5]),
            TokenRows::default(),
        ];
        // Sorted on the way in: the order of positions is not kept.
        assert_eq!(rows[0].logprob, [-1.5, -0.25]);
        let totals: Vec<Total> = rows.iter().map(Total::of).collect();
        let ids = vec!["a".to_owned(), "b".to_owned()];
        write_chunk(&p, &ids, &totals, &rows).unwrap();
        assert_eq!(read_chunk(&p).unwrap(), (ids.clone(), totals.clone(), rows));
        // A reference model's chunk: totals only.
        write_chunk(&p, &ids, &totals, &[]).unwrap();
        let (_, t2, r2) = read_chunk(&p).unwrap();
        assert_eq!(t2, totals);
        assert!(r2.iter().all(|r| r.logprob.is_empty()));
        std::fs::write(&p, b"not parquet").unwrap();
        let e = read_chunk(&p).unwrap_err().to_string();
        assert!(e.contains("part-00000.parquet"), "{e}");
    }
}
