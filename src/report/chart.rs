//! Figures as data. A [`Figure`] is a title, two axes (linear, logarithmic or categorical), the
//! marks to draw in data coordinates (lines, markers, rectangles) and a legend. [`draw`] is the
//! one layout engine: it places the title, ticks, labels, plot area and legend and hands
//! primitives to a [`Canvas`]. Two canvases exist: [`svg`] here (the HTML report) and the PDF
//! writer's (`report::pdf`), so both formats draw the same figure from the same numbers.
//!
//! Coordinates on a canvas are in figure units (the figure's `width` × `height`), origin at the
//! top left, y downwards. Marks are clipped to the plot area by the engine itself, so canvases
//! need no clipping.

use std::fmt::Write as _;

/// A colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// This colour at `alpha` opacity.
    pub fn alpha(self, alpha: f64) -> Fill {
        Fill {
            colour: self,
            alpha,
        }
    }

    /// A solid line of this colour and `width`.
    pub fn stroke(self, width: f64) -> Stroke {
        Stroke {
            colour: self,
            alpha: 1.0,
            width,
            dashed: false,
        }
    }

    /// This colour, opaque.
    pub fn fill(self) -> Fill {
        self.alpha(1.0)
    }
}

/// Black.
pub const BLACK: Rgb = Rgb(0, 0, 0);
/// White.
pub const WHITE: Rgb = Rgb(255, 255, 255);
/// The grey of reference lines drawn from the release alone.
pub const GREY: Rgb = Rgb(150, 150, 150);
/// Red for what is at risk (members, bars over a threshold).
pub const RISKY: Rgb = Rgb(192, 57, 43);
/// Blue for what is not (non-members, bars within a threshold).
pub const SAFE: Rgb = Rgb(41, 128, 185);

/// Series colours shared by every figure (the matplotlib "tab10" order).
pub const PALETTE: [Rgb; 9] = [
    Rgb(31, 119, 180),
    Rgb(255, 127, 14),
    Rgb(44, 160, 44),
    Rgb(214, 39, 40),
    Rgb(148, 103, 189),
    Rgb(140, 86, 75),
    Rgb(227, 119, 194),
    Rgb(127, 127, 127),
    Rgb(188, 189, 34),
];

/// The `i`-th series colour.
pub fn series_colour(i: usize) -> Rgb {
    PALETTE[i % PALETTE.len()]
}

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stroke {
    /// Colour.
    pub colour: Rgb,
    /// Opacity in [0, 1].
    pub alpha: f64,
    /// Width in figure units.
    pub width: f64,
    /// Dashed (6 on, 4 off) rather than solid.
    pub dashed: bool,
}

impl Stroke {
    /// This stroke, dashed.
    pub fn dashed(self) -> Self {
        Self {
            dashed: true,
            ..self
        }
    }

    /// This stroke at `alpha` opacity.
    pub fn alpha(self, alpha: f64) -> Self {
        Self { alpha, ..self }
    }
}

/// How an area is filled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fill {
    /// Colour.
    pub colour: Rgb,
    /// Opacity in [0, 1].
    pub alpha: f64,
}

/// How data values map to positions along an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Proportional.
    Linear,
    /// Proportional to the logarithm (values ≤ 0 sit at the axis' low end).
    Log,
}

/// How tick values are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickFormat {
    /// As many decimals as the tick step needs.
    Plain,
    /// Rounded to whole numbers.
    Integer,
    /// Powers of ten as `1e-3`.
    Exponent,
}

/// One axis: its label, range, scale and ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The axis title.
    pub label: String,
    /// Lowest value shown.
    pub lo: f64,
    /// Highest value shown.
    pub hi: f64,
    /// Linear or logarithmic.
    pub scale: Scale,
    /// How tick values print.
    pub format: TickFormat,
    /// Category names at 0, 1, 2, … (replacing numeric ticks) when not empty.
    pub categories: Vec<String>,
    /// Grid lines at the ticks.
    pub grid: bool,
}

