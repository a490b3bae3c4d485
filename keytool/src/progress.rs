//! `rotate-key`'s progress: a bar (files, bytes, rate, time left) when
//! stderr is a terminal, plain lines on stderr every few seconds otherwise
//! (a service's journal, a log file), in the form
//! `rotate-key: 120/1000 files, 512 MiB/4.0 GiB, 80 MiB/s, 45 s left`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use callvault::rotation::{RotationProgress, RotationStats};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain line is written when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(10);

const BAR_TEMPLATE: &str =
    "rotate-key [{bar:30}] {msg}, {binary_bytes}/{binary_total_bytes}, {binary_bytes_per_sec}, {eta} left";

/// Reports a rotation on stderr.
pub struct RotateProgress {
    bar: Option<ProgressBar>,
    files: (u64, u64),
    bytes: (u64, u64),
    started: Instant,
    last_line: Option<Instant>,
}

impl RotateProgress {
    /// A bar if stderr is a terminal, lines if not.
    pub fn new() -> Self {
        Self::with_bar(std::io::stderr().is_terminal())
    }

    fn with_bar(bar: bool) -> Self {
        let bar = bar.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            // The template is a constant; a mistake in it shows as a plain bar.
            if let Ok(style) = ProgressStyle::with_template(BAR_TEMPLATE) {
                b.set_style(style.progress_chars("=> "));
            }
            b
        });
        RotateProgress { bar, files: (0, 0), bytes: (0, 0), started: Instant::now(), last_line: None }
    }

    fn files_message(&self) -> String {
        format!("{}/{} files", self.files.0, self.files.1)
    }

    /// The current progress as one line.
    pub fn line(&self) -> String {
        line(self.files, self.bytes, self.started.elapsed())
    }
}

impl Default for RotateProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl RotationProgress for RotateProgress {
    fn start(&mut self, files: u64, bytes: u64) {
        (self.files, self.bytes, self.started) = ((0, files), (0, bytes), Instant::now());
        match &self.bar {
            Some(b) => {
                b.set_length(bytes);
                b.set_message(self.files_message());
            }
            None => {
                eprintln!("rotate-key: {files} files, {} to re-encrypt", size(bytes));
                self.last_line = Some(Instant::now());
            }
        }
    }

    fn file_done(&mut self, bytes: u64) {
        self.files.0 += 1;
        self.bytes.0 += bytes;
        match &self.bar {
            Some(b) => {
                b.inc(bytes);
                b.set_message(self.files_message());
            }
            None => {
                if self.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY) {
                    eprintln!("{}", self.line());
                    self.last_line = Some(Instant::now());
                }
            }
        }
    }

    fn message(&mut self, text: &str) {
        match &self.bar {
            Some(b) => b.println(format!("rotate-key: {text}")),
            None => eprintln!("rotate-key: {text}"),
        }
    }

    fn finish(&mut self, stats: &RotationStats) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        eprintln!(
            "rotate-key: done: {} files ({}), {} names, {} symlinks, {} xattrs re-encrypted in {}",
            stats.files,
            size(stats.bytes),
            stats.names,
            stats.symlinks,
            stats.xattrs,
            duration(stats.elapsed.as_secs_f64().round() as u64)
        );
    }
}

/// `rotate-key: F/FT files, B/BT, RATE/s, T left` for `files` and `bytes`
/// (done, total) after `elapsed`.
pub fn line(files: (u64, u64), bytes: (u64, u64), elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let (rate, left) = if secs > 0.0 && bytes.0 > 0 {
        let rate = bytes.0 as f64 / secs;
        let left = (bytes.1.saturating_sub(bytes.0) as f64 / rate).round() as u64;
        (format!("{}/s", size(rate as u64)), format!("{} left", duration(left)))
    } else {
        ("rate not known yet".to_string(), "time left not known yet".to_string())
    };
    format!("rotate-key: {}/{} files, {}/{}, {rate}, {left}", files.0, files.1, size(bytes.0), size(bytes.1))
}

/// A byte count in binary units: one decimal under 10, none from there on
/// (`0 B`, `1023 B`, `4.0 KiB`, `512 MiB`, `4.0 GiB`).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 9.95 { format!("{v:.1} {}", UNITS[unit]) } else { format!("{v:.0} {}", UNITS[unit]) }
}

/// Whole seconds as `45 s`, `3 min 20 s`, `2 h 05 min`.
pub fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn lines_give_files_bytes_rate_and_time_left() {
        // 512 MiB in 6.4 s is 80 MiB/s; the 3.5 GiB left take 44.8 s more.
        let l = line((120, 1000), (512 * MIB, 4096 * MIB), Duration::from_millis(6400));
        assert_eq!(l, "rotate-key: 120/1000 files, 512 MiB/4.0 GiB, 80 MiB/s, 45 s left");
        let l = line((0, 3), (0, 5000), Duration::ZERO);
        assert_eq!(l, "rotate-key: 0/3 files, 0 B/4.9 KiB, rate not known yet, time left not known yet");
        let l = line((3, 3), (5000, 5000), Duration::from_secs(2));
        assert_eq!(l, "rotate-key: 3/3 files, 4.9 KiB/4.9 KiB, 2.4 KiB/s, 0 s left");
        let l = line((1, 9), (MIB, 10_000 * MIB), Duration::from_secs(1));
        assert!(l.ends_with("1.0 MiB/9.8 GiB, 1.0 MiB/s, 2 h 46 min left"), "{l}");
    }

    #[test]
    fn the_bar_template_is_valid() {
        assert!(ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
    }

    #[test]
    fn sizes_and_durations_read_like_du_and_time() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(10 * 1024 - 1), "10 KiB");
        assert_eq!(size(512 * MIB), "512 MiB");
        assert_eq!(size(u64::MAX), "16 EiB");
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(200), "3 min 20 s");
        assert_eq!(duration(7500), "2 h 05 min");
    }

    #[test]
    fn without_a_terminal_lines_are_written_and_counts_kept() {
        let mut p = RotateProgress::with_bar(false);
        p.start(2, 8192);
        p.file_done(4096);
        p.message("removed 1 leftover");
        p.file_done(4096);
        assert_eq!((p.files, p.bytes), ((2, 2), (8192, 8192)));
        assert!(p.line().starts_with("rotate-key: 2/2 files, 8.0 KiB/8.0 KiB, "), "{}", p.line());
        let mut bar = RotateProgress::with_bar(true);
        bar.start(1, 10);
        bar.file_done(10);
        bar.finish(&RotationStats { files: 1, bytes: 10, ..RotationStats::default() });
        assert_eq!(bar.bar.as_ref().map(ProgressBar::position), Some(10));
    }
}
