//! Markdown and HTML views of a [`ReportDoc`].

use super::doc::{Block, ReportDoc};

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Links the first use of each glossary term in the report to its entry: `wrap(term, anchor)`
/// writes the link in the view's syntax.
struct Linker {
    used: std::collections::HashSet<&'static str>,
    enabled: bool,
}

impl Linker {
    fn new(doc: &ReportDoc) -> Self {
        Self {
            used: std::collections::HashSet::new(),
            enabled: doc
                .sections
                .iter()
                .any(|s| s.title == super::summary::GLOSSARY_TITLE),
        }
    }

    /// `text` with the first use of every not-yet-linked key wrapped; `text` is already in the
    /// view's escaping (keys contain no characters either view escapes).
    fn link(&mut self, text: &str, wrap: &dyn Fn(&str, &str) -> String) -> String {
        if !self.enabled {
            return text.to_owned();
        }
        let boundary =
            |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '+' || c == '_'));
        let mut hits: Vec<(usize, usize, &'static str)> = Vec::new();
        for &(_, anchor, key, _) in super::summary::GLOSSARY {
            if self.used.contains(anchor) {
                continue;
            }
            let mut from = 0;
            while let Some(i) = text[from..].find(key) {
                let at = from + i;
                let end = at + key.len();
                if boundary(text[..at].chars().next_back()) && boundary(text[end..].chars().next())
                {
                    hits.push((at, end, anchor));
                    break;
                }
                from = end;
            }
        }
        // Earliest first; of overlapping hits the longer (Min-K%++ over Min-K%) wins.
        hits.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut out = String::with_capacity(text.len() + 32 * hits.len());
        let mut at = 0;
        for (s, e, anchor) in hits {
            if s < at {
                continue;
            }
            out.push_str(&text[at..s]);
            out.push_str(&wrap(&text[s..e], anchor));
            self.used.insert(anchor);
            at = e;
        }
        out.push_str(&text[at..]);
        out
    }
}

fn md_link(term: &str, _anchor: &str) -> String {
    format!("[{term}](#annex-glossary)")
}

fn html_link(term: &str, anchor: &str) -> String {
    format!("<a href=\"#g-{anchor}\">{term}</a>")
}

