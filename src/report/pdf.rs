//! `report.pdf`, written by phiprobe itself (no external program): A4 pages with the report's
//! headings, paragraphs, lists, tables (header rows repeated across pages), preformatted
//! blocks and the figures as vector graphics, a bookmark per section, and a footer with the
//! run id and "page i of n" on every page.
//!
//! Text is set in DejaVu Sans (Bitstream Vera licence, `assets/fonts/LICENSE`), embedded whole
//! and unmodified as a CIDFontType2 font with Identity-H encoding and a ToUnicode map, so every
//! character of the report (ε, ≤, –) prints and text extraction (`pdftotext`) returns the
//! report's words. The PDF objects, content streams, cross-reference table and font
//! dictionaries are written with `pdf-writer`; this module is the small layout engine above it
//! (line breaking, pagination, tables) and the PDF [`Canvas`] that figures are drawn on.

use super::chart::{self, Anchor, Canvas, Figure, Fill, Stroke};
use super::doc::{Block, ReportDoc};
use pdf_writer::types::{
    CidFontType, FontFlags, LineCapStyle, SystemInfo, TextRenderingMode, UnicodeCmap,
};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use std::collections::BTreeMap;

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

    /// The string operand of `s` (2-byte glyph ids, Identity-H), recording the glyphs used.
    fn encode(&mut self, s: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(s.len() * 2);
        for c in s.chars() {
            let g = self.glyph(c);
            let c = Self::shown(c);
            let shown = if g == self.fallback && c != '?' {
                '?'
            } else {
                c
            };
            self.used.entry(g).or_insert(shown);
            out.extend_from_slice(&g.to_be_bytes());
        }
        out
    }
}

#[derive(Clone, Copy, PartialEq)]
struct Rgb(f64, f64, f64);

impl From<chart::Rgb> for Rgb {
    fn from(c: chart::Rgb) -> Self {
        Self(
            f64::from(c.0) / 255.0,
            f64::from(c.1) / 255.0,
            f64::from(c.2) / 255.0,
        )
    }
}

const BLACK: Rgb = Rgb(0.13, 0.13, 0.13);
const HEAD: Rgb = Rgb(0.17, 0.24, 0.31);
const GREY: Rgb = Rgb(0.4, 0.4, 0.4);
const FAIL: Rgb = Rgb(0.69, 0.23, 0.18);
const FOOTER: Rgb = Rgb(0.45, 0.45, 0.45);
const F1: Name<'static> = Name(b"F1");

/// A bookmark: title, page index, y on the page.
struct Mark {
    title: String,
    page: usize,
    y: f64,
}

struct Layout {
    font: Font,
    pages: Vec<Content>,
    cur: Content,
    y: f64,
    /// Graphics-state names by opacity (in thousandths).
    alphas: BTreeMap<u32, String>,
    marks: Vec<Mark>,
}

impl Layout {
    fn new() -> Result<Self, String> {
        Ok(Self {
            font: Font::new()?,
            pages: Vec::new(),
            cur: Content::new(),
            y: PAGE_H - MARGIN_TOP,
            alphas: BTreeMap::new(),
            marks: Vec::new(),
        })
    }

    fn width(&self) -> f64 {
        PAGE_W - 2.0 * MARGIN_X
    }

    fn new_page(&mut self) {
        let done = std::mem::replace(&mut self.cur, Content::new());
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
        let glyphs = self.font.encode(s);
        show(
            &mut self.cur,
            &glyphs,
            [1.0, 0.0, 0.0, 1.0, x, y],
            size,
            color,
            bold,
        );
    }

    fn fill_rect(&mut self, x: f64, y: f64, w: f64, h: f64, color: Rgb) {
        let Rgb(r, g, b) = color;
        self.cur
            .set_fill_rgb(r as f32, g as f32, b as f32)
            .rect(x as f32, y as f32, w as f32, h as f32)
            .fill_nonzero();
    }

