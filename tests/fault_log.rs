//! The faults a run injected and what each cost the clients.
//!
//! Invariants: a fault is logged once it is healed and the clients made
//! progress again, with when it was injected, when the clients had
//! recovered, and the time the locks took to be granted again after the
//! heal; unavailability is the longest stretch inside the fault's window
//! (injection to recovery) in which no client operation completed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct FaultRun {
    pub kind: String,
    pub injected: Instant,
    /// From the heal until every lock had been granted again.
    pub regrant: Duration,
    pub recovered: Instant,
}

#[derive(Default)]
pub struct FaultLog {
    pub runs: Vec<FaultRun>,
}

/// Per kind: how many, longest unavailability, longest re-grant after heal.
pub type Summary = BTreeMap<String, (usize, Duration, Duration)>;

impl FaultLog {
    pub fn push(&mut self, run: FaultRun) {
        self.runs.push(run);
    }

    /// Sums the runs by kind, given when client operations completed.
    pub fn summary(&self, successes: &[Instant]) -> Summary {
        let mut times = successes.to_vec();
        times.sort();
        let mut out = Summary::new();
        for run in &self.runs {
            let entry = out.entry(run.kind.clone()).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(longest_gap(&times, run.injected, run.recovered));
            entry.2 = entry.2.max(run.regrant);
        }
        out
    }
}

/// The longest time between `from` or a success and the next success, up to
/// the last success at or before `to` (the first after `to` if none).
fn longest_gap(sorted: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for t in sorted.iter().filter(|t| **t > from) {
        longest = longest.max(t.duration_since(last));
        last = *t;
        if *t >= to {
            break;
        }
    }
    longest
}

/// The summary as lines for the run's output, each starting with `chaos:`.
pub fn report(summary: &Summary) -> String {
    let mut out = String::from("chaos: fault kind | count | longest unavailability | longest re-grant after heal\n");
    for (kind, (count, gap, regrant)) in summary {
        out.push_str(&format!("chaos:   {kind} | {count} | {gap:.2?} | {regrant:.2?}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_counts_from_the_fault_to_recovery() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let successes = [ms(0), ms(150), ms(400), ms(450), ms(2000)];
        assert_eq!(longest_gap(&successes, ms(100), ms(450)), Duration::from_millis(250));
        assert_eq!(longest_gap(&successes, ms(100), ms(1000)), Duration::from_millis(1550));
    }
}
