//! `report.pdf`, written by phiprobe itself (no external program): A4 pages with the report's
//! headings, paragraphs, lists, tables (header rows repeated across pages), preformatted
//! blocks and the figures as vector graphics, a bookmark per section, and a footer with the
//! run id and "page i of n" on every page.
//!
//! Text is set in DejaVu Sans (Bitstream Vera licence, `assets/fonts/LICENSE`), embedded whole
//! and unmodified as a CIDFontType2 font with Identity-H encoding and a ToUnicode map, so every
//! character of the report (ε, ≤, –) prints and text extraction (`pdftotext`) returns the
//! report's words. Figures are plotters' SVG, translated element by element (rect, line,
//! polyline, polygon, circle, text) into PDF drawing operators.

use super::doc::{Block, ReportDoc};
use std::collections::BTreeMap;
use std::fmt::Write as _;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const PAGE_W: f64 = 595.28;
const PAGE_H: f64 = 841.89;
const MARGIN_X: f64 = 56.0;
const MARGIN_TOP: f64 = 60.0;
const MARGIN_BOTTOM: f64 = 62.0;
const BODY: f64 = 9.5;
const SMALL: f64 = 7.2;
const CODE: f64 = 6.8;

/// Glyph lookups and metrics of the embedded font, and the glyphs used (for the width array
/// and the ToUnicode map).
struct Font {
    face: ttf_parser::Face<'static>,
    upem: f64,
    fallback: u16,
    gid: BTreeMap<char, u16>,
    used: BTreeMap<u16, char>,
}

impl Font {
    fn new() -> Result<Self, String> {
        let face = ttf_parser::Face::parse(FONT, 0).map_err(|e| format!("embedded font: {e}"))?;
        let upem = f64::from(face.units_per_em());
        let fallback = face.glyph_index('?').map_or(0, |g| g.0);
        Ok(Self {
            face,
            upem,
            fallback,
            gid: BTreeMap::new(),
            used: BTreeMap::new(),
        })
    }

    /// The character actually set: tabs and control characters become spaces.
    fn shown(c: char) -> char {
        if c == '\t' || c.is_control() { ' ' } else { c }
    }

    fn glyph(&mut self, c: char) -> u16 {
        let c = Self::shown(c);
        if let Some(&g) = self.gid.get(&c) {
            return g;
        }
        let g = self.face.glyph_index(c).map_or(self.fallback, |g| g.0);
        self.gid.insert(c, g);
        g
    }

    fn advance(&self, g: u16) -> f64 {
        f64::from(
            self.face
                .glyph_hor_advance(ttf_parser::GlyphId(g))
                .unwrap_or(0),
        ) / self.upem
    }

    /// Width of `s` at `size` points.
    fn width(&mut self, s: &str, size: f64) -> f64 {
        s.chars()
            .map(|c| {
                let g = self.glyph(c);
                self.advance(g)
            })
            .sum::<f64>()
            * size
    }

    /// The hex string operand of `s` (2-byte glyph ids), recording the glyphs used.
    fn encode(&mut self, s: &str) -> String {
        let mut out = String::with_capacity(s.len() * 4 + 2);
        out.push('<');
        for c in s.chars() {
            let g = self.glyph(c);
            let c = Self::shown(c);
            let shown = if g == self.fallback && c != '?' {
                '?'
            } else {
                c
            };
            self.used.entry(g).or_insert(shown);
            let _ = write!(out, "{g:04X}");
        }
        out.push('>');
        out
    }
}

#[derive(Clone, Copy, PartialEq)]
struct Rgb(f64, f64, f64);

const BLACK: Rgb = Rgb(0.13, 0.13, 0.13);
const HEAD: Rgb = Rgb(0.17, 0.24, 0.31);
const GREY: Rgb = Rgb(0.4, 0.4, 0.4);
const FAIL: Rgb = Rgb(0.69, 0.23, 0.18);