impl Axis {
    /// A linear axis from `lo` to `hi`.
    pub fn linear(label: impl Into<String>, lo: f64, hi: f64) -> Self {
        Self {
            label: label.into(),
            lo,
            hi,
            scale: Scale::Linear,
            format: TickFormat::Plain,
            categories: Vec::new(),
            grid: false,
        }
    }

    /// A logarithmic axis from `lo` to `hi` (both > 0).
    pub fn log(label: impl Into<String>, lo: f64, hi: f64) -> Self {
        Self {
            scale: Scale::Log,
            ..Self::linear(label, lo, hi)
        }
    }

    /// A categorical axis: one band per name, centred on 0, 1, 2, …
    pub fn categories(label: impl Into<String>, names: Vec<String>) -> Self {
        let n = names.len() as f64;
        Self {
            categories: names,
            ..Self::linear(label, -0.5, n - 0.5)
        }
    }

    /// This axis with ticks printed as `format`.
    pub fn format(self, format: TickFormat) -> Self {
        Self { format, ..self }
    }

    /// This axis with grid lines at its ticks.
    pub fn grid(self) -> Self {
        Self { grid: true, ..self }
    }

    fn unit(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => (v - self.lo) / (self.hi - self.lo),
            Scale::Log => {
                let lo = self.lo.max(f64::MIN_POSITIVE).ln();
                let hi = self.hi.max(f64::MIN_POSITIVE).ln();
                (v.max(f64::MIN_POSITIVE).ln() - lo) / (hi - lo)
            }
        }
    }

    /// Tick positions and their labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        if !self.categories.is_empty() {
            return self
                .categories
                .iter()
                .enumerate()
                .map(|(i, c)| (i as f64, c.clone()))
                .collect();
        }
        match self.scale {
            Scale::Linear => linear_ticks(self.lo, self.hi, self.format),
            Scale::Log => log_ticks(self.lo, self.hi, self.format),
        }
    }
}

fn linear_ticks(lo: f64, hi: f64, format: TickFormat) -> Vec<(f64, String)> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return Vec::new();
    }
    let raw = (hi - lo) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let decimals = (-(step.log10().floor())).max(0.0) as usize + usize::from(step / mag == 2.5);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|i| {
            let v = i as f64 * step;
            let label = match format {
                TickFormat::Integer => format!("{v:.0}"),
                TickFormat::Exponent => format!("{v:.0e}"),
                TickFormat::Plain => format!("{v:.decimals$}"),
            };
            (v, if label == "-0" { "0".into() } else { label })
        })
        .collect()
}

fn log_ticks(lo: f64, hi: f64, format: TickFormat) -> Vec<(f64, String)> {
    if !hi.is_finite() || lo <= 0.0 || hi <= lo || lo.is_nan() {
        return Vec::new();
    }
    let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    // Few decades: 2× and 5× as well, so that a short axis still has several ticks.
    let steps: &[f64] = if (hi / lo).log10() <= 2.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut out = Vec::new();
    for d in d0..=d1 {
        for m in steps {
            let v = m * 10f64.powi(d);
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                let label = match format {
                    TickFormat::Exponent => format!("{v:.0e}"),
                    TickFormat::Integer => format!("{v:.0}"),
                    TickFormat::Plain => trim(&format!("{v:.6}")),
                };
                out.push((v, label));
            }
        }
    }
    out
}

fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s.to_owned()
    }
}

/// A marker's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A filled circle.
    Circle,
    /// A filled upward triangle.
    Triangle,
    /// An × (stroked, for points drawn at infinity).
    Cross,
}

/// One thing drawn in data coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// A polyline through `points`.
    Line {
        /// The points, in order.
        points: Vec<(f64, f64)>,
        /// How it is drawn.
        stroke: Stroke,
    },
    /// The same marker at every point.
    Markers {
        /// Centres.
        points: Vec<(f64, f64)>,
        /// Shape.
        marker: Marker,
        /// Radius in figure units.
        size: f64,
        /// Colour.
        fill: Fill,
    },
    /// An axis-aligned rectangle between two corners (a bar).
    Rect {
        /// One corner.
        from: (f64, f64),
        /// The opposite corner.
        to: (f64, f64),
        /// Fill.
        fill: Fill,
    },
}

