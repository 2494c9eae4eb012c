//! `score`, `generate` and `bench-score`: a model's per-token scores and decodes, for checking
//! phiprobe's numbers against a reference implementation.

use super::{BenchScoreArgs, GenerateArgs, GenerateFormat, ModelArgs, ScoreArgs, ScoreFormat};
use super::{progress_bar, set_threads, write_output};
use crate::exit;
use anyhow::Result;
use std::path::{Path, PathBuf};

fn open_model(a: &ModelArgs) -> Result<Box<dyn crate::model::LanguageModel>> {
    set_threads(a.threads)?;
    let opts = crate::model::LoadOptions {
        adapter: a.adapter.clone(),
        threads: a.threads,
    };
    Ok(crate::model::load(&a.model, &opts)?)
}

pub(super) fn score_cmd(a: &ScoreArgs, quiet: bool) -> Result<u8> {
    if a.format == ScoreFormat::Parquet && (a.data.is_none() || a.out.is_none()) {
        return Err(crate::Error::Usage("--format parquet needs --data and --out".into()).into());
    }
    if a.batch_tokens == 0 {
        return Err(crate::Error::Usage("--batch-tokens must be at least 1".into()).into());
    }
    if let Some(out) = &a.out {
        let mut inputs: Vec<PathBuf> = a.data.iter().cloned().collect();
        if let Some(card) = &a.data
            && let Ok(c) = crate::data::DatasetCard::load(card)
        {
            inputs.extend(c.files());
        }
        let m = &a.model.model;
        inputs.push(PathBuf::from(m.strip_prefix("mock:").unwrap_or(m)));
        inputs.extend(a.model.adapter.iter().cloned());
        crate::integrity::folder::check_file_output(out, &inputs)?;
    }
    // Read the data first: a bad card fails before a model is loaded.
    let records = match &a.data {
        Some(card) => Some(score_records(card, a.column.as_deref())?),
        None => None,
    };
    let model = open_model(&a.model)?;
    if let Some(text) = &a.text {
        let s = model.score(&[model.encode(text)?])?.remove(0);
        let value = serde_json::json!({
            "model": model.card().architecture,
            "n_tokens": s.scores.len(),
            "total_logprob": s.total(),
            "mean_logprob": if s.scores.is_empty() { None } else { Some(s.mean()) },
            "adds_bos": model.card().tokenizer.adds_bos,
            "token_ids": s.tokens,
            "tokens": s.tokens.iter().map(|&t| model.token_text(t)).collect::<Vec<_>>(),
            "token_logprobs": std::iter::repeat_n(None, s.first_scored)
                .chain(s.scores.iter().map(|x| Some(f64::from(x.logprob))))
                .collect::<Vec<_>>(),
            "token_mean_logprob": std::iter::repeat_n(None, s.first_scored)
                .chain(s.scores.iter().map(|x| Some(f64::from(x.mean))))
                .collect::<Vec<_>>(),
            "token_var_logprob": std::iter::repeat_n(None, s.first_scored)
                .chain(s.scores.iter().map(|x| Some(f64::from(x.var))))
                .collect::<Vec<_>>(),
        });
        write_output(
            a.out.as_deref(),
            &(serde_json::to_string_pretty(&value)? + "\n"),
        )?;
        return Ok(exit::PASS);
    }
    let (ids, texts) = records.expect("clap requires --text or --data");
    let pb = progress_bar(texts.len() as u64, quiet, "scoring");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let scores =
        crate::model::score_texts(model.as_ref(), &refs, a.batch_tokens, |n| pb.inc(n as u64))?;
    pb.finish_and_clear();
    let rows: Vec<crate::data::scores::ScoreRow> = ids
        .into_iter()
        .zip(&scores)
        .map(|(record_id, s)| crate::data::scores::ScoreRow {
            record_id,
            n_tokens: s.scores.len(),
            total_logprob: s.total(),
            mean_logprob: s.mean(),
        })
        .collect();
    match a.format {
        ScoreFormat::Parquet => {
            crate::data::scores::write_parquet(&rows, a.out.as_deref().expect("checked"))?
        }
        ScoreFormat::Json => {
            let mut text = String::new();
            for r in &rows {
                text += &serde_json::to_string(r)?;
                text.push('\n');
            }
            write_output(a.out.as_deref(), &text)?;
        }
    }
    if !quiet {
        let tokens: usize = rows.iter().map(|r| r.n_tokens).sum();
        eprintln!("scored {} records ({tokens} tokens)", rows.len());
    }
    Ok(exit::PASS)
}

