//! Cached observations: the per-token scores of audit records under one model, as Parquet.
//!
//! One file per chunk of records (`part-NNNNN.parquet`): `record_id` (string) and three list
//! columns over the scored positions, `logprob`, `mean`, `var` (f32). Token ids and texts are
//! never stored, so a cache reveals no record's content.

use std::path::Path;

use polars::prelude as pl;
use polars::prelude::{IntoColumn, NamedFrom, SerReader};

use crate::probe::membership::TokenRows;
use crate::{Error, Result};

/// Writes one chunk atomically.
pub fn write_chunk(path: &Path, ids: &[String], rows: &[TokenRows]) -> Result<()> {
    let werr = |e: String| Error::Write {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    };
    let list = |name: &str, f: &dyn Fn(&TokenRows) -> &Vec<f32>| {
        let parts: Vec<pl::Series> = rows
            .iter()
            .map(|r| pl::Series::new("".into(), f(r).as_slice()))
            .collect();
        pl::Series::new(name.into(), parts).into_column()
    };
    let cols = vec![
        pl::Series::new(
            "record_id".into(),
            ids.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .into_column(),
        list("logprob", &|r| &r.logprob),
        list("mean", &|r| &r.mean),
        list("var", &|r| &r.var),
    ];
    let mut df = pl::DataFrame::new_infer_height(cols).map_err(|e| werr(e.to_string()))?;
    crate::fsx::write_with(path, |w| {
        pl::ParquetWriter::new(w)
            .finish(&mut df)
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
}

/// Reads one chunk: (record ids, rows). Any structural problem names the file.
pub fn read_chunk(path: &Path) -> Result<(Vec<String>, Vec<TokenRows>)> {
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
    let ids_col = df
        .column("record_id")
        .and_then(|c| c.str().cloned())
        .map_err(|e| bad(e.to_string()))?;
    let ids: Vec<String> = (0..ids_col.len())
        .map(|i| {
            ids_col
                .get(i)
                .map(str::to_owned)
                .ok_or_else(|| bad("null record_id".into()))
        })
        .collect::<Result<_>>()?;
    let lists = |name: &str| -> Result<Vec<Vec<f32>>> {
        let c = df.column(name).map_err(|e| bad(e.to_string()))?;
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
    let (lp, mean, var) = (lists("logprob")?, lists("mean")?, lists("var")?);
    if lp.len() != ids.len() || mean.len() != ids.len() || var.len() != ids.len() {
        return Err(bad("columns have different lengths".into()));
    }
    let rows = lp
        .into_iter()
        .zip(mean)
        .zip(var)
        .map(|((logprob, mean), var)| {
            if mean.len() != logprob.len() || var.len() != logprob.len() {
                return Err(bad("a record's lists have different lengths".into()));
            }
            Ok(TokenRows { logprob, mean, var })
        })
        .collect::<Result<_>>()?;
    Ok((ids, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("part-00000.parquet");
        let rows = vec![
            TokenRows {
                logprob: vec![-1.5, -0.25],
                mean: vec![-2.0, -1.0],
                var: vec![0.5, 0.25],
            },
            TokenRows::default(),
        ];
        let ids = vec!["a".to_owned(), "b".to_owned()];
        write_chunk(&p, &ids, &rows).unwrap();
        let (i2, r2) = read_chunk(&p).unwrap();
        assert_eq!((i2, r2), (ids, rows));
        std::fs::write(&p, b"not parquet").unwrap();
        let e = read_chunk(&p).unwrap_err().to_string();
        assert!(e.contains("part-00000.parquet"), "{e}");
    }
}