/// What a legend entry shows beside its label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Key {
    /// A short line.
    Line(Stroke),
    /// A filled square.
    Swatch(Fill),
    /// A marker.
    Marker(Marker, Fill),
}

/// Where the legend sits inside the plot area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    /// Top left.
    UpperLeft,
    /// Top right.
    UpperRight,
    /// Bottom right.
    LowerRight,
}

/// A figure: everything needed to draw it, and nothing drawn yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Title above the plot.
    pub title: String,
    /// Width in figure units (SVG pixels).
    pub width: f64,
    /// Height in figure units.
    pub height: f64,
    /// Horizontal axis.
    pub x: Axis,
    /// Vertical axis.
    pub y: Axis,
    /// Marks, drawn in order.
    pub marks: Vec<Mark>,
    /// Legend entries (none: no legend).
    pub legend: Vec<(String, Key)>,
    /// Where the legend sits.
    pub legend_at: Corner,
}

impl Figure {
    /// An empty figure of `size` with these axes.
    pub fn new(title: impl Into<String>, size: (f64, f64), x: Axis, y: Axis) -> Self {
        Self {
            title: title.into(),
            width: size.0,
            height: size.1,
            x,
            y,
            marks: Vec::new(),
            legend: Vec::new(),
            legend_at: Corner::UpperLeft,
        }
    }

    /// Adds a polyline.
    pub fn line(&mut self, points: Vec<(f64, f64)>, stroke: Stroke) -> &mut Self {
        self.marks.push(Mark::Line { points, stroke });
        self
    }

    /// Adds markers.
    pub fn markers(
        &mut self,
        points: Vec<(f64, f64)>,
        marker: Marker,
        size: f64,
        fill: Fill,
    ) -> &mut Self {
        self.marks.push(Mark::Markers {
            points,
            marker,
            size,
            fill,
        });
        self
    }

    /// Adds a rectangle.
    pub fn rect(&mut self, from: (f64, f64), to: (f64, f64), fill: Fill) -> &mut Self {
        self.marks.push(Mark::Rect { from, to, fill });
        self
    }

    /// Adds a legend entry.
    pub fn key(&mut self, label: impl Into<String>, key: Key) -> &mut Self {
        self.legend.push((label.into(), key));
        self
    }
}

/// Where text is anchored horizontally (along its direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// At its start.
    Start,
    /// At its middle.
    Middle,
    /// At its end.
    End,
}

/// The primitives a figure is drawn with (figure units, y downwards).
pub trait Canvas {
    /// A rectangle with an optional fill and outline.
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Option<Fill>, stroke: Option<Stroke>);
    /// An open polyline.
    fn polyline(&mut self, points: &[(f64, f64)], stroke: Stroke);
    /// A filled polygon.
    fn polygon(&mut self, points: &[(f64, f64)], fill: Fill);
    /// A filled circle.
    fn circle(&mut self, centre: (f64, f64), r: f64, fill: Fill);
    /// Text whose baseline passes through `at`; `vertical` text reads bottom to top.
    fn text(&mut self, at: (f64, f64), s: &str, size: f64, anchor: Anchor, vertical: bool);
}

/// Approximate width of `s` at `size` in a sans-serif face (the engine's one text metric, so
/// both canvases lay a figure out alike).
pub fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.56
}

const MARGIN: f64 = 12.0;
const TITLE: f64 = 17.0;
const LABEL: f64 = 12.0;
const TICK: f64 = 10.5;
const LEGEND: f64 = 11.0;
const FRAME: Rgb = Rgb(90, 90, 90);
const GRID: Rgb = Rgb(225, 225, 225);

/// The plot area in figure units.
#[derive(Clone, Copy)]
struct Area {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Area {
    fn px(&self, fig: &Figure, (x, y): (f64, f64)) -> (f64, f64) {
        (
            self.left + fig.x.unit(x) * (self.right - self.left),
            self.bottom - fig.y.unit(y) * (self.bottom - self.top),
        )
    }

