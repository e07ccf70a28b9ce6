//! 双随机: the random draw of targets and inspectors, `hazchem-draw-v1`, specified precisely enough that an
//! auditor can re-implement it in any language and re-run any recorded draw.
//!
//! # Inputs (all recorded in `TaskDrawn`)
//!
//! - `seed`: 1–64 bytes (the service draws 32 bytes from the operating system's generator).
//! - `candidates`: enterprises `(uscc, weight)`, weight an integer 1–1000 (see `registers` for the weight
//!   rule; the weights actually used are what is recorded, so a re-run never depends on live data).
//! - `target_count`: how many targets to draw (0 to the number of candidates).
//! - `pools`: for each inspecting department, its register of inspectors `(certificate_number, name)` and
//!   `count`, how many to draw from it (at least 2, at most the register's size).
//!
//! # Canonical order
//!
//! Candidates are sorted by USCC, pools by department code (`eeb` < `emergency` < `fire` < ...), the
//! inspectors of a pool by certificate number; all comparisons are of the UTF-8 bytes. Duplicate USCCs,
//! duplicate departments and duplicate or empty certificate numbers are errors. The draw works on these
//! sorted lists, so the order in which a register lists its entries does not matter.
//!
//! # Random words
//!
//! Each draw reads its own stream of 64-bit words, named by a label: `targets` for the targets and
//! `inspectors:<department code>` for each pool. Word `i` (i = 0, 1, 2, ...) of the stream labelled `L` is
//! the first 8 bytes, read as a big-endian unsigned integer, of
//!
//! ```text
//! SHA-256( "hazchem-draw-v1" ‖ 0x00 ‖ L ‖ 0x00 ‖ seed ‖ i as 8 bytes big-endian )
//! ```
//!
//! # A uniform integer below n (n ≥ 1)
//!
//! Let `r = 2^64 mod n`. Read words until one, `x`, satisfies `x ≥ r`; the result is `x mod n`. (The
//! accepted words `[r, 2^64)` are a whole number of runs of `n`, so every result is equally likely.)
//!
//! # Weighted sampling without replacement
//!
//! Keep the remaining items in canonical order. For each pick: let `W` be the sum of the remaining
//! weights, draw `t` uniform below `W`, walk the remaining items in order adding up their weights, and pick
//! the first item at which the running sum exceeds `t`; remove it. The result lists the picks in the
//! order they were made. Inspectors are drawn the same way with every weight 1.
//!
//! Integer arithmetic only: no floating point, so every implementation gets the same result.

use std::collections::BTreeSet;

use hazchem_domain::{Department, Uscc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Name and version of the algorithm, recorded with every draw.
pub const ALGORITHM: &str = "hazchem-draw-v1";
/// Length of the seeds the service generates.
pub const SEED_LEN: usize = 32;
/// Longest seed accepted.
pub const MAX_SEED_LEN: usize = 64;
/// Largest weight of a candidate.
pub const MAX_WEIGHT: u32 = 1000;
/// Fewest inspectors drawn per department (双随机: at least two inspectors per inspection).
pub const MIN_INSPECTORS: u32 = 2;

/// A candidate target and the weight the rule gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub uscc: Uscc,
    pub weight: u32,
    /// The weight rule's factors that applied (for auditors; the draw uses `weight` only).
    #[serde(default)]
    pub factors: Vec<String>,
}

/// An enforcement officer in a department's register.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Inspector {
    /// Enforcement badge (执法证) number: unique within the department's register.
    pub certificate_number: String,
    pub name: String,
}

/// One department's register, how many to draw, and (in a record) who was drawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub department: Department,
    pub candidates: Vec<Inspector>,
    pub count: u32,
    pub drawn: Vec<Inspector>,
}

/// Everything a draw used and what it drew: what `TaskDrawn` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawRecord {
    pub algorithm: String,
    pub seed: Vec<u8>,
    /// In canonical order.
    pub candidates: Vec<Candidate>,
    pub target_count: u32,
    /// In the order drawn.
    pub drawn_targets: Vec<Uscc>,
    /// In canonical order, each register in canonical order.
    pub pools: Vec<Pool>,
}

