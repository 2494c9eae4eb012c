//! Criterion benchmarks of the re-identification statistics (the hot path phiprobe owns):
//! grouping into equivalence classes plus every statistic, on the Adult data (9 QIs) and on
//! synthetic tables of 100 k and 1 M records × 6 QIs. `benches/compare_reid.py` puts the same
//! work side by side with pyCANON and a bare pandas group-by, in one run.

use criterion::{Criterion, criterion_group, criterion_main};
use phiprobe::data::{Column, Dataset};
use phiprobe::risk::diversity::diversity;
use phiprobe::risk::population::{PopulationModel, SnbVariant, population_uniqueness};
use phiprobe::risk::{MissingPolicy, classify, prosecutor};
use phiprobe::stats::Rng;
use std::hint::black_box;

/// All statistics of `risk` except I/O and the report: classes, prosecutor risk, population
/// uniqueness (all estimators) and l-diversity / t-closeness of one sensitive attribute.
fn full_statistics(qis: &[&Column], sensitive: &Column) -> f64 {
    let classes = classify(qis, None, MissingPolicy::Conservative);
    let hist = classes.histogram();
    let p = prosecutor(&hist, 0.09);
    let pu = population_uniqueness(
        &hist,
        PopulationModel::from_fraction(p.n, 0.01),
        SnbVariant::Derived,
    );
    let d = diversity(&classes, sensitive, 2.0, 2.0);
    p.avg + pu.dankar + d.t_equal
}

/// A synthetic table: 6 QIs with realistic cardinalities and one sensitive attribute.
pub fn synthetic(rows: usize, seed: u64) -> (Vec<Column>, Column) {
    let mut rng = Rng::new(seed);
    let cards = [
        ("age", 100u64),
        ("sex", 2),
        ("zip3", 900),
        ("race", 6),
        ("admit_year", 10),
        ("marital", 5),
    ];
    let qis = cards
        .iter()
        .map(|&(name, card)| {
            let dictionary: Vec<String> = (0..card).map(|v| v.to_string()).collect();
            Column {
                name: name.into(),
                codes: (0..rows).map(|_| rng.below(card) as u32).collect(),
                dictionary,
                numeric: true,
            }
        })
        .collect();
    let sens = Column {
        name: "dx".into(),
        codes: (0..rows).map(|_| rng.below(200) as u32).collect(),
        dictionary: (0..200).map(|v| format!("D{v}")).collect(),
        numeric: false,
    };
    (qis, sens)
}

fn bench_adult(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/adult.csv");
    let ds = Dataset::open(&path, Some(b';'), None).expect("adult.csv");
    let names: Vec<String> = [
        "sex",
        "age",
        "race",
        "marital-status",
        "education",
        "native-country",
        "workclass",
        "occupation",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let table = ds.source.table(&names, &[]).unwrap();
    let sens = ds.source.encode("salary-class", None).unwrap();
    let refs: Vec<&Column> = table.columns.iter().collect();
    c.bench_function("risk/adult_8qi_full_statistics", |b| {
        b.iter(|| black_box(full_statistics(&refs, &sens)))
    });
    c.bench_function("risk/adult_load_and_encode", |b| {
        b.iter(|| {
            let ds = Dataset::open(&path, Some(b';'), None).unwrap();
            black_box(ds.source.table(&names, &[]).unwrap().rows)
        })
    });
}

fn bench_synthetic(c: &mut Criterion) {
    let mut group = c.benchmark_group("risk/synthetic_6qi_full_statistics");
    group.sample_size(10);
    for rows in [100_000usize, 1_000_000] {
        let (qis, sens) = synthetic(rows, 1);
        let refs: Vec<&Column> = qis.iter().collect();
        group.bench_function(format!("{rows}"), |b| {
            b.iter(|| black_box(full_statistics(&refs, &sens)))
        });
    }
    group.finish();
}

/// Teacher-forced scoring: the tiny llama fixture always; SmolLM2-135M (64 × 128 tokens, the issue's
/// workload) when scripts/fetch-smollm2.sh has fetched it. benches/compare_scoring.py puts the same
/// workload next to PyTorch and llama.cpp in one run.
fn bench_scoring(c: &mut Criterion) {
    use phiprobe::model::{LoadOptions, load};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut models = vec![(
        "tiny-llama",
        root.join("tests/data/models/tiny-llama"),
        16usize,
    )];
    let smol = root.join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if smol.exists() {
        models.push(("smollm2-135m", smol, 64));
    } else {
        eprintln!("SmolLM2 GGUF not present: scoring bench runs on the tiny fixture only");
    }
    let mut g = c.benchmark_group("score");
    g.sample_size(10);
    for (name, path, n) in models {
        let model = load(path.to_str().unwrap(), &LoadOptions::default()).unwrap();
        let vocab = model.card().tokenizer.vocab_size as u64;
        let mut rng = Rng::new(7);
        let seqs: Vec<Vec<u32>> = (0..n)
            .map(|_| (0..128).map(|_| rng.below(vocab) as u32).collect())
            .collect();
        g.throughput(criterion::Throughput::Elements((n * 127) as u64));
        g.bench_function(format!("{name}/{n}x128"), |b| {
            b.iter(|| {
                for chunk in seqs.chunks(32) {
                    black_box(model.score(chunk).unwrap());
                }
            })
        });
    }
    g.finish();
}

/// One training step of the tiny preset (16 × 128 random tokens): plain AdamW and DP-SGD
/// (per-example clipping + noise) at the same batch. `benches/compare_training.py` puts the
/// plain step beside PyTorch's in one run.
fn bench_training(c: &mut Criterion) {
    use phiprobe::train::llama::Preset;
    use phiprobe::train::trainer::{DpConfig, TrainConfig, seconds_per_step};
    let cfg = TrainConfig::defaults(Preset::Tiny.config(), 7);
    let mut rng = Rng::new(7);
    let seqs: Vec<Vec<u32>> = (0..16)
        .map(|_| (0..129).map(|_| rng.below(2048) as u32).collect())
        .collect();
    let dp = DpConfig {
        noise: 1.0,
        clip: 1.0,
        sample_rate: 0.01,
        delta: 1e-5,
        target_epsilon: None,
        expected_size: None,
    };
    let mut g = c.benchmark_group("train/tiny_16x128");
    g.sample_size(10);
    for (name, dp) in [("plain_step", None), ("dp_step", Some(dp))] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let s = seconds_per_step(&cfg, &seqs, iters as usize, 1, dp).expect("step");
                std::time::Duration::from_secs_f64(s * iters as f64)
            })
        });
    }
    g.finish();
}