    fn stroke_rect(&mut self, x: f64, y: f64, w: f64, h: f64) {
        self.cur
            .set_stroke_rgb(0.78, 0.8, 0.85)
            .set_line_width(0.4)
            .set_dash_pattern([], 0.0)
            .rect(x as f32, y as f32, w as f32, h as f32)
            .stroke();
    }

    fn rule(&mut self, y: f64) {
        let Rgb(r, g, b) = HEAD;
        self.cur
            .set_stroke_rgb(r as f32, g as f32, b as f32)
            .set_line_width(0.6)
            .set_dash_pattern([], 0.0)
            .move_to(MARGIN_X as f32, y as f32)
            .line_to((PAGE_W - MARGIN_X) as f32, y as f32)
            .stroke();
    }

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
        self.rule(self.y + size * 0.7);
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

    /// The graphics-state name that sets opacity `a` for fills and strokes.
    fn alpha(&mut self, a: f64) -> String {
        let key = (a.clamp(0.0, 1.0) * 1000.0).round() as u32;
        let next = format!("GS{}", self.alphas.len());
        self.alphas.entry(key).or_insert(next).clone()
    }

    /// Draws `fig` at the current position, scaled to the text width (or 42 % of the page
    /// height), with its caption below.
    fn figure(&mut self, fig: &Figure, caption: &str) {
        let scale = (self.width() / fig.width).min(PAGE_H * 0.42 / fig.height);
        let h = fig.height * scale;
        self.need(h + 30.0);
        let x0 = MARGIN_X + (self.width() - fig.width * scale) / 2.0;
        let top = self.y - 4.0;
        let mut canvas = PdfCanvas {
            l: self,
            scale,
            x0,
            top,
        };
        chart::draw(fig, &mut canvas);
        self.y = top - h - 2.0;
        self.paragraph(caption, SMALL, 0.0, GREY);
    }
}

/// Shows glyph string `glyphs` with text matrix `m`.
fn show(c: &mut Content, glyphs: &[u8], m: [f64; 6], size: f64, color: Rgb, bold: bool) {
    let Rgb(r, g, b) = color;
    c.begin_text()
        .set_font(F1, size as f32)
        .set_fill_rgb(r as f32, g as f32, b as f32)
        .set_stroke_rgb(r as f32, g as f32, b as f32);
    // The rendering mode is graphics state: it outlasts ET, so every text sets it.
    if bold {
        c.set_text_rendering_mode(TextRenderingMode::FillStroke)
            .set_line_width(0.3);
    } else {
        c.set_text_rendering_mode(TextRenderingMode::Fill);
    }
    c.set_text_matrix(m.map(|v| v as f32))
        .show(Str(glyphs))
        .end_text();
}

/// A figure's canvas on a page: figure units scaled by `scale`, the figure's top-left corner at
/// (`x0`, `top`) in page coordinates (y upwards).
struct PdfCanvas<'a> {
    l: &'a mut Layout,
    scale: f64,
    x0: f64,
    top: f64,
}

impl PdfCanvas<'_> {
    fn at(&self, (x, y): (f64, f64)) -> (f32, f32) {
        (
            (self.x0 + x * self.scale) as f32,
            (self.top - y * self.scale) as f32,
        )
    }

    /// Wraps `draw` in a graphics state with opacity `alpha` (when below 1).
    fn with_alpha(&mut self, alpha: f64, draw: impl FnOnce(&mut Content)) {
        if alpha < 1.0 {
            let gs = self.l.alpha(alpha);
            self.l.cur.save_state();
            self.l.cur.set_parameters(Name(gs.as_bytes()));
            draw(&mut self.l.cur);
            self.l.cur.restore_state();
        } else {
            draw(&mut self.l.cur);
        }
    }

    fn set_fill(c: &mut Content, f: Fill) {
        let Rgb(r, g, b) = f.colour.into();
        c.set_fill_rgb(r as f32, g as f32, b as f32);
    }

    fn set_stroke(c: &mut Content, s: Stroke, scale: f64) {
        let Rgb(r, g, b) = s.colour.into();
        c.set_stroke_rgb(r as f32, g as f32, b as f32)
            .set_line_width((s.width * scale) as f32)
            .set_line_cap(LineCapStyle::ButtCap);
        if s.dashed {
            c.set_dash_pattern([(6.0 * scale) as f32, (4.0 * scale) as f32], 0.0);
        } else {
            c.set_dash_pattern([], 0.0);
        }
    }
}