/// Renders Markdown (figures become a pointer to the HTML report).
pub fn markdown(doc: &ReportDoc) -> String {
    let mut out = format!("# {}\n", doc.title);
    let mut linker = Linker::new(doc);
    for s in &doc.sections {
        out.push_str(&format!("\n## {}\n\n", s.title));
        let glossary = s.title == super::summary::GLOSSARY_TITLE;
        let mut link = |t: &str| {
            if glossary {
                t.to_owned()
            } else {
                linker.link(t, &md_link)
            }
        };
        for b in &s.blocks {
            match b {
                Block::Para(p) => out.push_str(&format!("{}\n\n", link(p))),
                Block::List(items) => {
                    for i in items {
                        out.push_str(&format!("- {}\n", link(i)));
                    }
                    out.push('\n');
                }
                Block::Table { header, rows } => {
                    out.push_str(&format!(
                        "| {} |\n",
                        header
                            .iter()
                            .map(|h| md_cell(h))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ));
                    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
                    for r in rows {
                        out.push_str(&format!(
                            "| {} |\n",
                            r.iter()
                                .map(|c| link(&md_cell(c)))
                                .collect::<Vec<_>>()
                                .join(" | ")
                        ));
                    }
                    out.push('\n');
                }
                Block::Code(text) => out.push_str(&format!("```text\n{text}\n```\n\n")),
                Block::Figure { caption, .. } => {
                    out.push_str(&format!("*Figure: {caption} (see report.html).*\n\n"))
                }
            }
        }
    }
    out
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
h1{font-size:1.6em;border-bottom:2px solid #2c3e50;padding-bottom:.3em}h2{font-size:1.25em;margin-top:1.8em;color:#2c3e50}\
table{border-collapse:collapse;margin:.6em 0;font-size:.9em;width:100%}th,td{border:1px solid #ccd;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#eef1f5}tr:nth-child(even) td{background:#fafbfc}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}\
td.fail{color:#b03a2e;font-weight:bold}footer{margin-top:3em;font-size:.8em;color:#777}\
pre{background:#f4f6f8;padding:.6em .8em;font-size:.8em;white-space:pre-wrap;word-break:break-word}\
nav{font-size:.9em;columns:2;margin:1em 0 2em}nav ol{margin:0}svg{max-width:100%;height:auto}\
@media print{body{max-width:none;margin:0;font-size:10pt}nav{display:none}h2{break-after:avoid}table,figure,pre{break-inside:avoid}a{color:inherit;text-decoration:none}}";

/// Renders a self-contained HTML page (inline CSS and SVG, no external resources).
pub fn html(doc: &ReportDoc) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    out.push_str(&format!(
        "<title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&doc.title)
    ));
    out.push_str(&format!("<h1>{}</h1>\n", esc(&doc.title)));
    out.push_str("<nav><strong>Contents</strong><ol>");
    for (i, s) in doc.sections.iter().enumerate() {
        out.push_str(&format!(
            "<li><a href=\"#s{}\">{}</a></li>",
            i + 1,
            esc(&s.title)
        ));
    }
    out.push_str("</ol></nav>\n");
    let mut linker = Linker::new(doc);
    for (i, s) in doc.sections.iter().enumerate() {
        out.push_str(&format!("<h2 id=\"s{}\">{}</h2>\n", i + 1, esc(&s.title)));
        let glossary = s.title == super::summary::GLOSSARY_TITLE;
        let mut link = |t: &str| {
            if glossary {
                esc(t)
            } else {
                linker.link(&esc(t), &html_link)
            }
        };
        for b in &s.blocks {
            match b {
                Block::Para(p) => out.push_str(&format!("<p>{}</p>\n", link(p))),
                Block::List(items) => {
                    out.push_str("<ul>");
                    for i in items {
                        out.push_str(&format!("<li>{}</li>", link(i)));
                    }
                    out.push_str("</ul>\n");
                }
                Block::Table { header, rows } => {
                    out.push_str("<table><thead><tr>");
                    for h in header {
                        out.push_str(&format!("<th>{}</th>", esc(h)));
                    }
                    out.push_str("</tr></thead><tbody>");
                    for r in rows {
                        out.push_str("<tr>");
                        for (j, c) in r.iter().enumerate() {
                            let class = if c.starts_with("FAIL") {
                                " class=\"fail\""
                            } else {
                                ""
                            };
                            // The glossary's terms are the links' targets.
                            let id = super::summary::GLOSSARY
                                .iter()
                                .find(|g| glossary && j == 0 && g.0 == c)
                                .map_or(String::new(), |g| format!(" id=\"g-{}\"", g.1));
                            out.push_str(&format!("<td{class}{id}>{}</td>", link(c)));
                        }
                        out.push_str("</tr>");
                    }
                    out.push_str("</tbody></table>\n");
                }
                Block::Code(text) => out.push_str(&format!("<pre>{}</pre>\n", esc(text))),
                Block::Figure { figure, caption } => {
                    out.push_str(&format!(
                        "<figure>{}<figcaption>{}</figcaption></figure>\n",
                        super::chart::svg(figure),
                        esc(caption)
                    ));
                }
            }
        }
    }
    out.push_str("<footer>Generated by phiprobe from findings.json; no raw identifier values are shown.</footer>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::doc::Section;

    fn doc() -> ReportDoc {
        ReportDoc {
            title: "t".into(),
            sections: vec![
                Section {
                    title: "Results".into(),
                    blocks: vec![
                        Block::Para("Min-K%++ beats Min-K% here; AUC 0.6 and AUC again.".into()),
                        Block::List(vec!["the lira_online attack, LiRA and Min-K%".into()]),
                    ],
                },
                super::super::summary::glossary(),
            ],
        }
    }

    #[test]
    fn each_glossary_term_links_at_its_first_use_only() {
        let h = html(&doc());
        assert_eq!(h.matches("href=\"#g-auc\"").count(), 1, "{h}");
        assert!(h.contains(
            "<a href=\"#g-min-k-pp\">Min-K%++</a> beats <a href=\"#g-min-k\">Min-K%</a>"
        ));
        assert!(h.contains("the lira_online attack, <a href=\"#g-lira\">LiRA</a>"));
        assert!(h.contains("<td id=\"g-auc\">AUC</td>"));
        let m = markdown(&doc());
        assert_eq!(m.matches("[AUC](#annex-glossary)").count(), 1);
        // Without a glossary there is nothing to link to.
        let mut bare = doc();
        bare.sections.pop();
        assert!(!html(&bare).contains("href=\"#g-"));
    }
}