fn f(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

/// A bookmark: title, page index, y on the page.
struct Mark {
    title: String,
    page: usize,
    y: f64,
}

struct Layout {
    font: Font,
    pages: Vec<String>,
    cur: String,
    y: f64,
    alphas: BTreeMap<u32, String>,
    marks: Vec<Mark>,
}

impl Layout {
    fn new() -> Result<Self, String> {
        Ok(Self {
            font: Font::new()?,
            pages: Vec::new(),
            cur: String::new(),
            y: PAGE_H - MARGIN_TOP,
            alphas: BTreeMap::new(),
            marks: Vec::new(),
        })
    }

    fn width(&self) -> f64 {
        PAGE_W - 2.0 * MARGIN_X
    }

    fn new_page(&mut self) {
        let done = std::mem::take(&mut self.cur);
        self.pages.push(done);
        self.y = PAGE_H - MARGIN_TOP;
    }

    /// Starts a new page unless `h` points fit.
    fn need(&mut self, h: f64) {
        if self.y - h < MARGIN_BOTTOM {
            self.new_page();
        }
    }

    fn text(&mut self, x: f64, y: f64, s: &str, size: f64, color: Rgb, bold: bool) {
        let hex = self.font.encode(s);
        let Rgb(r, g, b) = color;
        // The rendering mode is graphics state: it outlasts ET, so every text sets it.
        let bold_ops = if bold { " 2 Tr 0.3 w" } else { " 0 Tr" };
        let _ = writeln!(
            self.cur,
            "BT /F1 {} Tf {} {} {} rg {} {} {} RG{bold_ops} 1 0 0 1 {} {} Tm {hex} Tj ET",
            f(size),
            f(r),
            f(g),
            f(b),
            f(r),
            f(g),
            f(b),
            f(x),
            f(y)
        );
    }

    fn fill_rect(&mut self, x: f64, y: f64, w: f64, h: f64, color: Rgb) {
        let Rgb(r, g, b) = color;
        let _ = writeln!(
            self.cur,
            "{} {} {} rg {} {} {} {} re f",
            f(r),
            f(g),
            f(b),
            f(x),
            f(y),
            f(w),
            f(h)
        );
    }

    fn stroke_rect(&mut self, x: f64, y: f64, w: f64, h: f64) {
        let _ = writeln!(
            self.cur,
            "0.78 0.8 0.85 RG 0.4 w {} {} {} {} re S",
            f(x),
            f(y),
            f(w),
            f(h)
        );
    }

    /// Greedy line breaking of `s` into lines no wider than `w` (a word longer than a line
    /// is broken between characters).
    fn wrap(&mut self, s: &str, size: f64, w: f64) -> Vec<String> {
        let mut lines = Vec::new();
        for para in s.split('\n') {
            let mut line = String::new();
            let mut lw = 0.0;
            let space = self.font.width(" ", size);
            for word in para.split_whitespace() {
                let ww = self.font.width(word, size);
                if !line.is_empty() && lw + space + ww <= w {
                    line.push(' ');
                    line.push_str(word);
                    lw += space + ww;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                if ww <= w {
                    line.push_str(word);
                    lw = ww;
                } else {
                    let mut piece = String::new();
                    let mut pw = 0.0;
                    for c in word.chars() {
                        let cw = self.font.width(c.encode_utf8(&mut [0; 4]), size);
                        if pw + cw > w && !piece.is_empty() {
                            lines.push(std::mem::take(&mut piece));
                            pw = 0.0;
                        }
                        piece.push(c);
                        pw += cw;
                    }
                    line = piece;
                    lw = pw;
                }
            }
            lines.push(line);
        }
        lines
    }

    fn paragraph(&mut self, s: &str, size: f64, indent: f64, color: Rgb) {
        let lead = size * 1.38;
        let lines = self.wrap(s, size, self.width() - indent);
        for l in lines {
            self.need(lead);
            self.y -= lead;
            self.text(
                MARGIN_X + indent,
                self.y + size * 0.25,
                &l,
                size,
                color,
                false,
            );
        }
        self.y -= size * 0.55;
    }

    fn heading(&mut self, s: &str, size: f64) {
        self.need(size * 2.2 + 60.0);
        self.y -= size * 1.5;
        self.marks.push(Mark {
            title: s.to_owned(),
            page: self.pages.len(),
            y: self.y + size * 1.5,
        });
        for l in self.wrap(s, size, self.width()) {
            self.text(MARGIN_X, self.y, &l, size, HEAD, true);
            self.y -= size * 1.3;
        }
        let _ = writeln!(
            self.cur,
            "0.17 0.24 0.31 RG 0.6 w {} {} m {} {} l S",
            f(MARGIN_X),
            f(self.y + size * 0.7),
            f(PAGE_W - MARGIN_X),
            f(self.y + size * 0.7)
        );
        self.y -= size * 0.2;
    }

    fn list(&mut self, items: &[String]) {
        for i in items {
            let lead = BODY * 1.38;
            self.need(lead);
            self.text(
                MARGIN_X + 4.0,
                self.y - lead + BODY * 0.25,
                "•",
                BODY,
                BLACK,
                false,
            );
            let lines = self.wrap(i, BODY, self.width() - 16.0);
            for l in lines {
                self.need(lead);
                self.y -= lead;
                self.text(
                    MARGIN_X + 16.0,
                    self.y + BODY * 0.25,
                    &l,
                    BODY,
                    BLACK,
                    false,
                );
            }
            self.y -= 1.5;
        }
        self.y -= BODY * 0.5;
    }

    fn code(&mut self, s: &str) {
        let lead = CODE * 1.3;
        let lines: Vec<String> = s
            .lines()
            .flat_map(|l| {
                let indent = l.len() - l.trim_start().len();
                let wrapped = self.wrap(l, CODE, self.width() - 12.0 - indent as f64 * 3.0);
                wrapped
                    .into_iter()
                    .map(move |w| format!("{}{w}", " ".repeat(indent)))
                    .collect::<Vec<_>>()
            })
            .collect();
        for l in lines {
            self.need(lead);
            self.fill_rect(
                MARGIN_X,
                self.y - lead,
                self.width(),
                lead,
                Rgb(0.96, 0.97, 0.98),
            );
            self.y -= lead;
            let indent = l.len() - l.trim_start().len();
            self.text(
                MARGIN_X + 6.0 + indent as f64 * CODE * 0.32,
                self.y + CODE * 0.3,
                l.trim_start(),
                CODE,
                BLACK,
                false,
            );
        }
        self.y -= BODY * 0.7;
    }

    fn table(&mut self, header: &[String], rows: &[Vec<String>]) {
        let n = header.len().max(1);
        let pad = 3.0;
        let size = if n > 6 { SMALL * 0.9 } else { SMALL };
        let avail = self.width();
        let mut lo = vec![0.0f64; n];
        let mut hi = vec![0.0f64; n];
        for r in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
            for (c, cell) in r.iter().enumerate().take(n) {
                let longest = cell
                    .split_whitespace()
                    .map(|w| self.font.width(w, size))
                    .fold(0.0, f64::max);
                lo[c] = lo[c].max(longest.min(avail / n as f64 * 1.5) + 2.0 * pad);
                hi[c] = hi[c].max(self.font.width(cell, size) + 2.0 * pad);
            }
        }
        let lo_sum: f64 = lo.iter().sum();
        let hi_sum: f64 = hi.iter().sum();
        let widths: Vec<f64> = if hi_sum <= avail {
            hi.iter().map(|h| h * avail / hi_sum).collect()
        } else if lo_sum >= avail {
            lo.iter().map(|l| l * avail / lo_sum).collect()
        } else {
            let extra = avail - lo_sum;
            let spread: f64 = hi.iter().zip(&lo).map(|(h, l)| h - l).sum();
            lo.iter()
                .zip(&hi)
                .map(|(l, h)| l + extra * (h - l) / spread.max(1e-9))
                .collect()
        };
        let lead = size * 1.3;
        let wrap_row = |me: &mut Self, r: &[String]| -> Vec<Vec<String>> {
            (0..n)
                .map(|c| {
                    let cell = r.get(c).map_or("", String::as_str);
                    me.wrap(cell, size, widths[c] - 2.0 * pad)
                })
                .collect()
        };
        let head = wrap_row(self, header);
        let head_h = head.iter().map(Vec::len).max().unwrap_or(1) as f64 * lead + 2.0 * pad;
        let draw_row =
            |me: &mut Self, cells: &[Vec<String>], h: f64, is_head: bool, texts: &[String]| {
                let mut x = MARGIN_X;
                if is_head {
                    me.fill_rect(MARGIN_X, me.y - h, avail, h, Rgb(0.93, 0.95, 0.96));
                }
                for (c, lines) in cells.iter().enumerate() {
                    me.stroke_rect(x, me.y - h, widths[c], h);
                    let fail = texts.get(c).is_some_and(|t| t.starts_with("FAIL"));
                    for (i, l) in lines.iter().enumerate() {
                        let y = me.y - pad - (i as f64 + 1.0) * lead + size * 0.3;
                        me.text(
                            x + pad,
                            y,
                            l,
                            size,
                            if fail { FAIL } else { BLACK },
                            is_head || fail,
                        );
                    }
                    x += widths[c];
                }
                me.y -= h;
            };
        self.need(head_h + lead * 2.0 + 2.0 * pad);
        draw_row(self, &head, head_h, true, header);
        let max_rows =
            ((PAGE_H - MARGIN_TOP - MARGIN_BOTTOM - head_h - 2.0 * pad) / lead).floor() as usize;
        for r in rows {
            let mut cells = wrap_row(self, r);
            for c in &mut cells {
                if c.len() > max_rows {
                    c.truncate(max_rows.saturating_sub(1));
                    c.push("… (continued in findings.json)".into());
                }
            }
            let h = cells.iter().map(Vec::len).max().unwrap_or(1) as f64 * lead + 2.0 * pad;
            if self.y - h < MARGIN_BOTTOM {
                self.new_page();
                draw_row(self, &head, head_h, true, header);
            }
            draw_row(self, &cells, h, false, r);
        }
        self.y -= BODY * 0.8;
    }

    fn alpha(&mut self, a: f64) -> String {
        let key = (a.clamp(0.0, 1.0) * 1000.0).round() as u32;
        let next = format!("GS{}", self.alphas.len());
        self.alphas.entry(key).or_insert(next).clone()
    }

    fn figure(&mut self, svg: &str, caption: &str) -> Result<(), String> {
        let doc = svg::parse(svg)?;
        let scale = (self.width() / doc.width).min(PAGE_H * 0.42 / doc.height);
        let h = doc.height * scale;
        self.need(h + 30.0);
        let x0 = MARGIN_X + (self.width() - doc.width * scale) / 2.0;
        let top = self.y - 4.0;
        let _ = writeln!(
            self.cur,
            "q {} 0 0 {} {} {} cm",
            f(scale),
            f(-scale),
            f(x0),
            f(top)
        );
        for el in &doc.elements {
            self.svg_element(el);
        }
        self.cur.push_str("Q\n");
        self.y = top - h - 2.0;
        self.paragraph(caption, SMALL, 0.0, GREY);
        Ok(())
    }

    fn svg_element(&mut self, el: &svg::Element) {
        use svg::Shape;
        let fill = el.fill.map(|c| (c, self.alpha(el.fill_opacity)));
        let stroke = el.stroke.map(|c| (c, self.alpha(el.stroke_opacity)));
        let set = |me: &mut Self, paint: Option<&(Rgb, String)>, op: &str| {
            if let Some((Rgb(r, g, b), gs)) = paint {
                let _ = write!(me.cur, "/{gs} gs {} {} {} {op} ", f(*r), f(*g), f(*b));
            }
        };
        match &el.shape {
            Shape::Text {
                x,
                y,
                text,
                size,
                anchor,
                dy_em,
                rotate,
            } => {
                let Some((color, gs)) = fill.clone() else {
                    return;
                };
                let w = self.font.width(text, *size);
                let (sin, cos) =
                    rotate.map_or((0.0, 1.0), |(deg, _, _)| deg.to_radians().sin_cos());
                let (mut px, mut py) = (*x, *y);
                if let Some((_, cx, cy)) = rotate {
                    let (dx, dy) = (px - cx, py - cy);
                    px = cx + dx * cos - dy * sin;
                    py = cy + dx * sin + dy * cos;
                }
                let shift = w * anchor;
                px -= shift * cos;
                py -= shift * sin;
                let down = dy_em * size;
                px += -sin * down;
                py += cos * down;
                let hex = self.font.encode(text);
                let Rgb(r, g, b) = color;
                let _ = writeln!(
                    self.cur,
                    "/{gs} gs BT /F1 {} Tf 0 Tr {} {} {} rg {} {} {} {} {} {} Tm {hex} Tj ET",
                    f(*size),
                    f(r),
                    f(g),
                    f(b),
                    f(cos),
                    f(sin),
                    f(sin),
                    f(-cos),
                    f(px),
                    f(py)
                );
            }
            shape => {
                let path = match shape {
                    Shape::Rect { x, y, w, h } => {
                        format!("{} {} {} {} re", f(*x), f(*y), f(*w), f(*h))
                    }
                    Shape::Line(pts) | Shape::Polygon(pts) => {
                        let mut p = String::new();
                        for (i, (x, y)) in pts.iter().enumerate() {
                            let _ = write!(
                                p,
                                "{} {} {} ",
                                f(*x),
                                f(*y),
                                if i == 0 { "m" } else { "l" }
                            );
                        }
                        if matches!(shape, Shape::Polygon(_)) {
                            p.push('h');
                        }
                        p
                    }
                    Shape::Circle { cx, cy, r } => {
                        // Four Bézier quarter arcs (k = 0.5523).
                        let k = 0.5523 * r;
                        format!(
                            "{} {} m {} {} {} {} {} {} c {} {} {} {} {} {} c {} {} {} {} {} {} c {} {} {} {} {} {} c h",
                            f(cx + r),
                            f(*cy),
                            f(cx + r),
                            f(cy + k),
                            f(cx + k),
                            f(cy + r),
                            f(*cx),
                            f(cy + r),
                            f(cx - k),
                            f(cy + r),
                            f(cx - r),
                            f(cy + k),
                            f(cx - r),
                            f(*cy),
                            f(cx - r),
                            f(cy - k),
                            f(cx - k),
                            f(cy - r),
                            f(*cx),
                            f(cy - r),
                            f(cx + k),
                            f(cy - r),
                            f(cx + r),
                            f(cy - k),
                            f(cx + r),
                            f(*cy)
                        )
                    }
                    Shape::Text { .. } => unreachable!("handled above"),
                };
                let is_line = matches!(shape, Shape::Line(_));
                if let Some(fl) = fill.as_ref().filter(|_| !is_line) {
                    set(self, Some(fl), "rg");
                    let _ = writeln!(self.cur, "{path} f");
                }
                if let Some(st) = stroke.as_ref() {
                    set(self, Some(st), "RG");
                    let _ = writeln!(self.cur, "{} w {path} S", f(el.stroke_width));
                }
            }
        }
    }
}

/// Renders the report as PDF bytes; `footer` is printed at the bottom of every page.
pub fn render(doc: &ReportDoc, footer: &str) -> Result<Vec<u8>, String> {
    let mut l = Layout::new()?;
    // Title block.
    l.y -= 10.0;
    for line in l.wrap(&doc.title, 17.0, PAGE_W - 2.0 * MARGIN_X) {
        l.text(MARGIN_X, l.y - 17.0, &line, 17.0, HEAD, true);
        l.y -= 17.0 * 1.35;
    }
    l.y -= 4.0;
    l.paragraph(footer, SMALL, 0.0, GREY);
    for s in &doc.sections {
        l.heading(&s.title, 12.5);
        for b in &s.blocks {
            match b {
                Block::Para(p) => l.paragraph(p, BODY, 0.0, BLACK),
                Block::List(items) => l.list(items),
                Block::Table { header, rows } => l.table(header, rows),
                Block::Code(text) => l.code(text),
                Block::Figure { svg, caption } => {
                    if let Err(e) = l.figure(svg, caption) {
                        l.paragraph(&format!("(figure not drawn: {e})"), SMALL, 0.0, GREY);
                    }
                }
            }
        }
    }
    l.new_page();
    let n = l.pages.len();
    let pages: Vec<String> = std::mem::take(&mut l.pages)
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            let label = format!("page {} of {n}", i + 1);
            let w = l.font.width(&label, SMALL);
            let hex_f = l.font.encode(footer);
            let hex_p = l.font.encode(&label);
            let _ = writeln!(
                p,
                "BT /F1 {s} Tf 0 Tr 0.45 0.45 0.45 rg 1 0 0 1 {} 30 Tm {hex_f} Tj ET\nBT /F1 {s} Tf 0.45 0.45 0.45 rg 1 0 0 1 {} 30 Tm {hex_p} Tj ET",
                f(MARGIN_X),
                f(PAGE_W - MARGIN_X - w),
                s = f(SMALL)
            );
            p
        })
        .collect();
    Ok(assemble(&l, &pages, &doc.title))
}