impl Canvas for PdfCanvas<'_> {
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Option<Fill>, stroke: Option<Stroke>) {
        let (px, py) = self.at((x, y + h));
        let (pw, ph) = ((w * self.scale) as f32, (h * self.scale) as f32);
        if let Some(f) = fill {
            self.with_alpha(f.alpha, |c| {
                Self::set_fill(c, f);
                c.rect(px, py, pw, ph).fill_nonzero();
            });
        }
        if let Some(s) = stroke {
            let scale = self.scale;
            self.with_alpha(s.alpha, |c| {
                Self::set_stroke(c, s, scale);
                c.rect(px, py, pw, ph).stroke();
            });
        }
    }

    fn polyline(&mut self, points: &[(f64, f64)], stroke: Stroke) {
        let pts: Vec<(f32, f32)> = points.iter().map(|p| self.at(*p)).collect();
        let Some((first, rest)) = pts.split_first() else {
            return;
        };
        let scale = self.scale;
        self.with_alpha(stroke.alpha, |c| {
            Self::set_stroke(c, stroke, scale);
            c.move_to(first.0, first.1);
            for p in rest {
                c.line_to(p.0, p.1);
            }
            c.stroke();
        });
    }

    fn polygon(&mut self, points: &[(f64, f64)], fill: Fill) {
        let pts: Vec<(f32, f32)> = points.iter().map(|p| self.at(*p)).collect();
        let Some((first, rest)) = pts.split_first() else {
            return;
        };
        self.with_alpha(fill.alpha, |c| {
            Self::set_fill(c, fill);
            c.move_to(first.0, first.1);
            for p in rest {
                c.line_to(p.0, p.1);
            }
            c.close_path().fill_nonzero();
        });
    }

    fn circle(&mut self, centre: (f64, f64), r: f64, fill: Fill) {
        let (cx, cy) = self.at(centre);
        let r = (r * self.scale) as f32;
        // Four cubic Béziers; 0.5523 places the control points on the tangents.
        let k = 0.552_284_8 * r;
        self.with_alpha(fill.alpha, |c| {
            Self::set_fill(c, fill);
            c.move_to(cx + r, cy)
                .cubic_to(cx + r, cy + k, cx + k, cy + r, cx, cy + r)
                .cubic_to(cx - k, cy + r, cx - r, cy + k, cx - r, cy)
                .cubic_to(cx - r, cy - k, cx - k, cy - r, cx, cy - r)
                .cubic_to(cx + k, cy - r, cx + r, cy - k, cx + r, cy)
                .close_path()
                .fill_nonzero();
        });
    }

    fn text(&mut self, at: (f64, f64), s: &str, size: f64, anchor: Anchor, vertical: bool) {
        let size = size * self.scale;
        let w = self.l.font.width(s, size);
        let shift = match anchor {
            Anchor::Start => 0.0,
            Anchor::Middle => w / 2.0,
            Anchor::End => w,
        };
        let (x, y) = self.at(at);
        let (x, y) = (f64::from(x), f64::from(y));
        // Vertical text reads bottom to top: the text direction is +y on the page.
        let m = if vertical {
            [0.0, 1.0, -1.0, 0.0, x, y - shift]
        } else {
            [1.0, 0.0, 0.0, 1.0, x - shift, y]
        };
        let glyphs = self.l.font.encode(s);
        show(&mut self.l.cur, &glyphs, m, size, BLACK, false);
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
                Block::Figure { figure, caption } => l.figure(figure, caption),
            }
        }
    }
    l.new_page();
    let n = l.pages.len();
    let mut pages = std::mem::take(&mut l.pages);
    for (i, p) in pages.iter_mut().enumerate() {
        let label = format!("page {} of {n}", i + 1);
        let w = l.font.width(&label, SMALL);
        let at_left = [1.0, 0.0, 0.0, 1.0, MARGIN_X, 30.0];
        show(p, &l.font.encode(footer), at_left, SMALL, FOOTER, false);
        let at_right = [1.0, 0.0, 0.0, 1.0, PAGE_W - MARGIN_X - w, 30.0];
        show(p, &l.font.encode(&label), at_right, SMALL, FOOTER, false);
    }
    let pages: Vec<Vec<u8>> = pages.into_iter().map(|p| p.finish().to_vec()).collect();
    Ok(assemble(&l, &pages, &doc.title))
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(bytes);
    e.finish().unwrap_or_default()
}

