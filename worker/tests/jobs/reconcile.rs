//! The `reconcile` kind, checked against counts computed here from how the
//! files were generated.

use std::collections::HashMap;
use std::time::Duration;

use relay_shared::jobs::JobState;
use serde_json::{json, Value};

use crate::support::{terminal_events, Harness};

/// A small deterministic generator (64-bit LCG).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

struct Expected {
    left: Vec<u8>,
    right: Vec<u8>,
    counts: Value,
}

/// Left: `ID,AMOUNT,NAME` with `,`; right: BOM, `REF;MONTANT` with `;` and
/// decimal commas. Amounts are cents, written differently on each side;
/// the expected counts come from the cents, not from parsing the files.
fn generate(rows: u64, seed: u64) -> Expected {
    let mut rng = Rng(seed);
    let mut left = String::from("ID,AMOUNT,NAME\n");
    let mut right = String::from("\u{feff}REF;MONTANT\n");
    let (mut l_first, mut r_first): (HashMap<u64, u64>, HashMap<u64, u64>) =
        (HashMap::new(), HashMap::new());
    let (mut dup_l, mut dup_r, mut total_r) = (0u64, 0u64, 0u64);
    let key_space = rows + rows / 4;
    let dot = |c: u64| {
        if c % 100 == 0 {
            format!("{}.0", c / 100)
        } else {
            format!("{}.{:02}", c / 100, c % 100)
        }
    };
    let comma = |c: u64| {
        if c % 100 == 0 {
            format!("{}", c / 100)
        } else {
            format!("{},{:02}", c / 100, c % 100)
        }
    };
    let mut order = Vec::new();
    for _ in 0..rows {
        let key = rng.next(key_space);
        let cents = rng.next(1_000_000);
        left.push_str(&format!("K{key},{},\"name, {key}\"\n", dot(cents)));
        match l_first.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => dup_l += 1,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(cents);
                order.push(key);
            }
        }
    }
    let mut emit =
        |right: &mut String, key: String, cents: u64, r_first: &mut HashMap<String, u64>| {
            right.push_str(&format!("{key};{}\n", comma(cents)));
            total_r += 1;
            match r_first.entry(key) {
                std::collections::hash_map::Entry::Occupied(_) => dup_r += 1,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(cents);
                }
            }
        };
    let mut r_named: HashMap<String, u64> = HashMap::new();
    for key in order {
        let cents = l_first[&key];
        match rng.next(10) {
            0..=6 => emit(&mut right, format!("K{key}"), cents, &mut r_named),
            7 => emit(&mut right, format!("K{key}"), cents + 1, &mut r_named),
            _ => {}
        }
        if rng.next(20) == 0 {
            // A repeated key on the right: the first row counts.
            emit(&mut right, format!("K{key}"), cents + 7, &mut r_named);
        }
    }
    for i in 0..rows / 10 {
        emit(&mut right, format!("R{i}"), i, &mut r_named);
    }
    r_first.extend(r_named.iter().filter_map(|(k, v)| {
        k.strip_prefix('K')
            .and_then(|n| n.parse().ok())
            .map(|n| (n, *v))
    }));
    let (mut matches, mut mismatches, mut left_only) = (0u64, 0u64, 0u64);
    for (key, cents) in &l_first {
        match r_first.get(key) {
            Some(c) if c == cents => matches += 1,
            Some(_) => mismatches += 1,
            None => left_only += 1,
        }
    }
    let right_only = r_named.len() as u64 - matches - mismatches;
    let counts = json!({
        "total_left": rows, "total_right": total_r,
        "matches": matches, "mismatches": mismatches, "left_only": left_only, "right_only": right_only,
        "duplicate_keys": {"left": dup_l, "right": dup_r},
    });
    Expected {
        left: left.into_bytes(),
        right: right.into_bytes(),
        counts,
    }
}

