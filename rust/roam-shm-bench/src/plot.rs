//! The PNG: four panels (latency percentiles at 8 B; p50 latency, GB/s and msg/s
//! against payload size), drawn with plotters' bitmap backend. Text uses a font
//! embedded in the `epaint_default_fonts` crate (registered with plotters' ab_glyph
//! support), so no system font or fontconfig is needed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::fmt_ns;
use crate::rows::{Measure, Mode, Transport, human_bytes};
use crate::{BoxError, RowResult};

const FONT: &str = "sans-serif";
const SIZES: &[f64] = &[
    8.0,
    64.0,
    512.0,
    4096.0,
    32768.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
];

fn register_font() -> Result<(), BoxError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("cannot load the embedded font".into())
    }
}

/// A stable colour per (transport, mode).
fn color(t: Transport, m: Mode) -> RGBColor {
    use Mode::*;
    use Transport::*;
    match (t, m) {
        (Format, Spin) => RGBColor(0, 114, 178),
        (Format, Wait) => RGBColor(86, 180, 233),
        (Format, Wake) => RGBColor(0, 158, 115),
        (FormatCached, _) => RGBColor(0, 200, 220),
        (Session, Spin) => RGBColor(213, 94, 0),
        (Session, Doorbell) => RGBColor(230, 159, 0),
        (Ring, _) | (RingBatch, _) => RGBColor(0, 60, 120),
        (Iceoryx2, _) => RGBColor(204, 121, 167),
        (Uds, _) => RGBColor(120, 120, 120),
        (Pipe, _) => RGBColor(60, 60, 60),
        (Futex, _) => RGBColor(170, 30, 30),
        (InprocRoam, _) => RGBColor(40, 40, 200),
        (InprocRtrb, _) => RGBColor(150, 150, 40),
        (InprocCrossbeam, _) => RGBColor(120, 60, 20),
        _ => RGBColor(100, 100, 100),
    }
}

fn series_name(t: Transport, m: Mode) -> String {
    format!("{} · {}", t.label(), m.name())
}

type Series = BTreeMap<(usize, usize), (String, RGBColor, u32, Vec<(f64, f64)>)>;

/// Group points by (transport, mode), keeping plan order stable via indices.
fn group(results: &[RowResult], measure: Measure, y: &dyn Fn(&RowResult) -> Option<f64>) -> Series {
    let mut out: Series = BTreeMap::new();
    for r in results
        .iter()
        .filter(|r| r.row.measure == measure && r.error.is_none())
    {
        let Some(v) = y(r) else { continue };
        let key = (r.row.transport as usize, r.row.mode as usize);
        out.entry(key)
            .or_insert_with(|| {
                (
                    series_name(r.row.transport, r.row.mode),
                    color(r.row.transport, r.row.mode),
                    width(r.row.transport),
                    Vec::new(),
                )
            })
            .3
            .push((r.row.payload as f64, v));
    }
    out
}

fn log_range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in vals.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (1.0, 10.0);
    }
    (lo / 1.6, hi * 1.6)
}

fn empty(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
) -> Result<(), BoxError> {
    area.draw(&Text::new(
        format!("{title}: no data in this run"),
        (20, 30),
        (FONT, 18).into_font(),
    ))?;
    Ok(())
}

/// Draw the four panels and a shared legend into `path`.
pub fn draw(results: &[RowResult], path: &Path) -> Result<(), BoxError> {
    register_font()?;
    let legend = legend_entries(results);
    let legend_rows = legend.len().div_ceil(LEGEND_COLS) as u32;
    let legend_h = 24 * legend_rows + 20;
    let root = BitMapBackend::new(path, (1800, 1250 + legend_h)).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(
        "roam-shm: one-way latency and throughput (2 processes pinned to 2 CPUs)",
        (FONT, 28),
    )?;
    let (h, _) = (body.dim_in_pixel().1, ());
    let (panels_area, legend_area) = body.split_vertically(h - legend_h);
    let panels = panels_area.split_evenly((2, 2));
    percentiles(&panels[0], results)?;
    p50_vs_size(&panels[1], results)?;
    tput_vs_size(
        &panels[2],
        results,
        "Throughput (payload GB/s) vs payload size",
        &|r| r.tput.map(|t| t.bytes_per_s / 1e9),
        &|v| format!("{v} GB/s"),
    )?;
    tput_vs_size(
        &panels[3],
        results,
        "Throughput (messages/s) vs payload size",
        &|r| r.tput.map(|t| t.msgs_per_s),
        &|v| crate::report::fmt_rate(*v),
    )?;
    for (i, (name, c)) in legend.iter().enumerate() {
        let x = 60 + (i % LEGEND_COLS) as i32 * 580;
        let y = 12 + (i / LEGEND_COLS) as i32 * 24;
        legend_area.draw(&PathElement::new(
            vec![(x, y + 8), (x + 34, y + 8)],
            c.stroke_width(4),
        ))?;
        legend_area.draw(&Circle::new((x + 17, y + 8), 4, c.filled()))?;
        legend_area.draw(&Text::new(
            name.clone(),
            (x + 44, y),
            (FONT, 17).into_font(),
        ))?;
    }
    root.present()?;
    Ok(())
}

