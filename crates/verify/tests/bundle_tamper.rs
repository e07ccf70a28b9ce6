//! Tamper tests on offline bundles: each way of falsifying the record makes `verify_bundle` fail and name
//! what and where; an intact bundle verifies with nothing but the public key.

#![allow(clippy::disallowed_methods)] // tests: a bundle's createdAt is descriptive

use std::path::{Path, PathBuf};

use hazchem_verify::bundle::{self, BundleRecord, BundleWriter};
use hazchem_verify::merkle::{self, MemoryTree};
use hazchem_verify::note::{Checkpoint, NoteSigner, VerifierKey};
use hazchem_verify::verify::{ProblemKind, Requirements, VerifyFailure};

const N: u64 = 100;
const ORIGIN: &str = "hazchem.example/ledger";

/// A record: the exact bytes are the leaf, and the verifier never decodes them. (The ledger's leaves are
/// encoded `hazchem.v1.Record`s; this crate does not depend on the protobuf code, so these are bytes of
/// the same kind of content and a similar size.)
fn record(i: u64, variant: &str) -> Vec<u8> {
    format!(
        "spec_version=1.0 id=ev-{i:04} source=/departments/emergency/test subject=subject {i} {variant} \
         publisher=emergency accepted_at={}",
        1_790_000_000 + i
    )
    .into_bytes()
}

struct Log {
    records: Vec<Vec<u8>>,
    tree: MemoryTree,
}

impl Log {
    fn new(n: u64, altered: Option<u64>) -> Self {
        let records: Vec<Vec<u8>> = (0..n)
            .map(|i| record(i, if Some(i) == altered { "rewritten" } else { "" }))
            .collect();
        let tree = MemoryTree::from_leaf_hashes(records.iter().map(|r| merkle::leaf_hash(r)));
        Log { records, tree }
    }

    fn checkpoint(&self, signer: &NoteSigner, size: u64) -> String {
        signer.sign_checkpoint(&Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: merkle::root(&self.tree, size).unwrap(),
        })
    }

    /// Writes a bundle of the whole log; `earlier` is an earlier checkpoint to include with its
    /// consistency proof from this log.
    fn export(
        &self,
        dir: &Path,
        signer: &NoteSigner,
        proofs: bool,
        earlier: Option<&str>,
    ) -> PathBuf {
        let size = self.records.len() as u64;
        let mut writer = BundleWriter::create(dir).unwrap();
        for (i, r) in self.records.iter().enumerate() {
            writer
                .write_record(&BundleRecord {
                    index: i as u64,
                    record: r.clone(),
                    proof: proofs
                        .then(|| merkle::inclusion_proof(&self.tree, i as u64, size).unwrap()),
                })
                .unwrap();
        }
        let earlier = earlier.map(|note| {
            let m = hazchem_verify::note::unverified_checkpoint(note)
                .unwrap()
                .size;
            (
                note,
                merkle::consistency_proof(&self.tree, m, size).unwrap(),
            )
        });
        writer
            .finish(
                &self.checkpoint(signer, size),
                Some(&signer.verifier()),
                earlier.as_ref().map(|(n, p)| (*n, p.as_slice())),
                chrono::Utc::now(),
            )
            .unwrap()
    }
}

fn signer() -> NoteSigner {
    NoteSigner::new(
        ORIGIN,
        hazchem_verify::ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
    )
    .unwrap()
}

/// Rewrites `records.jsonl` through `edit`.
fn edit_records(dir: &Path, edit: impl FnOnce(&mut Vec<BundleRecord>)) {
    let path = dir.join(bundle::RECORDS);
    let mut records: Vec<BundleRecord> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| BundleRecord::from_line(l).unwrap())
        .collect();
    edit(&mut records);
    let text: String = records.iter().map(|r| r.to_line() + "\n").collect();
    std::fs::write(path, text).unwrap();
}

fn since(note: &str) -> Requirements {
    Requirements {
        since: Some(note.to_owned()),
        ..Requirements::default()
    }
}

fn verify(
    dir: &Path,
    key: &VerifierKey,
) -> Result<hazchem_verify::verify::Verified, VerifyFailure> {
    bundle::verify_bundle(dir, key.clone(), &Requirements::default())
}