impl DrawRecord {
    /// Every inspector drawn, department by department.
    pub fn drawn_inspectors(&self) -> impl Iterator<Item = (Department, &Inspector)> {
        self.pools
            .iter()
            .flat_map(|p| p.drawn.iter().map(move |i| (p.department, i)))
    }
}

/// What a draw is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawInput {
    pub seed: Vec<u8>,
    pub candidates: Vec<Candidate>,
    pub target_count: u32,
    /// Department, its register, how many to draw.
    pub pools: Vec<(Department, Vec<Inspector>, u32)>,
}

/// Why a draw cannot be made (or re-made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrawError {
    #[error("the draw algorithm {0:?} is not known here; this build re-runs {ALGORITHM:?}")]
    UnknownAlgorithm(String),
    #[error("the seed must be 1 to {MAX_SEED_LEN} bytes, it is {0}")]
    SeedLength(usize),
    #[error("{wanted} targets requested but only {available} candidates are eligible")]
    TooFewCandidates { wanted: u32, available: usize },
    #[error("candidate {0} appears twice")]
    DuplicateCandidate(Uscc),
    #[error("candidate {uscc} has weight {weight}; weights are 1 to {MAX_WEIGHT}")]
    Weight { uscc: Uscc, weight: u32 },
    #[error("department {0} has two inspector pools")]
    DuplicateDepartment(Department),
    #[error("at least {MIN_INSPECTORS} inspectors must be drawn from {department}, not {count}")]
    TooFewPerDepartment { department: Department, count: u32 },
    #[error("{wanted} inspectors requested from {department}, whose register has only {available}")]
    TooFewInspectors {
        department: Department,
        wanted: u32,
        available: usize,
    },
    #[error(
        "the register of {department} has an inspector without a certificate number ({name:?})"
    )]
    MissingCertificate {
        department: Department,
        name: String,
    },
    #[error("the register of {department} lists certificate number {certificate:?} twice")]
    DuplicateInspector {
        department: Department,
        certificate: String,
    },
}

/// Makes a draw: checks and canonicalises the input, then draws targets and inspectors.
pub fn draw(input: DrawInput) -> Result<DrawRecord, DrawError> {
    let DrawInput {
        seed,
        mut candidates,
        target_count,
        pools,
    } = input;
    if seed.is_empty() || seed.len() > MAX_SEED_LEN {
        return Err(DrawError::SeedLength(seed.len()));
    }
    candidates.sort_by(|a, b| a.uscc.as_str().cmp(b.uscc.as_str()));
    for pair in candidates.windows(2) {
        if pair[0].uscc == pair[1].uscc {
            return Err(DrawError::DuplicateCandidate(pair[0].uscc.clone()));
        }
    }
    if let Some(c) = candidates
        .iter()
        .find(|c| c.weight == 0 || c.weight > MAX_WEIGHT)
    {
        return Err(DrawError::Weight {
            uscc: c.uscc.clone(),
            weight: c.weight,
        });
    }
    if target_count as usize > candidates.len() {
        return Err(DrawError::TooFewCandidates {
            wanted: target_count,
            available: candidates.len(),
        });
    }
    let mut canonical_pools = Vec::with_capacity(pools.len());
    let mut departments = BTreeSet::new();
    for (department, mut register, count) in pools {
        if !departments.insert(department) {
            return Err(DrawError::DuplicateDepartment(department));
        }
        if count < MIN_INSPECTORS {
            return Err(DrawError::TooFewPerDepartment { department, count });
        }
        if let Some(i) = register.iter().find(|i| i.certificate_number.is_empty()) {
            return Err(DrawError::MissingCertificate {
                department,
                name: i.name.clone(),
            });
        }
        register.sort_by(|a, b| a.certificate_number.cmp(&b.certificate_number));
        for pair in register.windows(2) {
            if pair[0].certificate_number == pair[1].certificate_number {
                return Err(DrawError::DuplicateInspector {
                    department,
                    certificate: pair[0].certificate_number.clone(),
                });
            }
        }
        if count as usize > register.len() {
            return Err(DrawError::TooFewInspectors {
                department,
                wanted: count,
                available: register.len(),
            });
        }
        canonical_pools.push((department, register, count));
    }
    canonical_pools.sort_by(|a, b| a.0.code().cmp(b.0.code()));

    let weights: Vec<u64> = candidates.iter().map(|c| u64::from(c.weight)).collect();
    let picks = weighted_sample(&seed, "targets", &weights, target_count as usize);
    let drawn_targets = picks.iter().map(|&i| candidates[i].uscc.clone()).collect();
    let pools = canonical_pools
        .into_iter()
        .map(|(department, register, count)| {
            let label = format!("inspectors:{}", department.code());
            let ones = vec![1; register.len()];
            let drawn = weighted_sample(&seed, &label, &ones, count as usize)
                .into_iter()
                .map(|i| register[i].clone())
                .collect();
            Pool {
                department,
                candidates: register,
                count,
                drawn,
            }
        })
        .collect();
    Ok(DrawRecord {
        algorithm: ALGORITHM.to_owned(),
        seed,
        candidates,
        target_count,
        drawn_targets,
        pools,
    })
}