/// Record ids and texts of a dataset card's text column.
fn score_records(card: &Path, column: Option<&str>) -> Result<(Vec<String>, Vec<String>)> {
    let r = crate::data::text::TextRecords::load(card, column)?;
    Ok((r.ids, r.texts))
}

pub(super) fn generate_cmd(a: &GenerateArgs) -> Result<u8> {
    use crate::model::{Decoding, Strategy};
    let strategy = match (a.greedy, a.temperature) {
        _ if a.beam.is_some() => {
            let width = a.beam.unwrap_or(1);
            if width == 0 {
                return Err(crate::Error::Usage("--beam must be at least 1".into()).into());
            }
            Strategy::Beam { width }
        }
        (true, _) | (false, None) if a.top_k.is_none() && a.top_p.is_none() => Strategy::Greedy,
        _ => {
            let temperature = a.temperature.unwrap_or(1.0);
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(
                    crate::Error::Usage("--temperature must be a positive number".into()).into(),
                );
            }
            if let Some(p) = a.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
                return Err(crate::Error::Usage(format!("--top-p {p} is not in (0, 1]")).into());
            }
            if a.top_k == Some(0) {
                return Err(crate::Error::Usage("--top-k must be at least 1".into()).into());
            }
            Strategy::Sample {
                temperature,
                top_k: a.top_k,
                top_p: a.top_p,
            }
        }
    };
    let model = open_model(&a.model)?;
    let prompts: Vec<Vec<u32>> = a
        .prompt
        .iter()
        .map(|p| model.encode(p))
        .collect::<crate::Result<_>>()?;
    let d = Decoding {
        strategy,
        max_new_tokens: a.max_new_tokens,
        seed: a.seed,
        stop_at_eos: !a.ignore_eos,
    };
    let outs = model.generate(&prompts, &d)?;
    let mut text = String::new();
    let mut items = Vec::new();
    for ((prompt, ids), out) in a.prompt.iter().zip(&prompts).zip(&outs) {
        let generated = model.decode(out)?;
        match a.format {
            GenerateFormat::Text => {
                text += &generated;
                text.push('\n');
            }
            GenerateFormat::Json => items.push(serde_json::json!({
                "prompt": prompt,
                "prompt_ids": ids,
                "generated_ids": out,
                "text": generated,
            })),
        }
    }
    if a.format == GenerateFormat::Json {
        let value = serde_json::json!({
            "model": model.card().architecture,
            "decoding": match strategy {
                Strategy::Greedy => serde_json::json!({"greedy": true}),
                Strategy::Beam { width } => serde_json::json!({"beam": width}),
                Strategy::Sample { temperature, top_k, top_p } =>
                    serde_json::json!({"temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": a.seed}),
            },
            "max_new_tokens": a.max_new_tokens,
            "outputs": items,
        });
        text = serde_json::to_string_pretty(&value)? + "\n";
    }
    write_output(None, &text)?;
    Ok(exit::PASS)
}

pub(super) fn bench_score_cmd(a: &BenchScoreArgs) -> Result<u8> {
    use std::time::Instant;
    let model = open_model(&a.model)?;
    let vocab = model.card().tokenizer.vocab_size as u64;
    let mut rng = crate::stats::rng::Rng::new(7);
    let seqs: Vec<Vec<u32>> = (0..a.sequences)
        .map(|_| (0..a.tokens).map(|_| rng.below(vocab) as u32).collect())
        .collect();
    let per_batch = (a.batch_tokens / a.tokens.max(1)).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..a.repeat.max(1) {
        let t0 = Instant::now();
        for chunk in seqs.chunks(per_batch) {
            model.score(chunk)?;
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let scored = (a.sequences * a.tokens.saturating_sub(1)) as f64;
    let card = model.card();
    let (gflops, flops_per_token) = crate::model::roofline(card, a.tokens)?;
    let tok_s = scored / best;
    let roof = gflops * 1e9 / flops_per_token;
    let value = serde_json::json!({
        "sequences": a.sequences,
        "tokens": a.tokens,
        "seconds": best,
        "tok_per_s": tok_s,
        "matmul_gflops": gflops,
        "flops_per_token": flops_per_token,
        "roofline_tok_per_s": roof,
        "roofline_fraction": tok_s / roof,
    });
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(exit::PASS)
}