/// A PDF text string: UTF-16BE with BOM, hex-encoded.
fn pdf_string(s: &str) -> String {
    let mut out = String::from("<FEFF");
    for u in s.encode_utf16() {
        let _ = write!(out, "{u:04X}");
    }
    out.push('>');
    out
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(bytes);
    e.finish().unwrap_or_default()
}

/// Serialises the objects, the cross-reference table and the trailer.
fn assemble(l: &Layout, pages: &[String], title: &str) -> Vec<u8> {
    let mut objs: Vec<Vec<u8>> = Vec::new();
    let mut add = |o: Vec<u8>| {
        objs.push(o);
        objs.len()
    };
    // Fixed object numbers: 1 catalog, 2 pages, 3 font, 4 CID font, 5 descriptor, 6 font file,
    // 7 ToUnicode, 8 resources, 9 info, 10 outlines; then pages and contents, then bookmarks.
    let n_pages = pages.len();
    let first_page = 11;
    let first_mark = first_page + 2 * n_pages;
    let kids: Vec<String> = (0..n_pages)
        .map(|i| format!("{} 0 R", first_page + 2 * i))
        .collect();
    let outlines = if l.marks.is_empty() {
        String::new()
    } else {
        " /Outlines 10 0 R /PageMode /UseOutlines".into()
    };
    add(format!("<< /Type /Catalog /Pages 2 0 R{outlines} >>").into_bytes());
    add(format!(
        "<< /Type /Pages /Kids [{}] /Count {n_pages} >>",
        kids.join(" ")
    )
    .into_bytes());
    add(b"<< /Type /Font /Subtype /Type0 /BaseFont /DejaVuSans /Encoding /Identity-H /DescendantFonts [4 0 R] /ToUnicode 7 0 R >>".to_vec());
    let mut w = String::new();
    for g in l.font.used.keys() {
        let _ = write!(w, "{g} [{}] ", (l.font.advance(*g) * 1000.0).round() as i64);
    }
    add(format!(
        "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /DejaVuSans /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor 5 0 R /DW 600 /W [{w}] /CIDToGIDMap /Identity >>"
    )
    .into_bytes());
    let face = &l.font.face;
    let s = 1000.0 / l.font.upem;
    let bb = face.global_bounding_box();
    add(format!(
        "<< /Type /FontDescriptor /FontName /DejaVuSans /Flags 32 /FontBBox [{} {} {} {}] /ItalicAngle 0 /Ascent {} /Descent {} /CapHeight {} /StemV 80 /FontFile2 6 0 R >>",
        (f64::from(bb.x_min) * s).round(),
        (f64::from(bb.y_min) * s).round(),
        (f64::from(bb.x_max) * s).round(),
        (f64::from(bb.y_max) * s).round(),
        (f64::from(face.ascender()) * s).round(),
        (f64::from(face.descender()) * s).round(),
        (f64::from(face.capital_height().unwrap_or(face.ascender())) * s).round(),
    )
    .into_bytes());
    let font = deflate(FONT);
    let mut o = format!(
        "<< /Length {} /Length1 {} /Filter /FlateDecode >>\nstream\n",
        font.len(),
        FONT.len()
    )
    .into_bytes();
    o.extend_from_slice(&font);
    o.extend_from_slice(b"\nendstream");
    add(o);
    let mut cmap = String::from(
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def /CMapName /Adobe-Identity-UCS def /CMapType 2 def 1 begincodespacerange <0000> <FFFF> endcodespacerange\n",
    );
    let used: Vec<(&u16, &char)> = l.font.used.iter().collect();
    for chunk in used.chunks(100) {
        let _ = writeln!(cmap, "{} beginbfchar", chunk.len());
        for (g, c) in chunk {
            let mut u = String::new();
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = write!(u, "{unit:04X}");
            }
            let _ = writeln!(cmap, "<{g:04X}> <{u}>");
        }
        cmap.push_str("endbfchar\n");
    }
    cmap.push_str("endcmap CMapName currentdict /CMap defineresource pop end end");
    add(stream(cmap.as_bytes()));
    let mut gs = String::new();
    for (key, name) in &l.alphas {
        let a = f64::from(*key) / 1000.0;
        let _ = write!(gs, "/{name} << /ca {} /CA {} >> ", f(a), f(a));
    }
    add(format!("<< /Font << /F1 3 0 R >> /ExtGState << {gs}>> >>").into_bytes());
    add(format!(
        "<< /Title {} /Producer {} >>",
        pdf_string(title),
        pdf_string(&format!("phiprobe {}", env!("CARGO_PKG_VERSION")))
    )
    .into_bytes());
    let n_marks = l.marks.len();
    add(if n_marks == 0 {
        b"<< /Type /Outlines /Count 0 >>".to_vec()
    } else {
        format!(
            "<< /Type /Outlines /First {first_mark} 0 R /Last {} 0 R /Count {n_marks} >>",
            first_mark + n_marks - 1
        )
        .into_bytes()
    });
    for (i, content) in pages.iter().enumerate() {
        let page_obj = first_page + 2 * i;
        add(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Resources 8 0 R /Contents {} 0 R >>",
            f(PAGE_W),
            f(PAGE_H),
            page_obj + 1
        )
        .into_bytes());
        add(stream(content.as_bytes()));
    }
    for (i, m) in l.marks.iter().enumerate() {
        let me = first_mark + i;
        let prev = if i > 0 {
            format!(" /Prev {} 0 R", me - 1)
        } else {
            String::new()
        };
        let next = if i + 1 < n_marks {
            format!(" /Next {} 0 R", me + 1)
        } else {
            String::new()
        };
        add(format!(
            "<< /Title {} /Parent 10 0 R{prev}{next} /Dest [{} 0 R /XYZ 0 {} 0] >>",
            pdf_string(&m.title),
            first_page + 2 * m.page.min(n_pages.saturating_sub(1)),
            f(m.y + 14.0)
        )
        .into_bytes());
    }
    let mut out = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::with_capacity(objs.len());
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    let _ = write!(
        XrefSink(&mut out),
        "xref\n0 {}\n0000000000 65535 f \n",
        objs.len() + 1
    );
    for off in offsets {
        let _ = writeln!(XrefSink(&mut out), "{off:010} 00000 n ");
    }
    let _ = write!(
        XrefSink(&mut out),
        "trailer\n<< /Size {} /Root 1 0 R /Info 9 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objs.len() + 1
    );
    out
}