    fn contains(&self, (x, y): (f64, f64)) -> bool {
        x >= self.left - 1e-6
            && x <= self.right + 1e-6
            && y >= self.top - 1e-6
            && y <= self.bottom + 1e-6
    }

    /// The part of segment a–b inside the area (Liang–Barsky), if any.
    fn clip(&self, a: (f64, f64), b: (f64, f64)) -> Option<((f64, f64), (f64, f64))> {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (p, q) in [
            (-dx, a.0 - self.left),
            (dx, self.right - a.0),
            (-dy, a.1 - self.top),
            (dy, self.bottom - a.1),
        ] {
            if p == 0.0 {
                if q < 0.0 {
                    return None;
                }
            } else {
                let t = q / p;
                if p < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
            }
        }
        (t0 <= t1).then_some((
            (a.0 + t0 * dx, a.1 + t0 * dy),
            (a.0 + t1 * dx, a.1 + t1 * dy),
        ))
    }
}

/// Draws `fig` onto `canvas`.
pub fn draw(fig: &Figure, canvas: &mut impl Canvas) {
    canvas.rect(0.0, 0.0, fig.width, fig.height, Some(WHITE.fill()), None);
    canvas.text(
        (fig.width / 2.0, MARGIN + TITLE * 0.85),
        &fig.title,
        TITLE,
        Anchor::Middle,
        false,
    );
    let (xt, yt) = (fig.x.ticks(), fig.y.ticks());
    let y_tick_w = yt
        .iter()
        .map(|t| text_width(&t.1, TICK))
        .fold(0.0, f64::max);
    let area = Area {
        left: MARGIN + LABEL + 8.0 + y_tick_w + 6.0,
        top: MARGIN + TITLE + 14.0,
        right: fig.width - MARGIN - 8.0,
        bottom: fig.height - MARGIN - LABEL - 8.0 - TICK - 8.0,
    };
    axes(fig, canvas, area, &xt, &yt);
    for m in &fig.marks {
        mark(fig, canvas, area, m);
    }
    legend(fig, canvas, area);
}

fn axes(
    fig: &Figure,
    canvas: &mut impl Canvas,
    a: Area,
    xt: &[(f64, String)],
    yt: &[(f64, String)],
) {
    for (v, label) in xt {
        let (x, _) = a.px(fig, (*v, fig.y.lo));
        if fig.x.grid {
            canvas.polyline(&[(x, a.top), (x, a.bottom)], GRID.stroke(1.0));
        }
        canvas.polyline(&[(x, a.bottom), (x, a.bottom + 4.0)], FRAME.stroke(1.0));
        canvas.text(
            (x, a.bottom + 6.0 + TICK),
            label,
            TICK,
            Anchor::Middle,
            false,
        );
    }
    for (v, label) in yt {
        let (_, y) = a.px(fig, (fig.x.lo, *v));
        if fig.y.grid {
            canvas.polyline(&[(a.left, y), (a.right, y)], GRID.stroke(1.0));
        }
        canvas.polyline(&[(a.left - 4.0, y), (a.left, y)], FRAME.stroke(1.0));
        canvas.text(
            (a.left - 6.0, y + TICK * 0.35),
            label,
            TICK,
            Anchor::End,
            false,
        );
    }
    canvas.rect(
        a.left,
        a.top,
        a.right - a.left,
        a.bottom - a.top,
        None,
        Some(FRAME.stroke(1.0)),
    );
    canvas.text(
        ((a.left + a.right) / 2.0, fig.height - MARGIN),
        &fig.x.label,
        LABEL,
        Anchor::Middle,
        false,
    );
    canvas.text(
        (MARGIN + LABEL * 0.85, (a.top + a.bottom) / 2.0),
        &fig.y.label,
        LABEL,
        Anchor::Middle,
        true,
    );
}

fn mark(fig: &Figure, canvas: &mut impl Canvas, a: Area, m: &Mark) {
    match m {
        Mark::Line { points, stroke } => {
            let px: Vec<(f64, f64)> = points.iter().map(|p| a.px(fig, *p)).collect();
            // Runs of the polyline inside the area, each drawn as one polyline.
            let mut run: Vec<(f64, f64)> = Vec::new();
            for w in px.windows(2) {
                match a.clip(w[0], w[1]) {
                    Some((p, q)) => {
                        if run.last() != Some(&p) {
                            if run.len() > 1 {
                                canvas.polyline(&run, *stroke);
                            }
                            run = vec![p];
                        }
                        run.push(q);
                    }
                    None => {
                        if run.len() > 1 {
                            canvas.polyline(&run, *stroke);
                        }
                        run.clear();
                    }
                }
            }
            if run.len() > 1 {
                canvas.polyline(&run, *stroke);
            }
        }
        Mark::Markers {
            points,
            marker,
            size,
            fill,
        } => {
            for p in points {
                let c = a.px(fig, *p);
                if a.contains(c) {
                    draw_marker(canvas, c, *marker, *size, *fill);
                }
            }
        }
        Mark::Rect { from, to, fill } => {
            let (p, q) = (a.px(fig, *from), a.px(fig, *to));
            let x0 = p.0.min(q.0).max(a.left);
            let x1 = p.0.max(q.0).min(a.right);
            let y0 = p.1.min(q.1).max(a.top);
            let y1 = p.1.max(q.1).min(a.bottom);
            if x1 > x0 && y1 > y0 {
                canvas.rect(x0, y0, x1 - x0, y1 - y0, Some(*fill), None);
            }
        }
    }
}

fn draw_marker(canvas: &mut impl Canvas, (x, y): (f64, f64), m: Marker, r: f64, fill: Fill) {
    match m {
        Marker::Circle => canvas.circle((x, y), r, fill),
        Marker::Triangle => canvas.polygon(
            &[
                (x, y - r),
                (x + r * 0.87, y + r * 0.5),
                (x - r * 0.87, y + r * 0.5),
            ],
            fill,
        ),
        Marker::Cross => {
            let s = Stroke {
                colour: fill.colour,
                alpha: fill.alpha,
                width: 2.0,
                dashed: false,
            };
            canvas.polyline(&[(x - r, y - r), (x + r, y + r)], s);
            canvas.polyline(&[(x - r, y + r), (x + r, y - r)], s);
        }
    }
}

fn legend(fig: &Figure, canvas: &mut impl Canvas, a: Area) {
    if fig.legend.is_empty() {
        return;
    }
    let row = LEGEND * 1.5;
    let w = 30.0
        + fig
            .legend
            .iter()
            .map(|e| text_width(&e.0, LEGEND))
            .fold(0.0, f64::max)
        + 8.0;
    let h = row * fig.legend.len() as f64 + 8.0;
    let x = match fig.legend_at {
        Corner::UpperLeft => a.left + 8.0,
        Corner::UpperRight | Corner::LowerRight => a.right - 8.0 - w,
    };
    let y = match fig.legend_at {
        Corner::UpperLeft | Corner::UpperRight => a.top + 8.0,
        Corner::LowerRight => a.bottom - 8.0 - h,
    };
    canvas.rect(
        x,
        y,
        w,
        h,
        Some(WHITE.alpha(0.85)),
        Some(BLACK.stroke(1.0).alpha(0.3)),
    );
    for (i, (label, key)) in fig.legend.iter().enumerate() {
        let cy = y + 4.0 + row * (i as f64 + 0.5);
        match key {
            Key::Line(s) => canvas.polyline(&[(x + 6.0, cy), (x + 22.0, cy)], *s),
            Key::Swatch(f) => canvas.rect(x + 8.0, cy - 5.0, 12.0, 10.0, Some(*f), None),
            Key::Marker(m, f) => draw_marker(canvas, (x + 14.0, cy), *m, 4.0, *f),
        }
        canvas.text(
            (x + 28.0, cy + LEGEND * 0.35),
            label,
            LEGEND,
            Anchor::Start,
            false,
        );
    }
}

/// Numbers in SVG attributes: two decimals at most, no trailing zeros.
fn n(x: f64) -> String {
    let s = trim(&format!("{x:.2}"));
    if s == "-0" { "0".into() } else { s }
}

fn hex(c: Rgb) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SVG canvas: SVG 1.1 markup, no prolog, fit for inlining into HTML.
struct Svg(String);

impl Svg {
    fn paint(&mut self, attr: &str, c: Rgb, alpha: f64) {
        let _ = write!(self.0, " {attr}=\"{}\"", hex(c));
        if alpha < 1.0 {
            let _ = write!(self.0, " {attr}-opacity=\"{}\"", n(alpha));
        }
    }