fn expect_failure(
    dir: &Path,
    key: &VerifierKey,
    kind: ProblemKind,
    index: Option<u64>,
    needle: &str,
) {
    let failure = verify(dir, key).expect_err("the tampered bundle must not verify");
    let first = failure.first();
    assert_eq!(
        first.kind, kind,
        "first problem: {failure}; all: {:?}",
        failure.problems
    );
    assert_eq!(first.index, index, "first problem: {failure}");
    assert!(
        failure.to_string().contains(needle),
        "expected {needle:?} in: {failure}"
    );
}

#[test]
fn an_intact_bundle_verifies_with_only_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let log = Log::new(N, None);
    let path = log.export(&dir.path().join("b"), &s, true, None);
    let verified = verify(&path, &s.verifier()).unwrap();
    assert_eq!(verified.records, N);
    assert_eq!(verified.inclusion_proofs, N);
    assert_eq!(verified.checkpoint.size, N);
    // The bare public key (as in ledger.pub) works as well as the vkey string.
    let bare = VerifierKey::parse(&s.verifier().public_key().to_pem()).unwrap();
    verify(&path, &bare).unwrap();
    // Without proofs too.
    let plain = log.export(&dir.path().join("plain"), &s, false, None);
    assert_eq!(verify(&plain, &s.verifier()).unwrap().inclusion_proofs, 0);
}

#[test]
fn flipping_one_byte_of_a_record_names_the_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let path = Log::new(N, None).export(&dir.path().join("b"), &s, true, None);
    edit_records(&path, |r| {
        let last = r[17].record.len() - 1;
        r[17].record[last] ^= 0x01;
    });
    expect_failure(
        &path,
        &s.verifier(),
        ProblemKind::Altered,
        Some(17),
        "leaf 17: the record was altered",
    );
    let failure = verify(&path, &s.verifier()).unwrap_err();
    // The root disagrees too, and only leaf 17's proof fails.
    assert!(
        failure
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::RootMismatch)
    );
    assert_eq!(
        failure
            .problems
            .iter()
            .filter(|p| p.kind == ProblemKind::Altered)
            .count(),
        1
    );
}

#[test]
fn flipping_one_byte_without_proofs_says_the_root_disagrees() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let path = Log::new(N, None).export(&dir.path().join("b"), &s, false, None);
    edit_records(&path, |r| r[63].record[3] ^= 0x40);
    let failure = verify(&path, &s.verifier()).unwrap_err();
    assert_eq!(failure.first().kind, ProblemKind::RootMismatch);
    assert!(
        failure
            .to_string()
            .contains("root at size 100 does not match the checkpoint"),
        "{failure}"
    );
    assert!(failure.needs_location());
}

#[test]
fn flipping_a_byte_of_the_file_itself_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let path = Log::new(N, None).export(&dir.path().join("b"), &s, true, None);
    let file = path.join(bundle::RECORDS);
    let mut bytes = std::fs::read(&file).unwrap();
    // Somewhere inside line 30's base64 record.
    let line_start = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(29)
        .unwrap()
        .0
        + 1;
    let at = line_start + r#"{"index":30,"sequence":31,"record":""#.len() + 10;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&file, bytes).unwrap();
    expect_failure(
        &path,
        &s.verifier(),
        ProblemKind::Altered,
        Some(30),
        "leaf 30",
    );
}

#[test]
fn deleting_a_record_names_the_missing_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let path = Log::new(N, None).export(&dir.path().join("b"), &s, true, None);
    edit_records(&path, |r| {
        r.remove(41);
    });
    expect_failure(
        &path,
        &s.verifier(),
        ProblemKind::Missing,
        Some(41),
        "leaf 41 missing",
    );
}

#[test]
fn deleting_the_last_record_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let path = Log::new(N, None).export(&dir.path().join("b"), &s, false, None);
    edit_records(&path, |r| {
        r.pop();
    });
    expect_failure(
        &path,
        &s.verifier(),
        ProblemKind::Missing,
        Some(99),
        "leaf 99 missing",
    );
}

#[test]
fn deleting_and_renumbering_is_caught_at_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let path = Log::new(N, None).export(&dir.path().join("b"), &s, true, None);
    edit_records(&path, |r| {
        r.remove(41);
        for (i, rec) in r.iter_mut().enumerate() {
            rec.index = i as u64;
        }
    });
    // Record 42 now claims to be leaf 41; its proof (for 42) does not hold there.
    expect_failure(
        &path,
        &s.verifier(),
        ProblemKind::Altered,
        Some(41),
        "leaf 41",
    );
}