struct XrefSink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for XrefSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn stream(content: &[u8]) -> Vec<u8> {
    let z = deflate(content);
    let mut o = format!("<< /Length {} /Filter /FlateDecode >>\nstream\n", z.len()).into_bytes();
    o.extend_from_slice(&z);
    o.extend_from_slice(b"\nendstream");
    o
}

/// The subset of SVG that plotters' SVG backend writes.
mod svg {
    use super::Rgb;

    pub(super) enum Shape {
        Rect {
            x: f64,
            y: f64,
            w: f64,
            h: f64,
        },
        Line(Vec<(f64, f64)>),
        Polygon(Vec<(f64, f64)>),
        Circle {
            cx: f64,
            cy: f64,
            r: f64,
        },
        Text {
            x: f64,
            y: f64,
            text: String,
            size: f64,
            /// 0 start, 0.5 middle, 1 end.
            anchor: f64,
            /// Baseline shift in em (down positive).
            dy_em: f64,
            /// (degrees, cx, cy).
            rotate: Option<(f64, f64, f64)>,
        },
    }

    pub(super) struct Element {
        pub shape: Shape,
        pub fill: Option<Rgb>,
        pub stroke: Option<Rgb>,
        pub fill_opacity: f64,
        pub stroke_opacity: f64,
        pub stroke_width: f64,
    }