    fn stroke(&mut self, s: Stroke) {
        self.paint("stroke", s.colour, s.alpha);
        let _ = write!(self.0, " stroke-width=\"{}\"", n(s.width));
        if s.dashed {
            self.0.push_str(" stroke-dasharray=\"6 4\"");
        }
    }
}

impl Canvas for Svg {
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Option<Fill>, stroke: Option<Stroke>) {
        let _ = write!(
            self.0,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"",
            n(x),
            n(y),
            n(w),
            n(h)
        );
        match fill {
            Some(f) => self.paint("fill", f.colour, f.alpha),
            None => self.0.push_str(" fill=\"none\""),
        }
        if let Some(s) = stroke {
            self.stroke(s);
        }
        self.0.push_str("/>\n");
    }

    fn polyline(&mut self, points: &[(f64, f64)], stroke: Stroke) {
        self.0.push_str("<polyline fill=\"none\" points=\"");
        for (i, p) in points.iter().enumerate() {
            let sep = if i > 0 { " " } else { "" };
            let _ = write!(self.0, "{sep}{},{}", n(p.0), n(p.1));
        }
        self.0.push('"');
        self.stroke(stroke);
        self.0.push_str("/>\n");
    }

    fn polygon(&mut self, points: &[(f64, f64)], fill: Fill) {
        self.0.push_str("<polygon points=\"");
        for (i, p) in points.iter().enumerate() {
            let sep = if i > 0 { " " } else { "" };
            let _ = write!(self.0, "{sep}{},{}", n(p.0), n(p.1));
        }
        self.0.push('"');
        self.paint("fill", fill.colour, fill.alpha);
        self.0.push_str("/>\n");
    }

