//! `cabin wake eval --plot FILE`: the DET curve (the share of the phrase missed against false
//! accepts per hour, each threshold a point) as a PNG, with the threshold that ships marked.

use super::measure::Scores;
use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use std::path::Path;

/// The font the labels are drawn in (Debian's `fonts-dejavu-core`, which scripts/setup
/// installs).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

pub fn det_curve(scores: &Scores, ships: f32, title: &str, out: &Path) -> Result<()> {
    let font = std::fs::read(FONT).with_context(|| {
        format!("reading the font {FONT} (fix: apt-get install fonts-dejavu-core, or run scripts/setup)")
    })?;
    // plotters keeps registered fonts for the life of the process.
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow!("{FONT} is not a font plotters can read"))?;

    // (false accepts per hour, misses in percent) at each threshold 0.01..0.99.
    let points: Vec<(f32, f64, f64)> = (1..100)
        .map(|i| {
            let t = i as f32 / 100.0;
            (t, scores.per_hour(t), scores.false_reject_rate(t) * 100.0)
        })
        .collect();
    let max_rate = points.iter().map(|p| p.1).fold(1.0f64, f64::max).min(20.0);
    let max_miss = points
        .iter()
        .map(|p| p.2)
        .fold(10.0f64, f64::max)
        .min(100.0);

    let root = BitMapBackend::new(out, (800, 560)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", out.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..max_rate, 0f64..max_miss)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "false accepts per hour ({:.1} h of negatives)",
            scores.hours
        ))
        .y_desc(format!("misses, % of {} trials", scores.best.len()))
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|(_, r, m)| (*r, *m)),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| fail(&e))?;
    let shipped = (
        scores.per_hour(ships),
        scores.false_reject_rate(ships) * 100.0,
    );
    chart
        .draw_series(std::iter::once(Circle::new(shipped, 6, RED.filled())))
        .map_err(|e| fail(&e))?
        .label(format!("threshold {ships:.2} (ships)"))
        .legend(|(x, y)| Circle::new((x, y), 5, RED.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