const LEGEND_COLS: usize = 3;
const FLOOR_COLOR: RGBColor = RGBColor(0, 0, 0);

/// Every series of the run in plan order, with its colour (and the raw floor).
fn legend_entries(results: &[RowResult]) -> Vec<(String, RGBColor)> {
    let mut out: Vec<(String, RGBColor)> = vec![(
        "raw floor (two processes, one shared cache line)".into(),
        FLOOR_COLOR,
    )];
    for r in results.iter().filter(|r| r.error.is_none()) {
        let name = series_name(r.row.transport, r.row.mode);
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, color(r.row.transport, r.row.mode)));
        }
    }
    out
}

fn width(t: Transport) -> u32 {
    if t.is_roam() { 3 } else { 2 }
}

fn percentiles(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    results: &[RowResult],
) -> Result<(), BoxError> {
    let title = "One-way latency percentiles, 8-byte messages";
    let rows: Vec<&RowResult> = results
        .iter()
        .filter(|r| r.row.measure == Measure::Latency && r.row.payload == 8 && r.lat.is_some())
        .collect();
    if rows.is_empty() {
        return empty(area, title);
    }
    let pts = |s: &crate::Stats| [s.p50, s.p90, s.p99, s.p999, s.max];
    // The raw floor: the one measured before the first 8-byte row.
    let floor = rows[0].floor_pre;
    let all = rows
        .iter()
        .filter_map(|r| r.lat)
        .chain(floor)
        .flat_map(|s| pts(&s));
    let (lo, hi) = log_range(all);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.1f64..4.1f64, (lo..hi).log_scale())?;
    let names = ["p50", "p90", "p99", "p99.9", "max"];
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|v| {
            let i = v.round();
            if (v - i).abs() < 0.05 && (0.0..=4.0).contains(&i) {
                names[i as usize].to_string()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| fmt_ns(*v))
        .y_desc("one-way latency")
        .label_style((FONT, 14))
        .draw()?;
    let mut draw_series =
        |name: String, c: RGBColor, s: crate::Stats, w: u32| -> Result<(), BoxError> {
            let data: Vec<(f64, f64)> = pts(&s)
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, *v))
                .collect();
            let style = c.stroke_width(w);
            let _ = name;
            chart.draw_series(LineSeries::new(data.clone(), style))?;
            chart.draw_series(data.iter().map(|p| Circle::new(*p, 3, c.filled())))?;
            Ok(())
        };
    if let Some(f) = floor {
        draw_series("raw floor".into(), FLOOR_COLOR, f, 2)?;
    }
    for r in &rows {
        if let Some(l) = r.lat {
            draw_series(
                series_name(r.row.transport, r.row.mode),
                color(r.row.transport, r.row.mode),
                l,
                width(r.row.transport),
            )?;
        }
    }
    Ok(())
}

fn size_axis() -> impl plotters::coord::ranged1d::Ranged<ValueType = f64> + ValueFormatter<f64> {
    (6.0f64..5.6e6f64)
        .log_scale()
        .with_key_points(SIZES.to_vec())
}

fn p50_vs_size(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    results: &[RowResult],
) -> Result<(), BoxError> {
    let title = "One-way p50 latency vs payload size";
    let mut series = group(results, Measure::Latency, &|r| r.lat.map(|l| l.p50));
    series.retain(|_, s| s.3.len() >= 2);
    if series.is_empty() {
        return empty(area, title);
    }
    let (lo, hi) = log_range(series.values().flat_map(|s| s.3.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(size_axis(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| human_bytes(*v as usize))
        .y_label_formatter(&|v| fmt_ns(*v))
        .x_desc("payload")
        .y_desc("one-way p50")
        .label_style((FONT, 14))
        .draw()?;
    for (_, c, w, pts) in series.into_values() {
        chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(w)))?;
        chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, c.filled())))?;
    }
    Ok(())
}

fn tput_vs_size(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    results: &[RowResult],
    title: &str,
    y: &dyn Fn(&RowResult) -> Option<f64>,
    fmt: &dyn Fn(&f64) -> String,
) -> Result<(), BoxError> {
    let mut series = group(results, Measure::Throughput, y);
    series.retain(|_, s| s.3.len() >= 2);
    if series.is_empty() {
        return empty(area, title);
    }
    let (lo, hi) = log_range(series.values().flat_map(|s| s.3.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(size_axis(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| human_bytes(*v as usize))
        .y_label_formatter(fmt)
        .x_desc("payload")
        .label_style((FONT, 14))
        .draw()?;
    for (_, c, w, pts) in series.into_values() {
        chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(w)))?;
        chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, c.filled())))?;
    }
    Ok(())
}
