//! `--find-rate`: the highest open-loop rate whose p99 submit-to-completed
//! stays within `--target-p99-ms` with every job completed.
//!
//! Steps on one stack: from `--rate`, multiplied by `--step-factor` while
//! each passes (divided while the first ones fail), then `--refine`
//! bisections between the best pass and the lowest failure. Each step runs
//! `--warmup` + `--duration` seconds of submits and waits for its jobs to
//! end (up to `--timeout`); a step whose jobs do not all end stops the
//! sweep, since the next one would start behind a backlog. No step starts
//! that could not finish its submits within `--budget`.

use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};

use super::{open, JobsArgs, Watcher};
use crate::report::round;
use crate::stack::Stack;

/// The lowest rate a falling sweep tries.
const MIN_RATE: f64 = 1.0;
/// Bisection stops when the bounds are this close (ratio).
const CLOSE_ENOUGH: f64 = 1.03;

/// What the sweep does next, from the best pass and lowest failure so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Next {
    Try(f64),
    Done(&'static str),
}

/// The next rate after `last`, given the best passing rate, the lowest
/// failing rate and the bisections done.
pub(crate) fn next_rate(
    last: f64,
    best: Option<f64>,
    lowest_failure: Option<f64>,
    bisections: u32,
    args: &JobsArgs,
) -> Next {
    let factor = args.step_factor.max(1.05);
    match (best, lowest_failure) {
        (_, None) => {
            let r = (last * factor).round();
            if last >= args.max_rate {
                Next::Done("reached --max-rate with p99 within target")
            } else {
                Next::Try(r.min(args.max_rate))
            }
        }
        (None, Some(fail)) => {
            let r = (fail / factor).round();
            if r < MIN_RATE || r >= fail {
                Next::Done("no rate passed")
            } else {
                Next::Try(r)
            }
        }
        (Some(ok), Some(fail)) => {
            let mid = ((ok + fail) / 2.0).round();
            if bisections >= args.refine || fail / ok <= CLOSE_ENOUGH || mid <= ok || mid >= fail {
                Next::Done("refined")
            } else {
                Next::Try(mid)
            }
        }
    }
}

pub(super) async fn run(args: &JobsArgs, stack: &Stack, watcher: &Watcher) -> Result<Value> {
    let started = Instant::now();
    let mut rate = args.rate.unwrap_or(250.0).max(MIN_RATE);
    let (mut best, mut lowest_failure) = (None::<f64>, None::<f64>);
    let mut bisections = 0;
    let mut steps = Vec::new();
    let stopped = loop {
        let submits = args.warmup + args.duration;
        if started.elapsed().as_secs_f64() + submits > args.budget {
            break "budget";
        }
        let step = open::step(args, rate, stack, watcher).await?;
        let passed = step.passed(args.target_p99_ms);
        let summary = json!({
            "rate": step.rate,
            "passed": passed,
            "p99_ms": step.p99_ms,
            "incomplete": step.incomplete,
            "submit_errors": step.submit_errors,
            "failed": step.failed,
            "completions_per_s": step.json["completions_per_s"],
            "schedule_lag_max_ms": step.json["schedule_lag"]["max_ms"],
        });
        eprintln!("find-rate: {summary}");
        let incomplete = step.incomplete;
        let mut full = step.json;
        full["passed"] = passed.into();
        steps.push(full);
        if bisections > 0 || (best.is_some() && lowest_failure.is_some()) {
            bisections += 1;
        }
        if passed {
            best = Some(best.map_or(rate, |b: f64| b.max(rate)));
        } else {
            lowest_failure = Some(lowest_failure.map_or(rate, |f: f64| f.min(rate)));
        }
        if incomplete > 0 {
            break "a step's jobs did not all end within --timeout";
        }
        match next_rate(rate, best, lowest_failure, bisections, args) {
            Next::Try(r) => rate = r,
            Next::Done(why) => break why,
        }
    };
    Ok(json!({
        "scenario": "jobs-find-rate",
        "target_p99_ms": args.target_p99_ms,
        "best_rate": best,
        "lowest_failing_rate": lowest_failure,
        "stopped": stopped,
        "sweep_secs": round(started.elapsed().as_secs_f64(), 1),
        "step_duration_s": args.duration,
        "steps": steps,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Target;

    fn args() -> JobsArgs {
        JobsArgs {
            refine: 2,
            max_rate: 1000.0,
            step_factor: 2.0,
            ..JobsArgs::closed(Target::default(), 0)
        }
    }

    #[test]
    fn rises_then_bisects_then_stops() {
        let a = args();
        assert_eq!(next_rate(100.0, Some(100.0), None, 0, &a), Next::Try(200.0));
        assert_eq!(
            next_rate(800.0, Some(800.0), None, 0, &a),
            Next::Try(1000.0)
        );
        assert!(matches!(
            next_rate(1000.0, Some(1000.0), None, 0, &a),
            Next::Done(_)
        ));
        assert_eq!(
            next_rate(400.0, Some(200.0), Some(400.0), 0, &a),
            Next::Try(300.0)
        );
        assert_eq!(
            next_rate(300.0, Some(300.0), Some(400.0), 1, &a),
            Next::Try(350.0)
        );
        assert_eq!(
            next_rate(350.0, Some(300.0), Some(350.0), 2, &a),
            Next::Done("refined")
        );
    }

    #[test]
    fn falls_when_the_first_rate_fails() {
        let a = args();
        assert_eq!(next_rate(100.0, None, Some(100.0), 0, &a), Next::Try(50.0));
        assert_eq!(
            next_rate(1.0, None, Some(1.0), 0, &a),
            Next::Done("no rate passed")
        );
    }
}