    pub(super) struct Doc {
        pub width: f64,
        pub height: f64,
        pub elements: Vec<Element>,
    }

    fn attrs(tag: &str) -> Vec<(&str, String)> {
        let mut out = Vec::new();
        let mut rest = tag;
        while let Some(eq) = rest.find("=\"") {
            let name = rest[..eq].trim().rsplit(' ').next().unwrap_or("").trim();
            let after = &rest[eq + 2..];
            let Some(end) = after.find('"') else { break };
            out.push((name, unescape(&after[..end])));
            rest = &after[end + 1..];
        }
        out
    }

    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    }

    fn color(v: &str) -> Result<Option<Rgb>, String> {
        if v == "none" {
            return Ok(None);
        }
        let hex = v
            .strip_prefix('#')
            .filter(|h| h.len() == 6)
            .ok_or_else(|| format!("colour '{v}' not supported"))?;
        let c = |i: usize| {
            u8::from_str_radix(&hex[i..i + 2], 16)
                .map(|b| f64::from(b) / 255.0)
                .map_err(|_| format!("colour '{v}'"))
        };
        Ok(Some(Rgb(c(0)?, c(2)?, c(4)?)))
    }

    fn num(v: &str) -> Result<f64, String> {
        v.trim()
            .trim_end_matches("px")
            .parse()
            .map_err(|_| format!("number '{v}'"))
    }

    fn points(v: &str) -> Result<Vec<(f64, f64)>, String> {
        v.split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').ok_or_else(|| format!("point '{p}'"))?;
                Ok((num(x)?, num(y)?))
            })
            .collect()
    }

    pub(super) fn parse(svg: &str) -> Result<Doc, String> {
        let mut doc = Doc {
            width: 0.0,
            height: 0.0,
            elements: Vec::new(),
        };
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            rest = &rest[start + 1..];
            let end = rest.find('>').ok_or("unterminated tag")?;
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') || tag.starts_with('/') {
                continue;
            }
            let name = tag
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('/');
            let a = attrs(tag);
            let get = |k: &str| a.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
            let n = |k: &str| get(k).map_or(Ok(0.0), num);
            let opacity = get("opacity").map_or(Ok(1.0), num)?;
            let shape = match name {
                "svg" => {
                    doc.width = n("width")?;
                    doc.height = n("height")?;
                    continue;
                }
                // plotters writes no groups; one with attributes would style its children.
                "g" if a.is_empty() => continue,
                "rect" => Shape::Rect {
                    x: n("x")?,
                    y: n("y")?,
                    w: n("width")?,
                    h: n("height")?,
                },
                "line" => Shape::Line(vec![(n("x1")?, n("y1")?), (n("x2")?, n("y2")?)]),
                "polyline" => Shape::Line(points(get("points").unwrap_or(""))?),
                "polygon" => Shape::Polygon(points(get("points").unwrap_or(""))?),
                "circle" => Shape::Circle {
                    cx: n("cx")?,
                    cy: n("cy")?,
                    r: n("r")?,
                },
                "text" => {
                    let close = rest.find("</text>").ok_or("unterminated <text>")?;
                    if rest[..close].contains('<') {
                        return Err("markup inside <text> (tspan) is not supported".into());
                    }
                    let text = unescape(&rest[..close]);
                    rest = &rest[close + 7..];
                    let size = n("font-size")?;
                    let dy_em = match get("dy") {
                        None => 0.0,
                        Some(v) if v.ends_with("em") => num(&v[..v.len() - 2])?,
                        Some(v) if v.ends_with("ex") => num(&v[..v.len() - 2])? * 0.5,
                        Some(v) => num(v)? / size.max(1e-9),
                    };
                    let anchor = match get("text-anchor") {
                        Some("middle") => 0.5,
                        Some("end") => 1.0,
                        _ => 0.0,
                    };
                    let rotate = match get("transform") {
                        None => None,
                        Some(t) => {
                            let inner = t
                                .strip_prefix("rotate(")
                                .and_then(|s| s.strip_suffix(')'))
                                .ok_or_else(|| format!("transform '{t}' not supported"))?;
                            let v: Vec<f64> = inner
                                .split([',', ' '])
                                .filter(|s| !s.is_empty())
                                .map(num)
                                .collect::<Result<_, _>>()?;
                            match v.as_slice() {
                                [d] => Some((*d, 0.0, 0.0)),
                                [d, cx, cy] => Some((*d, *cx, *cy)),
                                _ => return Err(format!("transform '{t}'")),
                            }
                        }
                    };
                    Shape::Text {
                        x: n("x")?,
                        y: n("y")?,
                        text,
                        size,
                        anchor,
                        dy_em,
                        rotate,
                    }
                }
                other => return Err(format!("SVG element <{other}> is not supported")),
            };
            let is_text = matches!(shape, Shape::Text { .. });
            let default_fill = if is_text
                || matches!(
                    shape,
                    Shape::Rect { .. } | Shape::Polygon(_) | Shape::Circle { .. }
                ) {
                "#000000"
            } else {
                "none"
            };
            let fill = color(get("fill").unwrap_or(default_fill))?;
            let stroke = color(get("stroke").unwrap_or("none"))?;
            doc.elements.push(Element {
                shape,
                fill,
                stroke,
                fill_opacity: opacity * get("fill-opacity").map_or(Ok(1.0), num)?,
                stroke_opacity: opacity * get("stroke-opacity").map_or(Ok(1.0), num)?,
                stroke_width: get("stroke-width").map_or(Ok(1.0), num)?,
            });
        }
        if doc.width <= 0.0 || doc.height <= 0.0 {
            return Err("no <svg width height>".into());
        }
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::doc::Section;

    #[test]
    fn a_small_document_is_a_well_formed_pdf() {
        let doc = ReportDoc {
            title: "Test ε ≤ 0.09".into(),
            sections: vec![Section {
                title: "One".into(),
                blocks: vec![
                    Block::Para("Hello world ".repeat(80)),
                    Block::Table {
                        header: vec!["a".into(), "b".into()],
                        rows: (0..120).map(|i| vec![i.to_string(), "FAIL x".into()]).collect(),
                    },
                    Block::Figure {
                        svg: "<svg width=\"100\" height=\"50\" viewBox=\"0 0 100 50\"><rect x=\"0\" y=\"0\" width=\"10\" height=\"5\" opacity=\"0.5\" fill=\"#FF0000\" stroke=\"none\"/><text x=\"5\" y=\"5\" dy=\"0.76em\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"9\" opacity=\"1\" fill=\"#000000\" transform=\"rotate(270, 5, 5)\">a&amp;b</text><circle cx=\"3\" cy=\"3\" r=\"2\" fill=\"#1F77B4\"/><polyline fill=\"none\" stroke=\"#000000\" points=\"0,0 1,1 \"/></svg>".into(),
                        caption: "cap".into(),
                    },
                ],
            }],
        };
        let pdf = render(&doc, "run-1").unwrap();
        assert!(pdf.starts_with(b"%PDF-1.7"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        // The cross-reference offsets point at the objects.
        let pos = |needle: &[u8]| {
            pdf.windows(needle.len())
                .rposition(|w| w == needle)
                .unwrap()
        };
        let sx = pos(b"startxref\n") + 10;
        let tail = std::str::from_utf8(&pdf[sx..]).unwrap();
        let at: usize = tail.lines().next().unwrap().parse().unwrap();
        assert!(pdf[at..].starts_with(b"xref"));
        let table = std::str::from_utf8(&pdf[at..]).unwrap();
        let count: usize = table.lines().nth(1).unwrap()[2..].parse().unwrap();
        for (i, line) in table.lines().skip(3).take(count - 1).enumerate() {
            let off: usize = line[..10].parse().unwrap();
            assert!(
                pdf[off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {}",
                i + 1
            );
        }
        let pages = String::from_utf8_lossy(&pdf);
        assert!(pages.matches("/Type /Page ").count() >= 3, "several pages");
        assert!(svg::parse("<svg width=\"1\" height=\"1\"><path d=\"M0 0\"/></svg>").is_err());
    }
}