/// Membership inference (issue 5's workload): every attack, every metric and 1,000 bootstrap
/// resamples per attack for 100 k records × 16 reference models; ROC + AUC alone on 100 k
/// scores; RMIA with 100 k records against 100 k population points. `benches/compare_membership.py`
/// puts ROC/AUC beside scikit-learn in one run and measures peak memory.
fn bench_membership(c: &mut Criterion) {
    use phiprobe::probe::membership::{Settings, analyze, rmia_scores, synthetic_audit};
    use phiprobe::stats::roc::Roc;
    let obs = synthetic_audit(100_000, 16, 32, 7);
    let mut g = c.benchmark_group("membership");
    g.sample_size(10);
    let scores: Vec<f64> = obs.target.totals.iter().map(|t| t.mean()).collect();
    g.bench_function("roc_auc_100k", |b| {
        b.iter(|| black_box(Roc::new(&scores, &obs.member).auc()))
    });
    let mut rng = Rng::new(3);
    let lr: Vec<f64> = (0..200_000).map(|_| rng.normal()).collect();
    let population: Vec<usize> = (100_000..200_000).collect();
    g.bench_function("rmia_100k_x_100k", |b| {
        b.iter(|| black_box(rmia_scores(&lr, &population, 1.0)))
    });
    let settings = Settings::default();
    g.bench_function("all_attacks_100k_x16_bootstrap1000", |b| {
        b.iter(|| black_box(analyze(&obs, &settings, 7, &[], "bench").unwrap()))
    });
    g.finish();
}

