//! The reconciliation itself, over two opened CSV inputs.
//!
//! The smaller side (by bytes) is read first into a map of its keys (first
//! row of each key: compared values and line). The larger side is then
//! streamed: each row's key is looked up, compared, and marked seen. Of the
//! larger side's keys only those missing from the map are remembered, as
//! 128-bit fingerprints (16 bytes each), to count its duplicate keys; its
//! rows are never held. Keys of the map never seen are the smaller side's
//! "only" keys.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use csv::ByteRecord;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::decimal::values_equal;
use super::input::{column, CsvInput};

/// Rows between two looks at the stop token and the progress counters.
const CHECK_EVERY: u64 = 1024;

/// Phases, for progress.
pub(crate) const PHASE_LOAD: u8 = 0;
pub(crate) const PHASE_MATCH: u8 = 1;

/// What to match.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) left_key: String,
    pub(crate) right_key: String,
    pub(crate) compare: Vec<[String; 2]>,
    pub(crate) sample_limit: usize,
}

/// Shared with the async side: stop token, rows done, phase.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    pub(crate) stop: CancellationToken,
    pub(crate) rows: AtomicU64,
    pub(crate) phase: AtomicU8,
}

/// Why a reconciliation did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MatchError {
    /// Bad input (malformed CSV, missing column): not retryable.
    Input(String),
    /// Reading the upload failed (storage): retryable.
    Source(String),
    Stopped,
}

struct Side<R: Read> {
    name: &'static str,
    input: CsvInput<R>,
    key: usize,
    cols: Vec<usize>,
    decimal_comma: bool,
    rows: u64,
    duplicates: u64,
}

impl<R: Read> Side<R> {
    fn new(
        name: &'static str,
        input: CsvInput<R>,
        key: &str,
        cols: Vec<&str>,
    ) -> Result<Self, MatchError> {
        let key = column(&input.header, key, name).map_err(MatchError::Input)?;
        let cols = cols
            .into_iter()
            .map(|c| column(&input.header, c, name))
            .collect::<Result<_, _>>()
            .map_err(MatchError::Input)?;
        let decimal_comma = input.delimiter == b';';
        Ok(Self {
            name,
            input,
            key,
            cols,
            decimal_comma,
            rows: 0,
            duplicates: 0,
        })
    }

    /// Reads the next row into `rec`; `false` at the end.
    fn next(&mut self, rec: &mut ByteRecord, hooks: &Hooks) -> Result<bool, MatchError> {
        match self.input.reader.read_byte_record(rec) {
            Ok(more) => {
                if more {
                    self.rows += 1;
                    if self.rows % CHECK_EVERY == 0 {
                        hooks.rows.fetch_add(CHECK_EVERY, Ordering::Relaxed);
                        if hooks.stop.is_cancelled() {
                            return Err(MatchError::Stopped);
                        }
                    }
                }
                Ok(more)
            }
            Err(e) => Err(match e.kind() {
                csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::Interrupted => {
                    MatchError::Stopped
                }
                csv::ErrorKind::Io(io) => MatchError::Source(format!("{} file: {io}", self.name)),
                _ => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    MatchError::Input(format!(
                        "{} file: malformed CSV at line {line}: {e}",
                        self.name
                    ))
                }
            }),
        }
    }

    fn field<'r>(&self, rec: &'r ByteRecord, i: usize) -> Result<&'r str, MatchError> {
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        std::str::from_utf8(rec.get(i).unwrap_or_default())
            .map_err(|_| MatchError::Input(format!("{} file: line {line} is not UTF-8", self.name)))
    }

    fn key<'r>(&self, rec: &'r ByteRecord) -> Result<&'r str, MatchError> {
        Ok(self.field(rec, self.key)?.trim())
    }

    fn line(rec: &ByteRecord) -> u64 {
        rec.position().map(|p| p.line()).unwrap_or(0)
    }
}

struct Entry {
    values: Box<[Box<str>]>,
    line: u64,
    seen: bool,
}

/// Identity hasher for fingerprints that are already uniform.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// 128-bit fingerprints from two independently keyed SipHashes.
struct Fingerprints {
    a: RandomState,
    b: RandomState,
    seen: HashSet<u128, BuildHasherDefault<Prehashed>>,
}