/// Numbers objects in the order they are allocated.
struct Ids(i32);

impl Ids {
    fn next(&mut self) -> Ref {
        self.0 += 1;
        Ref::new(self.0)
    }
}

/// Writes the font objects (Type0 → CIDFontType2 → descriptor → font file, and the ToUnicode
/// map) for the glyphs `font` has used.
fn write_font(pdf: &mut Pdf, ids: &mut Ids, font: &Font, type0: Ref) {
    let (cid, descriptor, file, cmap) = (ids.next(), ids.next(), ids.next(), ids.next());
    let base = Name(b"DejaVuSans");
    pdf.type0_font(type0)
        .base_font(base)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid)
        .to_unicode(cmap);
    let info = SystemInfo {
        registry: Str(b"Adobe"),
        ordering: Str(b"Identity"),
        supplement: 0,
    };
    let mut c = pdf.cid_font(cid);
    c.subtype(CidFontType::Type2)
        .base_font(base)
        .system_info(info)
        .font_descriptor(descriptor)
        .default_width(600.0)
        .cid_to_gid_map_predefined(Name(b"Identity"));
    let mut w = c.widths();
    for g in font.used.keys() {
        w.consecutive(*g, [(font.advance(*g) * 1000.0).round() as f32]);
    }
    w.finish();
    c.finish();
    let face = &font.face;
    let s = (1000.0 / font.upem) as f32;
    let bb = face.global_bounding_box();
    pdf.font_descriptor(descriptor)
        .name(base)
        .flags(FontFlags::NON_SYMBOLIC)
        .bbox(Rect::new(
            f32::from(bb.x_min) * s,
            f32::from(bb.y_min) * s,
            f32::from(bb.x_max) * s,
            f32::from(bb.y_max) * s,
        ))
        .italic_angle(0.0)
        .ascent(f32::from(face.ascender()) * s)
        .descent(f32::from(face.descender()) * s)
        .cap_height(f32::from(face.capital_height().unwrap_or(face.ascender())) * s)
        .stem_v(80.0)
        .font_file2(file);
    let packed = deflate(FONT);
    pdf.stream(file, &packed)
        .filter(Filter::FlateDecode)
        .pair(Name(b"Length1"), FONT.len() as i32);
    let ucs = SystemInfo {
        registry: Str(b"Adobe"),
        ordering: Str(b"UCS"),
        supplement: 0,
    };
    let mut map = UnicodeCmap::new(Name(b"Adobe-Identity-UCS"), ucs);
    for (g, ch) in &font.used {
        map.pair(*g, *ch);
    }
    let map = deflate(&map.finish());
    pdf.cmap(cmap, &map).filter(Filter::FlateDecode);
}