/// Re-runs a recorded draw from its recorded inputs (seed, candidates and weights, counts, registers).
pub fn redraw(record: &DrawRecord) -> Result<DrawRecord, DrawError> {
    if record.algorithm != ALGORITHM {
        return Err(DrawError::UnknownAlgorithm(record.algorithm.clone()));
    }
    draw(DrawInput {
        seed: record.seed.clone(),
        candidates: record.candidates.clone(),
        target_count: record.target_count,
        pools: record
            .pools
            .iter()
            .map(|p| (p.department, p.candidates.clone(), p.count))
            .collect(),
    })
}

/// What a re-run found different from the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discrepancy {
    /// The recorded inputs do not make a valid draw.
    Invalid(DrawError),
    /// The targets differ.
    Targets {
        recorded: Vec<Uscc>,
        redrawn: Vec<Uscc>,
    },
    /// The inspectors of a department differ (or the pools do not line up).
    Inspectors {
        department: Department,
        recorded: Vec<Inspector>,
        redrawn: Vec<Inspector>,
    },
    /// The record is not in canonical order or its pools are not the ones the inputs give.
    NotCanonical(String),
}

impl std::fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let usccs = |v: &[Uscc]| v.iter().map(Uscc::as_str).collect::<Vec<_>>().join(", ");
        let names = |v: &[Inspector]| {
            v.iter()
                .map(|i| format!("{} ({})", i.name, i.certificate_number))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Discrepancy::Invalid(e) => write!(f, "the recorded inputs do not make a draw: {e}"),
            Discrepancy::Targets { recorded, redrawn } => write!(
                f,
                "targets differ: recorded [{}], redrawn [{}]",
                usccs(recorded),
                usccs(redrawn)
            ),
            Discrepancy::Inspectors {
                department,
                recorded,
                redrawn,
            } => write!(
                f,
                "inspectors of {department} differ: recorded [{}], redrawn [{}]",
                names(recorded),
                names(redrawn)
            ),
            Discrepancy::NotCanonical(what) => write!(f, "the record is not canonical: {what}"),
        }
    }
}

