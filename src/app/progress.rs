//! Progress of long commands on stderr: on a terminal a bar redrawn in place, with rate
//! and time left; otherwise a line every few seconds (for logs and CI). `--quiet` turns
//! it off. It reads [`Progress`], which the pipeline counts into.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::telemetry::Progress;

/// Draws until [`Drawer::finish`].
pub struct Drawer {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drawer {
    /// Starts drawing `progress` (nothing at all when `quiet`).
    pub fn start(progress: Arc<Progress>, quiet: bool) -> Self {
        if quiet {
            return Self {
                stop: None,
                task: None,
            };
        }
        let (stop, mut stopped) = oneshot::channel();
        let terminal = std::io::stderr().is_terminal();
        let every = if terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        let task = tokio::spawn(async move {
            let mut line = Line::default();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(every) => line.draw(&progress, terminal, false),
                }
            }
            line.draw(&progress, terminal, true);
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Draws the last state and stops.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// What the drawer last showed.
#[derive(Default)]
struct Line {
    generation: u64,
    started: Option<Instant>,
    shown: Option<(u64, u64)>,
    open: bool,
}

impl Line {
    fn draw(&mut self, progress: &Progress, terminal: bool, last: bool) {
        let (stage, done, total, generation) = progress.snapshot();
        if total == 0 {
            return;
        }
        if generation != self.generation {
            // A new stage: close the previous line.
            if self.open && terminal {
                eprintln!();
            }
            self.generation = generation;
            self.started = Some(Instant::now());
            self.shown = None;
        }
        if self.shown == Some((done, total)) && !(last && terminal) {
            return;
        }
        // Off a terminal, work that ended before the first line is not worth one.
        if last && !terminal && self.shown.is_none() {
            return;
        }
        self.shown = Some((done, total));
        let text = describe(&stage, done, total, self.started.map(|s| s.elapsed()));
        let mut err = std::io::stderr().lock();
        if terminal {
            let _ = write!(err, "\r\x1b[2K{text}");
            if last {
                let _ = writeln!(err);
            }
            self.open = !last;
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }
}

/// `sending weekly #3 [######----] 6,000/10,000  1,200/s  3s left`.
fn describe(stage: &str, done: u64, total: u64, elapsed: Option<Duration>) -> String {
    let done = done.min(total);
    let width = 24;
    let filled = (done * width / total.max(1)) as usize;
    let bar = format!(
        "[{}{}]",
        "#".repeat(filled),
        "-".repeat(width as usize - filled)
    );
    let mut text = format!("{stage} {bar} {done}/{total}");
    if let Some(elapsed) = elapsed.filter(|e| e.as_secs_f64() >= 0.5 && done > 0) {
        let rate = done as f64 / elapsed.as_secs_f64();
        text.push_str(&format!("  {rate:.0}/s"));
        if done < total {
            let left = (total - done) as f64 / rate;
            text.push_str(&format!("  {}s left", left.ceil() as u64));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_where_how_fast_and_how_long() {
        let line = describe("importing", 500, 2000, Some(Duration::from_secs(2)));
        assert_eq!(
            line,
            "importing [######------------------] 500/2000  250/s  6s left"
        );
        assert_eq!(
            describe("x", 0, 4, None),
            "x [------------------------] 0/4"
        );
        assert!(describe("x", 9, 4, Some(Duration::from_secs(1))).contains("4/4"));
    }
}