/// Serialises the document: catalog, page tree, font, resources, pages, bookmarks and info.
fn assemble(l: &Layout, pages: &[Vec<u8>], title: &str) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let mut ids = Ids(0);
    let (catalog, tree, font, info) = (ids.next(), ids.next(), ids.next(), ids.next());
    let outline = (!l.marks.is_empty()).then(|| ids.next());
    write_font(&mut pdf, &mut ids, &l.font, font);
    let page_ids: Vec<(Ref, Ref)> = pages.iter().map(|_| (ids.next(), ids.next())).collect();
    // One graphics state per opacity used, shared by every page.
    let states: Vec<(&str, Ref)> = l
        .alphas
        .iter()
        .map(|(key, name)| {
            let id = ids.next();
            let a = *key as f32 / 1000.0;
            pdf.ext_graphics(id).non_stroking_alpha(a).stroking_alpha(a);
            (name.as_str(), id)
        })
        .collect();
    let mut cat = pdf.catalog(catalog);
    cat.pages(tree);
    if let Some(o) = outline {
        cat.outlines(o)
            .page_mode(pdf_writer::types::PageMode::UseOutlines);
    }
    cat.finish();
    pdf.pages(tree)
        .kids(page_ids.iter().map(|p| p.0))
        .count(page_ids.len() as i32);
    for ((page, content), bytes) in page_ids.iter().zip(pages) {
        let mut p = pdf.page(*page);
        p.parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE_W as f32, PAGE_H as f32))
            .contents(*content);
        let mut res = p.resources();
        res.fonts().pair(F1, font);
        let mut gs = res.ext_g_states();
        for (name, id) in &states {
            gs.pair(Name(name.as_bytes()), *id);
        }
        gs.finish();
        res.finish();
        p.finish();
        pdf.stream(*content, &deflate(bytes))
            .filter(Filter::FlateDecode);
    }
    if let Some(o) = outline {
        let items: Vec<Ref> = l.marks.iter().map(|_| ids.next()).collect();
        let mut out = pdf.outline(o);
        if let (Some(first), Some(last)) = (items.first(), items.last()) {
            out.first(*first).last(*last);
        }
        out.count(items.len() as i32);
        out.finish();
        for (i, m) in l.marks.iter().enumerate() {
            let mut item = pdf.outline_item(items[i]);
            item.title(TextStr(&m.title)).parent(o);
            if i > 0 {
                item.prev(items[i - 1]);
            }
            if let Some(next) = items.get(i + 1) {
                item.next(*next);
            }
            let page = page_ids[m.page.min(page_ids.len().saturating_sub(1))].0;
            item.dest().page(page).xyz(0.0, (m.y + 14.0) as f32, None);
        }
    }
    pdf.document_info(info)
        .title(TextStr(title))
        .producer(TextStr(&format!("phiprobe {}", env!("CARGO_PKG_VERSION"))));
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::chart::{Axis, BLACK, Marker, RISKY};
    use crate::report::doc::Section;

    fn figure() -> Figure {
        let mut f = Figure::new(
            "a & b",
            (300.0, 200.0),
            Axis::linear("x", 0.0, 1.0),
            Axis::linear("y", 0.0, 1.0),
        );
        f.rect((0.1, 0.0), (0.3, 0.5), RISKY.alpha(0.5))
            .line(vec![(0.0, 0.0), (1.0, 1.0)], BLACK.stroke(1.0).dashed())
            .markers(vec![(0.5, 0.5)], Marker::Circle, 3.0, RISKY.fill());
        f
    }

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
                        rows: (0..120)
                            .map(|i| vec![i.to_string(), "FAIL x".into()])
                            .collect(),
                    },
                    Block::Figure {
                        figure: Box::new(figure()),
                        caption: "cap".into(),
                    },
                ],
            }],
        };
        let pdf = render(&doc, "run-1").unwrap();
        assert!(pdf.starts_with(b"%PDF-1.7"));
        assert!(pdf.ends_with(b"%%EOF"));
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
        assert!(pages.matches("/Type /Page\n").count() >= 3, "several pages");
    }
}