#[test]
fn swapping_two_records_names_the_first_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let path = Log::new(N, None).export(&dir.path().join("b"), &s, true, None);
    edit_records(&path, |r| r.swap(17, 18));
    expect_failure(
        &path,
        &s.verifier(),
        ProblemKind::OutOfOrder,
        Some(17),
        "leaf 17: index out of order (expected 17, got 18)",
    );
    // Far apart, too.
    let far = Log::new(N, None).export(&dir.path().join("far"), &s, true, None);
    edit_records(&far, |r| r.swap(5, 80));
    expect_failure(
        &far,
        &s.verifier(),
        ProblemKind::OutOfOrder,
        Some(5),
        "leaf 5: index out of order (expected 5, got 80)",
    );
}

#[test]
fn swapping_contents_but_keeping_the_indices_names_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let path = Log::new(N, None).export(&dir.path().join("b"), &s, false, None);
    edit_records(&path, |r| {
        let (a, b) = (r[17].record.clone(), r[18].record.clone());
        r[17].record = b;
        r[18].record = a;
    });
    // Without proofs only the root can disagree.
    expect_failure(
        &path,
        &s.verifier(),
        ProblemKind::RootMismatch,
        Some(N),
        "root at size 100",
    );
    let with_proofs = Log::new(N, None).export(&dir.path().join("p"), &s, true, None);
    edit_records(&with_proofs, |r| {
        let (a, b) = (r[17].record.clone(), r[18].record.clone());
        r[17].record = b;
        r[18].record = a;
    });
    expect_failure(
        &with_proofs,
        &s.verifier(),
        ProblemKind::Altered,
        Some(17),
        "leaf 17",
    );
}

#[test]
fn a_checkpoint_with_a_bad_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let path = Log::new(N, None).export(&dir.path().join("b"), &s, true, None);
    let note_path = path.join(bundle::CHECKPOINT);
    let note = std::fs::read_to_string(&note_path).unwrap();
    // Claim a different size, keep the signature.
    std::fs::write(&note_path, note.replacen("\n100\n", "\n99\n", 1)).unwrap();
    expect_failure(
        &path,
        &s.verifier(),
        ProblemKind::CheckpointSignature,
        None,
        "does not verify",
    );
    // A checkpoint signed by someone else is not trusted either.
    let other = signer();
    let forged = Log::new(N, Some(3)).checkpoint(&other, N);
    std::fs::write(&note_path, forged).unwrap();
    expect_failure(
        &path,
        &s.verifier(),
        ProblemKind::CheckpointSignature,
        None,
        "no signature by the trusted key",
    );
}

#[test]
fn a_forked_history_is_refused_against_an_earlier_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    // The auditor saved a checkpoint of size 50 of the true history.
    let truth = Log::new(N, None);
    let saved = truth.checkpoint(&s, 50);
    // Later the operator rewrote leaf 20 and signed the rewritten history (same key: a fork).
    let forked = Log::new(N, Some(20));
    let path = forked.export(
        &dir.path().join("b"),
        &s,
        true,
        Some(&forked.checkpoint(&s, 50)),
    );
    // On its own, the forked bundle is self-consistent...
    verify(&path, &s.verifier()).unwrap();
    // ...but not against what the auditor saved.
    let failure = bundle::verify_bundle(&path, s.verifier(), &since(&saved)).unwrap_err();
    assert!(failure.to_string().contains("forked history"), "{failure}");
    assert_eq!(failure.first().index, Some(49), "{failure}");
    let kinds: Vec<ProblemKind> = failure.problems.iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&ProblemKind::Fork), "{kinds:?}");
    assert!(kinds.contains(&ProblemKind::Inconsistent), "{kinds:?}");
    // The true history extends the saved checkpoint.
    let good = truth.export(&dir.path().join("good"), &s, false, Some(&saved));
    let verified = bundle::verify_bundle(&good, s.verifier(), &since(&saved)).unwrap();
    assert_eq!(verified.earlier.map(|e| e.size), Some(50));
    assert!(verified.consistency_proof);
}

#[test]
fn a_shrunk_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let log = Log::new(N, None);
    let path = log.export(&dir.path().join("b"), &s, false, None);
    let bigger = Log::new(N + 10, None).checkpoint(&s, N + 10);
    let failure = bundle::verify_bundle(&path, s.verifier(), &since(&bigger)).unwrap_err();
    assert_eq!(failure.first().kind, ProblemKind::EarlierCheckpoint);
    assert!(failure.to_string().contains("the log shrank"), "{failure}");
}

/// Replaces `records.jsonl` with raw lines, as a forger would write them (not through
/// [`BundleRecord::to_line`], which numbers lines honestly and so cannot build every forgery).
fn write_raw_lines(dir: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join(bundle::RECORDS), text).unwrap();
}