impl Fingerprints {
    fn new() -> Self {
        Self {
            a: RandomState::new(),
            b: RandomState::new(),
            seen: HashSet::default(),
        }
    }

    /// `false` when the key was inserted before.
    fn insert(&mut self, key: &str) -> bool {
        let fp = (u128::from(self.a.hash_one(key)) << 64) | u128::from(self.b.hash_one(key));
        self.seen.insert(fp)
    }
}

struct Samples {
    limit: usize,
    matches: Vec<Value>,
    mismatches: Vec<Value>,
    left_only: Vec<Value>,
    right_only: Vec<Value>,
}

fn push(v: &mut Vec<Value>, limit: usize, item: impl FnOnce() -> Value) {
    if v.len() < limit {
        v.push(item());
    }
}

/// Matches `left` and `right`; `left_is_small` says which side is loaded into memory.
pub(crate) fn reconcile<L: Read, R: Read>(
    left: CsvInput<L>,
    right: CsvInput<R>,
    left_is_small: bool,
    spec: &Spec,
    hooks: &Hooks,
) -> Result<Value, MatchError> {
    let left_cols: Vec<&str> = spec.compare.iter().map(|[l, _]| l.as_str()).collect();
    let right_cols: Vec<&str> = spec.compare.iter().map(|[_, r]| r.as_str()).collect();
    let left = Side::new("left", left, &spec.left_key, left_cols)?;
    let right = Side::new("right", right, &spec.right_key, right_cols)?;
    let (delim_l, delim_r) = (left.input.delimiter as char, right.input.delimiter as char);
    let mut samples = Samples {
        limit: spec.sample_limit,
        matches: vec![],
        mismatches: vec![],
        left_only: vec![],
        right_only: vec![],
    };
    let counts = if left_is_small {
        run(left, right, true, spec, hooks, &mut samples)?
    } else {
        run(right, left, false, spec, hooks, &mut samples)?
    };
    Ok(json!({
        "total_left": counts.total_left,
        "total_right": counts.total_right,
        "matches": counts.matches,
        "mismatches": counts.mismatches,
        "left_only": counts.left_only,
        "right_only": counts.right_only,
        "duplicate_keys": { "left": counts.dup_left, "right": counts.dup_right },
        "delimiters": { "left": delim_l.to_string(), "right": delim_r.to_string() },
        "samples": {
            "matches": samples.matches,
            "mismatches": samples.mismatches,
            "left_only": samples.left_only,
            "right_only": samples.right_only,
        },
    }))
}

#[derive(Default)]
struct Counts {
    total_left: u64,
    total_right: u64,
    matches: u64,
    mismatches: u64,
    left_only: u64,
    right_only: u64,
    dup_left: u64,
    dup_right: u64,
}