    fn circle(&mut self, c: (f64, f64), r: f64, fill: Fill) {
        let _ = write!(
            self.0,
            "<circle cx=\"{}\" cy=\"{}\" r=\"{}\"",
            n(c.0),
            n(c.1),
            n(r)
        );
        self.paint("fill", fill.colour, fill.alpha);
        self.0.push_str("/>\n");
    }

    fn text(&mut self, at: (f64, f64), s: &str, size: f64, anchor: Anchor, vertical: bool) {
        let anchor = match anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        let _ = write!(
            self.0,
            "<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"{}\" text-anchor=\"{anchor}\" fill=\"#222222\"",
            n(at.0),
            n(at.1),
            n(size)
        );
        if vertical {
            let _ = write!(self.0, " transform=\"rotate(-90 {} {})\"", n(at.0), n(at.1));
        }
        let _ = writeln!(self.0, ">{}</text>", esc(s));
    }
}

/// `fig` as SVG markup (no XML prolog).
pub fn svg(fig: &Figure) -> String {
    let mut c = Svg(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">\n<title>{}</title>\n",
        esc(&fig.title),
        w = n(fig.width),
        h = n(fig.height),
    ));
    draw(fig, &mut c);
    c.0.push_str("</svg>\n");
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round_and_inside_the_range() {
        let t = linear_ticks(0.0, 1.0, TickFormat::Plain);
        let labels: Vec<&str> = t.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = linear_ticks(-0.3, 7.2, TickFormat::Integer);
        let labels: Vec<&str> = t.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0", "2", "4", "6"]);
        let t = linear_ticks(0.5, 0.62, TickFormat::Plain);
        assert_eq!(t.first().map(|t| t.1.as_str()), Some("0.50"));
        assert!(linear_ticks(1.0, 1.0, TickFormat::Plain).is_empty());
        assert!(linear_ticks(0.0, f64::NAN, TickFormat::Plain).is_empty());
    }

    #[test]
    fn log_ticks_are_decades_or_one_two_five() {
        let t = log_ticks(1e-4, 1.0, TickFormat::Exponent);
        let labels: Vec<&str> = t.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["1e-4", "1e-3", "1e-2", "1e-1", "1e0"]);
        let t = log_ticks(0.8, 20.0, TickFormat::Integer);
        let labels: Vec<&str> = t.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["1", "2", "5", "10", "20"]);
        assert!(log_ticks(0.0, 1.0, TickFormat::Plain).is_empty());
    }

    #[test]
    fn segments_are_clipped_to_the_area() {
        let a = Area {
            left: 0.0,
            top: 0.0,
            right: 10.0,
            bottom: 10.0,
        };
        assert_eq!(
            a.clip((-5.0, 5.0), (15.0, 5.0)),
            Some(((0.0, 5.0), (10.0, 5.0)))
        );
        assert_eq!(a.clip((-5.0, -5.0), (-1.0, 20.0)), None);
        assert_eq!(
            a.clip((2.0, 2.0), (3.0, 3.0)),
            Some(((2.0, 2.0), (3.0, 3.0)))
        );
    }

    /// Records what the engine asks of a canvas.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Canvas for Log {
        fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, _: Option<Fill>, _: Option<Stroke>) {
            self.0.push(format!("rect {x:.0} {y:.0} {w:.0} {h:.0}"));
        }
        fn polyline(&mut self, p: &[(f64, f64)], _: Stroke) {
            self.0.push(format!("line {}", p.len()));
        }
        fn polygon(&mut self, _: &[(f64, f64)], _: Fill) {
            self.0.push("polygon".into());
        }
        fn circle(&mut self, c: (f64, f64), _: f64, _: Fill) {
            self.0.push(format!("circle {:.0} {:.0}", c.0, c.1));
        }
        fn text(&mut self, _: (f64, f64), s: &str, _: f64, _: Anchor, v: bool) {
            self.0.push(format!("text {s} {v}"));
        }
    }

    #[test]
    fn a_figure_draws_its_marks_inside_the_plot_and_its_labels_outside() {
        let mut fig = Figure::new(
            "T",
            (400.0, 300.0),
            Axis::linear("x", 0.0, 1.0),
            Axis::linear("y", 0.0, 1.0),
        );
        fig.line(vec![(0.0, 0.0), (2.0, 2.0)], BLACK.stroke(1.0))
            .markers(
                vec![(0.5, 0.5), (3.0, 0.5)],
                Marker::Circle,
                3.0,
                SAFE.fill(),
            )
            .key("series", Key::Line(BLACK.stroke(1.0)));
        let mut log = Log::default();
        draw(&fig, &mut log);
        let seen = log.0.join("\n");
        assert!(seen.contains("text T false"));
        assert!(seen.contains("text y true"), "the y label is vertical");
        assert!(seen.contains("text series false"));
        // One circle: the point at x = 3 lies outside the axis and is not drawn.
        assert_eq!(seen.matches("circle").count(), 1);
    }

    #[test]
    fn svg_is_well_formed_and_escapes_text() {
        let mut fig = Figure::new(
            "a < b & c",
            (300.0, 200.0),
            Axis::log("fpr", 1e-3, 1.0).format(TickFormat::Exponent),
            Axis::categories("", vec!["x\"y".into()]),
        );
        fig.rect((1e-3, -0.4), (0.5, 0.4), RISKY.alpha(0.5))
            .markers(vec![(0.1, 0.0)], Marker::Triangle, 4.0, SAFE.fill())
            .markers(vec![(0.2, 0.0)], Marker::Cross, 4.0, SAFE.fill())
            .line(vec![(1e-3, 0.0), (1.0, 0.0)], BLACK.stroke(1.0).dashed());
        let s = svg(&fig);
        roxmltree::Document::parse(&s).unwrap();
        assert!(s.contains("a &lt; b &amp; c"));
        assert!(s.contains("x&quot;y"));
        assert!(s.contains("stroke-dasharray"));
        assert!(s.contains("fill-opacity=\"0.5\""));
    }
}