fn raw_line(index: &str, record: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        r#"{{"index":{index},"sequence":1,"record":"{}"}}"#,
        base64::engine::general_purpose::STANDARD.encode(record)
    )
}

#[test]
fn a_forged_log_behind_a_genuine_checkpoint_never_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let path = Log::new(N, None).export(&dir.path().join("b"), &s, false, None);
    // Made-up records behind the genuine checkpoint, the first claiming the largest index there is.
    let forged: Vec<String> = (0..1048u64)
        .map(|i| {
            let index = if i == 0 {
                u64::MAX.to_string()
            } else {
                i.to_string()
            };
            raw_line(&index, &record(i, "made up"))
        })
        .collect();
    write_raw_lines(&path, &forged);
    let failure = verify(&path, &s.verifier()).expect_err("a forged log must not verify");
    assert_eq!(failure.first().index, Some(0), "{failure}");
    assert!(
        failure
            .to_string()
            .contains("leaf 0: the record claims index 18446744073709551615"),
        "{failure}"
    );
    // One such line alone.
    write_raw_lines(&path, &forged[..1]);
    let failure = verify(&path, &s.verifier()).expect_err("one forged line must not verify");
    assert_eq!(failure.first().index, Some(0), "{failure}");
    // Every extreme or out-of-range index, alone or in place of an honest one.
    let honest: Vec<String> = std::fs::read_to_string(
        Log::new(N, None)
            .export(&dir.path().join("honest"), &s, false, None)
            .join(bundle::RECORDS),
    )
    .unwrap()
    .lines()
    .map(str::to_owned)
    .collect();
    for claim in [u64::MAX, u64::MAX - 1, 1 << 63, N, N + 1] {
        for at in [0usize, 1, 50, 99] {
            let mut lines = honest.clone();
            lines[at] = raw_line(&claim.to_string(), &record(at as u64, ""));
            write_raw_lines(&path, &lines);
            let failure =
                verify(&path, &s.verifier()).expect_err("an out-of-range index must not verify");
            assert_eq!(
                failure.first().index,
                Some(at as u64),
                "claim {claim} at {at}: {failure}"
            );
            assert!(
                failure
                    .to_string()
                    .contains(&format!("claims index {claim}")),
                "{failure}"
            );
        }
    }
    // A negative or fractional index is not an index: the line is malformed, and names its position.
    for claim in ["-1", "1.5", "\"7\"", "null"] {
        let mut lines = honest.clone();
        lines[7] = raw_line(claim, &record(7, ""));
        write_raw_lines(&path, &lines);
        let failure = verify(&path, &s.verifier()).expect_err("a bad index must not verify");
        assert_eq!(failure.first().kind, ProblemKind::Malformed, "{failure}");
        assert_eq!(failure.first().index, Some(7), "{failure}");
    }
    // A blank line takes a position like any other: it is not skipped.
    let mut lines = honest.clone();
    lines.insert(10, String::new());
    lines.pop();
    write_raw_lines(&path, &lines);
    let failure = verify(&path, &s.verifier()).expect_err("a blank line must not verify");
    assert_eq!(failure.first().index, Some(10), "{failure}");
    // And the honest lines, written raw, still verify.
    write_raw_lines(&path, &honest);
    assert_eq!(verify(&path, &s.verifier()).unwrap().records, N);
}

// ---- Witnesses required ----

/// Five witnesses of the log, each cosigning in process.
fn witnesses(s: &NoteSigner) -> Vec<hazchem_verify::Witness> {
    (0..5u8)
        .map(|i| {
            hazchem_verify::Witness::new(
                hazchem_verify::Cosigner::new(
                    &format!("witness.example/w{i}"),
                    hazchem_verify::ed25519_dalek::SigningKey::from_bytes(&[50 + i; 32]),
                )
                .unwrap(),
                vec![s.verifier()],
                None,
            )
            .unwrap()
        })
        .collect()
}

/// `note` with the cosignatures of every witness that accepts it (from old size 0).
fn cosigned(note: &str, witnesses: &mut [hazchem_verify::Witness]) -> String {
    let lines: Vec<String> = witnesses
        .iter_mut()
        .filter_map(|w| {
            let request = hazchem_verify::witness::AddCheckpoint {
                old: w.last(ORIGIN).map_or(0, |seen| seen.size),
                proof: vec![],
                note: note.to_owned(),
            };
            w.add_checkpoint(&request, 1_790_000_000).ok()
        })
        .collect();
    hazchem_verify::witness::add_cosignatures(note, &lines)
}