fn run<S: Read, B: Read>(
    mut small: Side<S>,
    mut big: Side<B>,
    small_is_left: bool,
    spec: &Spec,
    hooks: &Hooks,
    samples: &mut Samples,
) -> Result<Counts, MatchError> {
    let mut rec = ByteRecord::new();
    let mut map: HashMap<Box<str>, Entry> = HashMap::new();
    hooks.phase.store(PHASE_LOAD, Ordering::Relaxed);
    while small.next(&mut rec, hooks)? {
        let key = small.key(&rec)?;
        if map.contains_key(key) {
            small.duplicates += 1;
            continue;
        }
        let values = small
            .cols
            .iter()
            .map(|&i| small.field(&rec, i).map(Box::from))
            .collect::<Result<Vec<_>, _>>()?;
        map.insert(
            Box::from(key),
            Entry {
                values: values.into_boxed_slice(),
                line: Side::<S>::line(&rec),
                seen: false,
            },
        );
    }

    hooks.phase.store(PHASE_MATCH, Ordering::Relaxed);
    let mut c = Counts::default();
    let mut big_only = Fingerprints::new();
    let (big_only_count, limit) = (&mut 0u64, samples.limit);
    while big.next(&mut rec, hooks)? {
        let key = big.key(&rec)?;
        let Some(entry) = map.get_mut(key) else {
            if big_only.insert(key) {
                *big_only_count += 1;
                let target = if small_is_left {
                    &mut samples.right_only
                } else {
                    &mut samples.left_only
                };
                push(
                    target,
                    limit,
                    || json!({ "key": key, "line": Side::<B>::line(&rec) }),
                );
            } else {
                big.duplicates += 1;
            }
            continue;
        };
        if entry.seen {
            big.duplicates += 1;
            continue;
        }
        entry.seen = true;
        let mut differences = Vec::new();
        for (i, [lname, rname]) in spec.compare.iter().enumerate() {
            let big_value = big.field(&rec, big.cols[i])?;
            let small_value = &*entry.values[i];
            let (l, r, lc, rc) = if small_is_left {
                (
                    small_value,
                    big_value,
                    small.decimal_comma,
                    big.decimal_comma,
                )
            } else {
                (
                    big_value,
                    small_value,
                    big.decimal_comma,
                    small.decimal_comma,
                )
            };
            if !values_equal(l, r, lc, rc) {
                differences.push(
                    json!({ "left_column": lname, "right_column": rname, "left": l, "right": r }),
                );
            }
        }
        if differences.is_empty() {
            c.matches += 1;
            push(&mut samples.matches, limit, || json!({ "key": key }));
        } else {
            c.mismatches += 1;
            push(
                &mut samples.mismatches,
                limit,
                || json!({ "key": key, "differences": differences }),
            );
        }
    }
    let mut small_only = 0u64;
    for (key, entry) in &map {
        if !entry.seen {
            small_only += 1;
            let target = if small_is_left {
                &mut samples.left_only
            } else {
                &mut samples.right_only
            };
            push(
                target,
                limit,
                || json!({ "key": &**key, "line": entry.line }),
            );
        }
    }
    if small_is_left {
        (c.total_left, c.total_right, c.dup_left, c.dup_right) =
            (small.rows, big.rows, small.duplicates, big.duplicates);
        (c.left_only, c.right_only) = (small_only, *big_only_count);
    } else {
        (c.total_left, c.total_right, c.dup_left, c.dup_right) =
            (big.rows, small.rows, big.duplicates, small.duplicates);
        (c.left_only, c.right_only) = (*big_only_count, small_only);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::super::input::open_csv;
    use super::*;

    fn spec() -> Spec {
        Spec {
            left_key: "ID".into(),
            right_key: "REF".into(),
            compare: vec![["AMOUNT".into(), "MONTANT".into()]],
            sample_limit: 10,
        }
    }

    fn go(left: &str, right: &str, left_small: bool) -> Result<Value, MatchError> {
        let l = open_csv(left.as_bytes(), None, "left").unwrap();
        let r = open_csv(right.as_bytes(), None, "right").unwrap();
        reconcile(l, r, left_small, &spec(), &Hooks::default())
    }

    #[test]
    fn counts_every_category_from_either_side() {
        let left = "ID,AMOUNT\n1,10.0\n2,5\n3,7\n3,8\n4,1\n";
        let right = "\u{feff}REF;MONTANT\n1;10\n2;6\n5;1\n5;2\n6;0\n";
        for left_small in [true, false] {
            let v = go(left, right, left_small).unwrap();
            assert_eq!(v["total_left"], 5);
            assert_eq!(v["total_right"], 5);
            assert_eq!(v["matches"], 1, "{v}");
            assert_eq!(v["mismatches"], 1);
            assert_eq!(v["left_only"], 2);
            assert_eq!(v["right_only"], 2);
            assert_eq!(v["duplicate_keys"], json!({"left": 1, "right": 1}));
            assert_eq!(v["samples"]["mismatches"][0]["differences"][0]["left"], "5");
            assert_eq!(v["delimiters"], json!({"left": ",", "right": ";"}));
        }
    }

    #[test]
    fn bad_input_is_an_input_error() {
        let e = go("ID,AMOUNT\n1,2\n", "REF,OTHER\n1,2\n", true).unwrap_err();
        assert!(matches!(e, MatchError::Input(m) if m.contains("MONTANT")));
        let e = go("ID,AMOUNT\n1,2,3\n", "REF,MONTANT\n1,2\n", true).unwrap_err();
        assert!(matches!(e, MatchError::Input(m) if m.contains("malformed CSV")));
    }
}