/// Re-runs a recorded draw and compares: `Ok` with the re-run if it reproduces the record exactly.
pub fn verify(record: &DrawRecord) -> Result<DrawRecord, Vec<Discrepancy>> {
    let redrawn = redraw(record).map_err(|e| vec![Discrepancy::Invalid(e)])?;
    let mut found = Vec::new();
    if redrawn.candidates != record.candidates {
        found.push(Discrepancy::NotCanonical(
            "the candidates are not sorted by USCC".into(),
        ));
    }
    if redrawn.drawn_targets != record.drawn_targets {
        found.push(Discrepancy::Targets {
            recorded: record.drawn_targets.clone(),
            redrawn: redrawn.drawn_targets.clone(),
        });
    }
    if redrawn.pools.len() != record.pools.len() {
        found.push(Discrepancy::NotCanonical(format!(
            "{} pools recorded, {} redrawn",
            record.pools.len(),
            redrawn.pools.len()
        )));
    }
    for (recorded, again) in record.pools.iter().zip(&redrawn.pools) {
        if recorded.department != again.department || recorded.candidates != again.candidates {
            found.push(Discrepancy::NotCanonical(format!(
                "the pool of {} is not in canonical order",
                recorded.department
            )));
        }
        if recorded.drawn != again.drawn {
            found.push(Discrepancy::Inspectors {
                department: recorded.department,
                recorded: recorded.drawn.clone(),
                redrawn: again.drawn.clone(),
            });
        }
    }
    if found.is_empty() {
        Ok(redrawn)
    } else {
        Err(found)
    }
}

/// The stream of 64-bit words labelled `label` (see the module documentation).
struct Words<'a> {
    seed: &'a [u8],
    label: &'a str,
    index: u64,
}

impl Words<'_> {
    fn next_word(&mut self) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(ALGORITHM.as_bytes());
        hasher.update([0]);
        hasher.update(self.label.as_bytes());
        hasher.update([0]);
        hasher.update(self.seed);
        hasher.update(self.index.to_be_bytes());
        self.index += 1;
        let digest = hasher.finalize();
        let mut word = [0u8; 8];
        word.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(word)
    }

    /// Uniform below `n` (n ≥ 1), by rejecting words below `2^64 mod n`.
    fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let r = (u64::MAX % n + 1) % n;
        loop {
            let x = self.next_word();
            if x >= r {
                return x % n;
            }
        }
    }
}