/// Canary exposure (issue 6): the exact rank of a memorised 9-digit canary by token-tree search
/// against enumeration of its 10⁹-secret space, on the mock model (byte tokens, memorised
/// sentence boosted), in one run: the search is timed whole; enumeration is timed on 10,000
/// secrets and extrapolated. The ratio of model calls and of time is printed. On a trained
/// model: `phiprobe bench-canary --model reports/demo-model/target --kind ssn`.
fn bench_canary(c: &mut Criterion) {
    use phiprobe::model::LanguageModel;
    use phiprobe::model::mock::MockModel;
    use phiprobe::probe::canary::search::{Limits, Query, Surfaces, exact_rank};
    use phiprobe::train::canary::Format;
    let context = "Identity verified; social security number {secret} on file.";
    let secret = "417-29-8361";
    let model = MockModel::new(
        3,
        6.0,
        vec![context.replace("{secret}", secret)],
        phiprobe::evidence::FileHash::of("mock", b""),
    );
    let format = Format::parse("{d3}-{d2}-{d4}").unwrap();
    let surfaces = Surfaces::of(&model).unwrap();
    let q = Query {
        format: &format,
        context,
        secret,
    };
    let limits = Limits {
        max_expansions: 1_000_000,
        batch: 256,
    };
    let found = exact_rank(&model, &surfaces, &q, limits).unwrap();
    let mut rng = Rng::new(1);
    let sample: Vec<Vec<u32>> = (0..10_000)
        .map(|_| {
            model
                .encode(&context.replace("{secret}", &format.sample(&mut rng)))
                .unwrap()
        })
        .collect();
    let mut g = c.benchmark_group("canary");
    g.sample_size(10);
    g.bench_function("exact_rank_search_9_digits", |b| {
        b.iter(|| black_box(exact_rank(&model, &surfaces, &q, limits).unwrap()))
    });
    g.bench_function("enumeration_10k_of_1e9", |b| {
        b.iter(|| black_box(model.score(&sample).unwrap()))
    });
    g.finish();
    let t0 = std::time::Instant::now();
    black_box(exact_rank(&model, &surfaces, &q, limits).unwrap());
    let search = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    black_box(model.score(&sample).unwrap());
    let enumeration = t1.elapsed().as_secs_f64() * 1e9 / 1e4;
    println!(
        "canary: rank {} (exact {}) with {} model calls vs 1e9 for enumeration ({:.2e} of the calls); {:.3} s vs {:.0} s extrapolated ({:.2e} of the time)",
        found.rank,
        found.exact,
        found.expansions,
        found.expansions as f64 / 1e9,
        search,
        enumeration,
        search / enumeration
    );
}

/// Attribute inference (issue 7): 128 diagnosis candidates after a ~60-word clinical context on
/// the committed micro model (trained by phiprobe), scored over a shared-prefix KV cache
/// against re-scoring every full text, in one run; the speedup is printed. On other models:
/// `phiprobe bench-inversion --model DIR|FILE.gguf`.
fn bench_inversion(c: &mut Criterion) {
    use phiprobe::model::{LoadOptions, load, rescore_continuations};
    use phiprobe::probe::inversion::bench_workload;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/trained/micro");
    let model = load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let (prefix, conts) = bench_workload(model.as_ref(), 128).unwrap();
    let mut g = c.benchmark_group("inversion");
    g.sample_size(10);
    g.bench_function("shared_prefix_128_candidates", |b| {
        b.iter(|| black_box(model.score_continuations(&prefix, &conts).unwrap()))
    });
    g.bench_function("rescore_128_candidates", |b| {
        b.iter(|| black_box(rescore_continuations(model.as_ref(), &prefix, &conts).unwrap()))
    });
    g.finish();
    let best = |f: &dyn Fn()| {
        (0..3)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let shared = best(&|| {
        black_box(model.score_continuations(&prefix, &conts).unwrap());
    });
    let full = best(&|| {
        black_box(rescore_continuations(model.as_ref(), &prefix, &conts).unwrap());
    });
    println!(
        "inversion: {} candidates after {} context tokens: shared prefix {:.4} s vs re-scoring {:.4} s ({:.1}x)",
        conts.len(),
        prefix.len(),
        shared,
        full,
        full / shared
    );
}

/// DP audit (issue 9): the one-run, Clopper–Pearson and GDP estimators on 1,000 white-box
/// gradient-canary scores of the subsampled Gaussian (σ 1, q 0.2, 10 steps, half included).
/// The end-to-end sweep is timed by `benches/sweep_demo.py`.
fn bench_dp_audit(c: &mut Criterion) {
    use phiprobe::stats::{epsilon, gdp, one_run};
    use phiprobe::train::whitebox::step_llr;
    let mut rng = Rng::new(9);
    let (mut ins, mut outs) = (Vec::new(), Vec::new());
    for j in 0..1000 {
        let included = j % 2 == 0;
        let s: f64 = (0..10)
            .map(|_| {
                let b = if included && rng.chance(0.2) {
                    1.0
                } else {
                    0.0
                };
                step_llr(b + rng.normal(), 0.2, 1.0)
            })
            .sum();
        if included { ins.push(s) } else { outs.push(s) }
    }
    let mut g = c.benchmark_group("dp_audit");
    g.bench_function("one_run_1000", |b| {
        b.iter(|| black_box(one_run::epsilon_from_scores(&ins, &outs, 0.05, 1e-5)))
    });
    g.bench_function("clopper_pearson_1000", |b| {
        b.iter(|| black_box(epsilon::epsilon_from_scores(&ins, &outs, 0.05, 1e-5)))
    });
    g.bench_function("gdp_1000", |b| {
        b.iter(|| black_box(gdp::epsilon_estimate(&ins, &outs, 0.05, 1e-5)))
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_adult,
    bench_synthetic,
    bench_scoring,
    bench_training,
    bench_membership,
    bench_canary,
    bench_inversion,
    bench_dp_audit
);
criterion_main!(benches);
