//! The layering of ARCHITECTURE.md, checked on the source: a top-level module may use only the
//! modules of lower layers, so the module graph has no cycle and no upward import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first (the table "Layers" in ARCHITECTURE.md).
const LAYERS: &[&[&str]] = &[
    &["date", "exit", "stats"],
    &["phi"],
    &["redact"],
    &["error"],
    &["evidence"],
    &["fsx"],
    &["integrity", "data", "model"],
    &["risk", "train"],
    &["gate", "sweep"],
    &["report"],
    &["probe"],
    &["run"],
    &["cli"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules each top-level module refers to through `crate::…` paths (code, not
/// comments; `crate::{Error, Result}` is the `error` module).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let deps = graph.entry(top.clone()).or_default();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '{')
                    .collect();
                let name = if name.starts_with('{') || name == "Error" || name == "Result" {
                    "error".to_owned()
                } else {
                    name
                };
                // `crate::some_macro!` names a macro exported at the root, not a module.
                let is_macro = rest[name.len()..].starts_with('!');
                if name != top && !name.is_empty() && !is_macro {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    let mut problems = Vec::new();
    for (m, deps) in &graph {
        let Some(lm) = layer(m) else {
            problems.push(format!("{m} is in no layer of ARCHITECTURE.md"));
            continue;
        };
        for d in deps {
            match layer(d) {
                None => problems.push(format!("{m} uses {d}, which is in no layer")),
                Some(ld) if ld >= lm => {
                    problems.push(format!("{m} (layer {lm}) uses {d} (layer {ld})"))
                }
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // Every layer's module exists, so the table cannot rot silently.
    for m in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            graph.contains_key(*m),
            "ARCHITECTURE.md lists {m}, which is gone"
        );
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("stats")).unwrap();
    std::fs::write(
        src.join("stats/mod.rs"),
        "use crate::report::doc;\n// crate::run\n",
    )
    .unwrap();
    std::fs::write(src.join("report.rs"), "use crate::{Error, Result};\n").unwrap();
    let g = module_graph(src);
    assert_eq!(g["stats"], BTreeSet::from(["report".to_owned()]));
    assert_eq!(g["report"], BTreeSet::from(["error".to_owned()]));
    assert!(layer("report") > layer("stats"));
}

/// Longest function (signature to closing brace) that needs no reason beside it.
const LONG_FN: usize = 120;

/// Functions of `text` longer than [`LONG_FN`] lines whose doc comment gives no reason
/// (a paragraph starting "Kept whole:"), as (name, first line, length).
fn long_functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let fn_re = regex::Regex::new(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?fn\s+(\w+)").unwrap();
    let strings = regex::Regex::new(r#""(\\.|[^"\\])*"|'(\\.|[^'\\])'"#).unwrap();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(m) = fn_re.captures(line) else {
            continue;
        };
        let (mut depth, mut started, mut end) = (0i64, false, None);
        for (j, l) in lines.iter().enumerate().skip(i) {
            let code = strings.replace_all(l, "\"\"");
            let code = code.split("//").next().unwrap_or("");
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        started = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if (started && depth <= 0) || (!started && code.trim_end().ends_with(';')) {
                end = Some(j);
                break;
            }
        }
        let len = end.map_or(0, |e| e - i + 1);
        if len <= LONG_FN {
            continue;
        }
        let doc: Vec<&str> = lines[..i]
            .iter()
            .rev()
            .skip_while(|l| l.trim_start().starts_with("#["))
            .take_while(|l| l.trim_start().starts_with("///"))
            .copied()
            .collect();
        if !doc.iter().any(|l| l.contains("Kept whole:")) {
            out.push((m[4].to_owned(), i + 1, len));
        }
    }
    out
}

#[test]
fn long_functions_say_why_they_are_long() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut bad = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (name, line, len) in long_functions(&text) {
            bad.push(format!("{}:{line} {name} ({len} lines)", f.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "functions over {LONG_FN} lines without a \"Kept whole:\" reason in their doc comment \
         (split them, or say why not):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_length_check_sees_a_long_function() {
    let body = "    let x = 1;\n".repeat(LONG_FN);
    let long = format!("/// Does x.\nfn long() {{\n{body}}}\n");
    assert_eq!(long_functions(&long).len(), 1);
    let kept = format!("/// Does x.\n///\n/// Kept whole: a reason.\nfn long() {{\n{body}}}\n");
    assert!(long_functions(&kept).is_empty());
    let short = "fn short() {\n    let s = \"}\";\n}\n";
    assert!(long_functions(short).is_empty());
}