/// Indices of `k` items picked without replacement, with probability proportional to weight at each pick.
fn weighted_sample(seed: &[u8], label: &str, weights: &[u64], k: usize) -> Vec<usize> {
    let mut words = Words {
        seed,
        label,
        index: 0,
    };
    let mut remaining: Vec<usize> = (0..weights.len()).collect();
    let mut total: u64 = weights.iter().sum();
    let mut picks = Vec::with_capacity(k);
    for _ in 0..k {
        let t = words.below(total);
        let mut running = 0u64;
        let position = remaining
            .iter()
            .position(|&i| {
                running += weights[i];
                running > t
            })
            .expect("t is below the total of the remaining weights");
        let picked = remaining.remove(position);
        total -= weights[picked];
        picks.push(picked);
    }
    picks
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uscc(n: u32) -> Uscc {
        Uscc::with_check(&format!("91320600MA{n:07}")).unwrap()
    }

    fn inspector(department: &str, n: u32) -> Inspector {
        Inspector {
            certificate_number: format!("{department}-{n:04}"),
            name: format!("inspector {n}"),
        }
    }

    fn input(seed: u8, candidates: u32, targets: u32) -> DrawInput {
        DrawInput {
            seed: vec![seed; SEED_LEN],
            candidates: (0..candidates)
                .map(|n| Candidate {
                    uscc: uscc(n),
                    weight: 1 + n % 5,
                    factors: vec![],
                })
                .collect(),
            target_count: targets,
            pools: vec![
                (
                    Department::Emergency,
                    (0..6).map(|n| inspector("E", n)).collect(),
                    2,
                ),
                (
                    Department::Fire,
                    (0..4).map(|n| inspector("F", n)).collect(),
                    3,
                ),
            ],
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_draw() {
        let a = draw(input(7, 20, 5)).unwrap();
        let b = draw(input(7, 20, 5)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.drawn_targets.len(), 5);
        assert_eq!(a.algorithm, ALGORITHM);
        let unique: BTreeSet<_> = a.drawn_targets.iter().collect();
        assert_eq!(unique.len(), 5, "without replacement");
        assert_eq!(verify(&a).unwrap(), a);
    }

    #[test]
    fn the_input_order_does_not_matter() {
        let a = draw(input(7, 20, 5)).unwrap();
        let mut shuffled = input(7, 20, 5);
        shuffled.candidates.reverse();
        shuffled.pools.reverse();
        for pool in &mut shuffled.pools {
            pool.1.reverse();
        }
        assert_eq!(draw(shuffled).unwrap(), a);
    }

    #[test]
    fn another_seed_gives_another_draw() {
        let a = draw(input(7, 40, 5)).unwrap();
        let b = draw(input(8, 40, 5)).unwrap();
        assert_ne!(a.drawn_targets, b.drawn_targets);
    }

    #[test]
    fn changing_a_drawn_candidate_changes_the_redraw() {
        let record = draw(input(7, 20, 5)).unwrap();
        let mut altered = record.clone();
        // Replace the first drawn candidate by an enterprise that was not a candidate at all.
        let victim = record.drawn_targets[0].clone();
        let slot = altered
            .candidates
            .iter_mut()
            .find(|c| c.uscc == victim)
            .unwrap();
        slot.uscc = uscc(9_999_999);
        altered
            .candidates
            .sort_by(|a, b| a.uscc.as_str().cmp(b.uscc.as_str()));
        let redrawn = redraw(&altered).unwrap();
        assert_ne!(redrawn.drawn_targets, record.drawn_targets);
        assert!(!redrawn.drawn_targets.contains(&victim));
        let problems = verify(&altered).unwrap_err();
        assert!(
            matches!(problems[0], Discrepancy::Targets { .. }),
            "{problems:?}"
        );
    }

    #[test]
    fn changing_a_weight_is_detected_by_verify() {
        let record = draw(input(3, 30, 10)).unwrap();
        // Some change of one weight changes the draw; find one (deterministically) and show verify catches it.
        let caught = (0..record.candidates.len()).any(|i| {
            let mut altered = record.clone();
            altered.candidates[i].weight = MAX_WEIGHT;
            verify(&altered).is_err()
        });
        assert!(caught);
    }

    #[test]
    fn at_least_two_inspectors_per_department() {
        let mut one = input(1, 5, 1);
        one.pools[0].2 = 1;
        assert_eq!(
            draw(one).unwrap_err(),
            DrawError::TooFewPerDepartment {
                department: Department::Emergency,
                count: 1
            }
        );
        let mut many = input(1, 5, 1);
        many.pools[1].2 = 5;
        assert_eq!(
            draw(many).unwrap_err(),
            DrawError::TooFewInspectors {
                department: Department::Fire,
                wanted: 5,
                available: 4
            }
        );
        let record = draw(input(1, 5, 1)).unwrap();
        for pool in &record.pools {
            assert!(pool.drawn.len() >= 2);
            let unique: BTreeSet<_> = pool.drawn.iter().collect();
            assert_eq!(unique.len(), pool.drawn.len());
        }
    }

    #[test]
    fn bad_inputs_are_refused() {
        let mut dup = input(1, 5, 1);
        dup.candidates.push(dup.candidates[0].clone());
        assert!(matches!(draw(dup), Err(DrawError::DuplicateCandidate(_))));
        let mut zero = input(1, 5, 1);
        zero.candidates[2].weight = 0;
        assert!(matches!(draw(zero), Err(DrawError::Weight { .. })));
        assert!(matches!(
            draw(input(1, 3, 4)),
            Err(DrawError::TooFewCandidates {
                wanted: 4,
                available: 3
            })
        ));
        let mut seedless = input(1, 5, 1);
        seedless.seed.clear();
        assert_eq!(draw(seedless), Err(DrawError::SeedLength(0)));
        let mut twice = input(1, 5, 1);
        twice.pools[1].0 = Department::Emergency;
        assert_eq!(
            draw(twice),
            Err(DrawError::DuplicateDepartment(Department::Emergency))
        );
        let mut unknown = draw(input(1, 5, 1)).unwrap();
        unknown.algorithm = "other-v9".into();
        assert!(matches!(
            redraw(&unknown),
            Err(DrawError::UnknownAlgorithm(_))
        ));
    }

    #[test]
    fn pools_are_in_department_code_order() {
        let mut i = input(1, 5, 1);
        i.pools.push((
            Department::Eeb,
            (0..3).map(|n| inspector("B", n)).collect(),
            2,
        ));
        let record = draw(i).unwrap();
        let codes: Vec<&str> = record.pools.iter().map(|p| p.department.code()).collect();
        assert_eq!(codes, ["eeb", "emergency", "fire"]);
    }

    /// Known-answer vector: pins the algorithm so that a change to it cannot pass unnoticed. An auditor's
    /// implementation must give the same picks.
    #[test]
    fn known_answer() {
        let mut words = Words {
            seed: &[0u8; 32],
            label: "targets",
            index: 0,
        };
        let first = words.next_word();
        let mut hasher = Sha256::new();
        hasher.update(b"hazchem-draw-v1\0targets\0");
        hasher.update([0u8; 32]);
        hasher.update(0u64.to_be_bytes());
        let digest = hasher.finalize();
        assert_eq!(first.to_be_bytes(), digest[..8]);

        let record = draw(DrawInput {
            seed: (0u8..32).collect(),
            candidates: (0..10)
                .map(|n| Candidate {
                    uscc: uscc(n),
                    weight: n + 1,
                    factors: vec![],
                })
                .collect(),
            target_count: 3,
            pools: vec![(
                Department::Emergency,
                (0..5).map(|n| inspector("E", n)).collect(),
                2,
            )],
        })
        .unwrap();
        let picks: Vec<String> = record
            .drawn_targets
            .iter()
            .map(|u| u.as_str()[10..17].to_owned())
            .collect();
        let inspectors: Vec<&str> = record.pools[0]
            .drawn
            .iter()
            .map(|i| i.certificate_number.as_str())
            .collect();
        // Computed independently by the Python reference implementation in docs/ENFORCEMENT.md.
        assert_eq!(picks, ["0000006", "0000004", "0000009"]);
        assert_eq!(inspectors, ["E-0004", "E-0001"]);
    }

    #[test]
    fn weights_bias_the_draw() {
        // One heavy candidate among many light ones is drawn far more often than its share of 1/20.
        let mut heavy = 0;
        for seed in 0..200u8 {
            let mut i = input(seed, 20, 1);
            for c in &mut i.candidates {
                c.weight = 1;
            }
            i.candidates[0].weight = 20;
            let record = draw(i).unwrap();
            if record.drawn_targets[0] == uscc(0) {
                heavy += 1;
            }
        }
        // Expected share 20/39 ≈ 0.51 of 200 ≈ 103; uniform would be 10.
        assert!(
            (70..=140).contains(&heavy),
            "heavy drawn {heavy} times of 200"
        );
    }

    proptest! {
        #[test]
        fn a_recorded_draw_always_reproduces(
            seed in proptest::collection::vec(any::<u8>(), 1..=64),
            weights in proptest::collection::vec(1u32..=MAX_WEIGHT, 0..40),
            target_share in 0.0f64..=1.0,
            register_sizes in proptest::collection::vec(2usize..12, 1..5),
        ) {
            let candidates: Vec<Candidate> = weights.iter().enumerate().map(|(n, &w)| Candidate {
                uscc: uscc(u32::try_from(n).unwrap() * 7919 % 10_000_000),
                weight: w,
                factors: vec![],
            }).collect();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let target_count = (candidates.len() as f64 * target_share).floor() as u32;
            let pools = register_sizes.iter().zip(Department::ALL).map(|(&size, d)| {
                let register = (0..size).map(|n| inspector(d.code(), u32::try_from(n * 31 % 97).unwrap())).collect::<Vec<_>>();
                let count = u32::try_from(2 + size % (size - 1)).unwrap().min(u32::try_from(size).unwrap());
                (d, register, count)
            }).collect();
            let record = draw(DrawInput { seed, candidates, target_count, pools }).unwrap();
            prop_assert_eq!(record.drawn_targets.len(), target_count as usize);
            prop_assert_eq!(verify(&record), Ok(record.clone()));
        }
    }
}