fn payload(left: &str, right: &str) -> Value {
    json!({"left": {"upload_id": left}, "right": {"upload_id": right}, "left_key": "ID", "right_key": "REF",
           "compare": [["AMOUNT", "MONTANT"]], "sample_limit": 5})
}

fn counts_of(result: &Value) -> Value {
    let keys = [
        "total_left",
        "total_right",
        "matches",
        "mismatches",
        "left_only",
        "right_only",
        "duplicate_keys",
    ];
    Value::Object(
        keys.iter()
            .map(|k| (k.to_string(), result[*k].clone()))
            .collect(),
    )
}

async fn reconcile(h: &Harness, e: &Expected, within: Duration) -> Value {
    let (l, r) = (h.upload(&e.left).await, h.upload(&e.right).await);
    let id = h.submit("reconcile", payload(&l, &r), json!({})).await;
    let job = h.wait_end(&id, within).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let events = h.events(&id).await;
    assert_eq!(terminal_events(&events), vec!["job.completed"]);
    assert!(events.iter().any(|(t, _)| t == "job.progress"));
    job.result.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_counts_match_the_generated_files() {
    let h = Harness::start().await;
    let _worker = h.worker().spawn().await;
    let e = generate(30_000, 7);
    let result = reconcile(&h, &e, Duration::from_secs(60)).await;
    assert_eq!(counts_of(&result), e.counts, "{result}");
    assert_eq!(result["delimiters"], json!({"left": ",", "right": ";"}));
    for sample in ["matches", "mismatches", "left_only", "right_only"] {
        assert_eq!(
            result["samples"][sample].as_array().unwrap().len(),
            5,
            "{sample}"
        );
    }
    let diff = &result["samples"]["mismatches"][0]["differences"][0];
    assert_eq!(
        (diff["left_column"].as_str(), diff["right_column"].as_str()),
        (Some("AMOUNT"), Some("MONTANT"))
    );

    // Bad inputs fail at once, not retried, with a clear error.
    let good = h.upload(b"REF,MONTANT\n1,2\n").await;
    let malformed = h.upload(b"ID,AMOUNT\n1,2\n3,4,5\n").await;
    let no_key = h.upload(b"CODE,AMOUNT\n1,2\n").await;
    for (left, expect) in [
        (malformed.as_str(), "malformed CSV at line 3"),
        (no_key.as_str(), "no column \"ID\""),
        ("nope", "unknown upload \"nope\""),
    ] {
        let id = h
            .submit(
                "reconcile",
                payload(left, &good),
                json!({"max_attempts": 3}),
            )
            .await;
        let job = h.wait_end(&id, Duration::from_secs(20)).await;
        assert_eq!((job.state, job.attempts), (JobState::Failed, 1), "{job:?}");
        assert!(
            job.error.as_deref().unwrap().contains(expect),
            "{:?} should mention {expect}",
            job.error
        );
    }
}

/// Two files of a million rows each: memory stays bounded and progress
/// arrives at least every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_a_million_rows_per_side() {
    let h = Harness::start().await;
    let _worker = h.worker().env("RELAY_JOB_LEASE", "10s").spawn().await;
    let e = generate(1_000_000, 11);
    let (l, r) = (h.upload(&e.left).await, h.upload(&e.right).await);
    let id = h.submit("reconcile", payload(&l, &r), json!({})).await;
    let job = h.wait_end(&id, Duration::from_secs(300)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(counts_of(job.result.as_ref().unwrap()), e.counts);
    let events = h.events(&id).await;
    let progress = events.iter().filter(|(t, _)| t == "job.progress").count();
    let started = chrono::DateTime::parse_from_rfc3339(job.started_at.as_ref().unwrap()).unwrap();
    let finished = chrono::DateTime::parse_from_rfc3339(job.finished_at.as_ref().unwrap()).unwrap();
    let secs = (finished - started).num_seconds() as usize;
    assert!(progress >= secs, "{progress} progress events over {secs} s");
}
