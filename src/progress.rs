//! Progress reporting on rank 0.
//!
//! On a terminal, an indicatif bar with rate and ETA. Elsewhere (Slurm output
//! files, CI logs) a plain line at most every 10 seconds and one at the end,
//! so batch logs stay readable. `TGLML_PROGRESS=bar|plain|off` forces a mode.
//! Ranks other than 0 get a silent reporter.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// A progress reporter; cheap to call from many threads.
pub struct Progress {
    mode: Mode,
    label: String,
    unit: String,
    total: u64,
    done: AtomicU64,
    start: Instant,
    last_line: Mutex<Instant>,
    /// Plain mode: say nothing at the end of work that took under a second.
    quiet_if_fast: bool,
}

enum Mode {
    Off,
    Plain,
    Bar(ProgressBar),
}

impl Progress {
    /// A reporter for `total` `unit`s of work; silent unless `show` (pass
    /// `comm.is_root()`).
    pub fn new(show: bool, label: &str, total: u64, unit: &str) -> Self {
        let forced = std::env::var("TGLML_PROGRESS").unwrap_or_default();
        let mode = match (show, forced.as_str()) {
            (false, _) | (_, "off") => Mode::Off,
            (_, "plain") => Mode::Plain,
            (_, "bar") => Mode::Bar(bar(label, total, unit)),
            _ if std::io::stderr().is_terminal() => Mode::Bar(bar(label, total, unit)),
            _ => Mode::Plain,
        };
        let now = Instant::now();
        Progress {
            mode,
            label: label.to_string(),
            unit: unit.to_string(),
            total,
            done: AtomicU64::new(0),
            start: now,
            last_line: Mutex::new(now),
            quiet_if_fast: false,
        }
    }

    /// In plain mode, print no final line for work that took under a second
    /// (for the many short stages of a long job).
    pub fn quiet_if_fast(mut self) -> Self {
        self.quiet_if_fast = true;
        self
    }

    /// Sets the units done so far (for reports that count in absolute terms).
    pub fn set(&self, done: u64) {
        let before = self.done.load(Ordering::Relaxed);
        if done > before {
            self.inc(done - before);
        }
    }

    /// Records `k` more units done.
    pub fn inc(&self, k: u64) {
        let done = self.done.fetch_add(k, Ordering::Relaxed) + k;
        match &self.mode {
            Mode::Off => {}
            Mode::Bar(b) => b.inc(k),
            Mode::Plain => {
                let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= PLAIN_EVERY && done < self.total {
                    *last = Instant::now();
                    eprintln!("{}", self.line(done));
                }
            }
        }
    }

    /// A line of its own among the progress lines (a validation's
    /// numbers): nothing when silent.
    pub fn note(&self, line: &str) {
        match &self.mode {
            Mode::Off => {}
            Mode::Bar(b) => b.println(line),
            Mode::Plain => eprintln!("{line}"),
        }
    }

    /// Ends the report with a final line.
    pub fn finish(&self) {
        let done = self.done.load(Ordering::Relaxed);
        match &self.mode {
            Mode::Off => {}
            Mode::Bar(b) => b.finish(),
            Mode::Plain => {
                if !(self.quiet_if_fast && self.start.elapsed() < Duration::from_secs(1)) {
                    eprintln!("{}", self.line(done));
                }
            }
        }
    }

    fn line(&self, done: u64) -> String {
        let elapsed = self.start.elapsed().as_secs_f64();
        let pct = if self.total == 0 {
            100.0
        } else {
            100.0 * done as f64 / self.total as f64
        };
        let eta = if done == 0 || done >= self.total {
            String::new()
        } else {
            format!(
                ", ETA {:.0} s",
                elapsed * (self.total - done) as f64 / done as f64
            )
        };
        format!(
            "{}: {done}/{} {} ({pct:.0}%) in {elapsed:.1} s{eta}",
            self.label, self.total, self.unit
        )
    }
}

fn bar(label: &str, total: u64, unit: &str) -> ProgressBar {
    let b = ProgressBar::new(total);
    let template =
        format!("{{prefix}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}})");
    b.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_prefix(label.to_string());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_has_counts_and_eta() {
        let p = Progress::new(false, "synth", 200, "points");
        p.inc(50);
        let line = p.line(50);
        assert!(line.starts_with("synth: 50/200 points (25%) in "), "{line}");
        assert!(line.contains("ETA"), "{line}");
        assert!(!p.line(200).contains("ETA"));
    }
}