fn requiring(witnesses: &[hazchem_verify::Witness], required: usize) -> Requirements {
    Requirements {
        witnesses: hazchem_verify::Witnesses {
            known: witnesses.iter().map(hazchem_verify::Witness::key).collect(),
            required,
        },
        ..Requirements::default()
    }
}

#[test]
fn a_re_signed_history_verifies_by_the_log_key_alone_but_not_with_witnesses_required() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let mut ws = witnesses(&s);
    // The honest checkpoint, cosigned by all five.
    let truth = Log::new(N, None);
    let honest = truth.export(&dir.path().join("honest"), &s, true, None);
    let note_path = honest.join(bundle::CHECKPOINT);
    let note = cosigned(&std::fs::read_to_string(&note_path).unwrap(), &mut ws);
    std::fs::write(&note_path, &note).unwrap();
    let verified = bundle::verify_bundle(&honest, s.verifier(), &requiring(&ws, 5)).unwrap();
    assert_eq!(verified.cosigned.unwrap().good.len(), 5);

    // The operator rewrote leaf 20 and signed the rewritten history with the log's key: the witnesses,
    // which cosigned the honest checkpoint of that size, refuse it (a fork), so it carries only the
    // honest note's cosignature lines, copied, which do not verify for its text.
    let forged = Log::new(N, Some(20));
    let path = forged.export(&dir.path().join("forged"), &s, true, None);
    let forged_note = std::fs::read_to_string(path.join(bundle::CHECKPOINT)).unwrap();
    assert_eq!(
        cosigned(&forged_note, &mut ws),
        forged_note,
        "every witness refuses the fork"
    );
    let copied: Vec<String> = note
        .lines()
        .filter(|l| l.starts_with("\u{2014} witness.example/"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(copied.len(), 5);
    std::fs::write(
        path.join(bundle::CHECKPOINT),
        hazchem_verify::witness::add_cosignatures(&forged_note, &copied),
    )
    .unwrap();
    // By the log key alone it verifies: its records reproduce its (re-signed) root.
    verify(&path, &s.verifier()).expect("the log key alone vouches for the re-signed history");
    // With any witness required it does not, and nothing else is checked against it.
    for required in [1, 3, 5] {
        let failure = bundle::verify_bundle(&path, s.verifier(), &requiring(&ws, required))
            .expect_err("a checkpoint no witness cosigned");
        assert_eq!(failure.first().kind, ProblemKind::Witnesses, "{failure}");
        assert!(
            failure.to_string().contains(&format!(
                "the checkpoint carries 0 good cosignature(s) of the 5 known witnesses, fewer than the \
                 {required} required"
            )),
            "{failure}"
        );
    }
    // Tampering with the honest bundle is still caught with witnesses required.
    edit_records(&honest, |r| r[17].record[3] ^= 1);
    let failure = bundle::verify_bundle(&honest, s.verifier(), &requiring(&ws, 5)).unwrap_err();
    assert_eq!(failure.first().kind, ProblemKind::Altered, "{failure}");
    assert_eq!(failure.first().index, Some(17));
}

#[test]
fn a_fork_shown_to_some_witnesses_gets_only_their_cosignatures() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let mut ws = witnesses(&s);
    // Witnesses 0 and 1 saw the honest checkpoint first; the forked one reaches all five.
    let honest_note = Log::new(N, None).checkpoint(&s, N);
    cosigned(&honest_note, &mut ws[..2]);
    let forged = Log::new(N, Some(63));
    let path = forged.export(&dir.path().join("fork"), &s, false, None);
    let note_path = path.join(bundle::CHECKPOINT);
    let note = cosigned(&std::fs::read_to_string(&note_path).unwrap(), &mut ws);
    std::fs::write(&note_path, note).unwrap();
    // Three witnesses (who never saw the honest one) cosigned the fork: 3 of 5 passes, a majority of
    // the honest-minded requirement (4) does not.
    bundle::verify_bundle(&path, s.verifier(), &requiring(&ws, 3)).unwrap();
    let failure = bundle::verify_bundle(&path, s.verifier(), &requiring(&ws, 4)).unwrap_err();
    assert_eq!(failure.first().kind, ProblemKind::Witnesses, "{failure}");
    assert!(
        failure
            .to_string()
            .contains("carries 3 good cosignature(s)"),
        "{failure}"
    );
}
