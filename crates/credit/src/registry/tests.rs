//! The registry's rules, one test per rule of the issue, each on both sides of every change.

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn ns(n: i64) -> TimeDelta {
    TimeDelta::nanoseconds(n)
}

fn uscc(n: u32) -> Uscc {
    Uscc::with_check(&format!("91320600MA{n:07}")).unwrap()
}

fn basis() -> Option<LegalBasis> {
    Some(LegalBasis {
        instrument: "《安全生产严重失信主体名单管理办法》(应急管理部令第11号)".into(),
        article: "第六条".into(),
        version: "2023-08-08".into(),
    })
}

fn measure(code: &str, applies_to: &[Department]) -> Measure {
    Measure {
        code: code.into(),
        applies_to: applies_to.to_vec(),
        description: String::new(),
    }
}

struct World {
    registry: Registry,
    sequence: u64,
}

impl World {
    fn new() -> Self {
        World {
            registry: Registry::new(Arc::new(Rules::defaults())),
            sequence: 0,
        }
    }

    fn apply_at(&mut self, recorded_at: DateTime<Utc>, fact: Fact) -> Outcome {
        self.sequence += 1;
        self.registry.apply(Recorded {
            sequence: self.sequence,
            recorded_at,
            fact,
        })
    }

    fn penalty(
        &mut self,
        department: Department,
        number: &str,
        enterprise: &Uscc,
        at: DateTime<Utc>,
    ) {
        let outcome = self.apply_at(
            at,
            Fact::Penalty(Penalty {
                event_id: format!("pen-{number}"),
                department,
                decision_number: number.into(),
                enterprise: enterprise.clone(),
                decided_at: at,
            }),
        );
        assert_eq!(outcome, Outcome::Applied);
    }

    /// A penalty and a serious-dishonest listing by emergency, effective and recorded at `at`.
    fn listed(&mut self, id: &str, enterprise: &Uscc, at: DateTime<Utc>) -> ListingDecision {
        let number = format!("PEN-{id}");
        self.penalty(Department::Emergency, &number, enterprise, at);
        let d = listing(id, enterprise, &number, at);
        assert_eq!(
            self.apply_at(at, Fact::Decision(Decision::Listing(d.clone()))),
            Outcome::Applied
        );
        d
    }
}

fn listing(id: &str, enterprise: &Uscc, penalty: &str, at: DateTime<Utc>) -> ListingDecision {
    ListingDecision {
        event_id: format!("ev-{id}"),
        listing_id: id.into(),
        enterprise: enterprise.clone(),
        enterprise_name: "南通恒信化工贸易有限公司".into(),
        list_type: ListType::SeriousDishonest,
        department: Department::Emergency,
        legal_basis: basis(),
        classification: Classification::Shared,
        reason: "向不具有许可证件的单位销售易制爆危险化学品".into(),
        penalty_decision_number: Some(penalty.into()),
        measures: vec![
            measure(
                "stricter_inspection",
                &[Department::Emergency, Department::Fire],
            ),
            measure(
                "licence_restriction",
                &[Department::Emergency, Department::Approval],
            ),
            measure("procurement_ban", &[]),
        ],
        listed_at: at,
    }
}

fn repair(id: &str, event: &str, at: DateTime<Utc>) -> Decision {
    Decision::Repair(RepairDecision {
        event_id: event.into(),
        listing_id: id.into(),
        department: Department::Emergency,
        legal_basis: basis(),
        reason: "已完成整改并通过核查".into(),
        repaired_at: at,
    })
}

fn revoke(id: &str, event: &str, at: DateTime<Utc>) -> Decision {
    Decision::Revocation(RevocationDecision {
        event_id: event.into(),
        listing_id: id.into(),
        department: Department::Emergency,
        legal_basis: basis(),
        reason: "修复材料系伪造".into(),
        revoked_at: at,
    })
}

fn status(r: &Registry, id: &str, at: DateTime<Utc>) -> Option<Status> {
    r.listing(id).unwrap().status_as_of(at)
}

fn active(r: &Registry, e: &Uscc, at: DateTime<Utc>) -> Vec<String> {
    r.check_at(e, Department::Emergency, at)
        .active
        .into_iter()
        .map(|v| v.listing.id)
        .collect()
}

#[test]
fn a_listing_is_active_from_its_listing_date_with_its_measures() {
    let mut w = World::new();
    let e = uscc(1);
    let at = t("2026-03-01T02:00:00Z");
    w.listed("CL-1", &e, at);
    assert!(active(&w.registry, &e, at - ns(1)).is_empty());
    assert_eq!(active(&w.registry, &e, at), ["CL-1"]);
    let check = w.registry.check_at(&e, Department::Fire, at);
    let codes: Vec<&str> = check.measures.iter().map(|m| m.code.as_str()).collect();
    assert_eq!(codes, ["stricter_inspection", "procurement_ban"]);
    let check = w.registry.check_at(&e, Department::Approval, at);
    let codes: Vec<&str> = check.measures.iter().map(|m| m.code.as_str()).collect();
    assert_eq!(codes, ["licence_restriction", "procurement_ban"]);
    // Another enterprise has nothing.
    assert_eq!(
        w.registry.check_at(&uscc(2), Department::Fire, at),
        CheckResult::default()
    );
}

#[test]
fn a_serious_dishonest_listing_expires_at_exactly_three_years() {
    let mut w = World::new();
    let e = uscc(1);
    let at = t("2026-03-01T02:00:00Z");
    w.listed("CL-1", &e, at);
    let end = t("2029-03-01T02:00:00Z");
    assert_eq!(w.registry.listing("CL-1").unwrap().expires_at, end);
    assert_eq!(
        status(&w.registry, "CL-1", end - ns(1)),
        Some(Status::Active)
    );
    assert_eq!(status(&w.registry, "CL-1", end), Some(Status::Expired));
    assert_eq!(active(&w.registry, &e, end - ns(1)), ["CL-1"]);
    assert!(active(&w.registry, &e, end).is_empty());
    // Its measures go with it.
    assert!(
        w.registry
            .check_at(&e, Department::Fire, end)
            .measures
            .is_empty()
    );
    // The history says so, with the deterministic id of the expiry event.
    let history = &w.registry.history(&e, end)[0].history;
    let last = history.last().unwrap();
    assert_eq!((last.status, last.at), (Status::Expired, end));
    assert_eq!(last.event_id, expiry_event_id("CL-1"));
    assert_eq!(w.registry.history(&e, end - ns(1))[0].history.len(), 1);
}

#[test]
fn terms_are_counted_in_calendar_months_of_china_standard_time() {
    // 2024-02-29 10:00 CST + 36 months = 2027-02-28 10:00 CST.
    assert_eq!(
        add_months(t("2024-02-29T02:00:00Z"), 36),
        t("2027-02-28T02:00:00Z")
    );
    // 2026-01-31 20:00 UTC is 1 February in China: one month later is 1 March 04:00 CST.
    assert_eq!(
        add_months(t("2026-01-31T20:00:00Z"), 1),
        t("2026-02-28T20:00:00Z")
    );
    assert_eq!(
        add_months(t("2026-03-31T20:00:00Z"), 1),
        t("2026-04-30T20:00:00Z")
    );
}

#[test]
fn repair_is_refused_before_twelve_months_and_accepted_from_then() {
    let mut w = World::new();
    let e = uscc(1);
    let at = t("2026-03-01T02:00:00Z");
    w.listed("CL-1", &e, at);
    let earliest = t("2027-03-01T02:00:00Z");
    let early = repair("CL-1", "rep-early", earliest - ns(1));
    let refusal = w.registry.review(&early).unwrap_err();
    assert_eq!(refusal.reason(), "REPAIR_TOO_EARLY");
    assert!(matches!(
        refusal,
        Refusal::Precondition {
            kind: "REPAIR_WAITING_PERIOD",
            ..
        }
    ));
    assert!(
        refusal.to_string().contains("2027-03-01T02:00:00Z"),
        "{refusal}"
    );
    // Applied anyway (it bypassed the guard): ignored, nothing changes.
    let before = w.registry.history(&e, earliest);
    assert!(matches!(
        w.apply_at(earliest, Fact::Decision(early)),
        Outcome::Refused(_)
    ));
    assert_eq!(w.registry.history(&e, earliest), before);

    let ok = repair("CL-1", "rep-ok", earliest);
    w.registry.review(&ok).unwrap();
    assert_eq!(
        w.apply_at(earliest, Fact::Decision(ok.clone())),
        Outcome::Applied
    );
    assert_eq!(
        status(&w.registry, "CL-1", earliest - ns(1)),
        Some(Status::Active)
    );
    assert_eq!(
        status(&w.registry, "CL-1", earliest),
        Some(Status::Repaired)
    );
    assert!(active(&w.registry, &e, earliest).is_empty());
    // A retry of the accepted repair passes the guard (the bus answers it as a duplicate)...
    w.registry.review(&ok).unwrap();
    // ... but a second repair is refused: the listing is no longer active.
    let again = w
        .registry
        .review(&repair("CL-1", "rep-2", earliest))
        .unwrap_err();
    assert_eq!(again.reason(), "LISTING_NOT_ACTIVE");
}

#[test]
fn a_revoked_repair_restores_the_listing() {
    let mut w = World::new();
    let e = uscc(1);
    let at = t("2026-03-01T02:00:00Z");
    w.listed("CL-1", &e, at);
    let repaired = t("2027-04-01T02:00:00Z");
    let revoked = t("2027-06-01T02:00:00Z");
    // Nothing to revoke yet.
    assert_eq!(
        w.registry
            .review(&revoke("CL-1", "rev-0", repaired))
            .unwrap_err()
            .reason(),
        "LISTING_NOT_REPAIRED"
    );
    assert_eq!(
        w.apply_at(repaired, Fact::Decision(repair("CL-1", "rep-1", repaired))),
        Outcome::Applied
    );
    // A revocation before the repair took effect is out of order.
    assert_eq!(
        w.registry
            .review(&revoke("CL-1", "rev-x", repaired - ns(1)))
            .unwrap_err()
            .reason(),
        "DECISION_OUT_OF_ORDER"
    );
    assert_eq!(
        w.apply_at(revoked, Fact::Decision(revoke("CL-1", "rev-1", revoked))),
        Outcome::Applied
    );
    assert_eq!(
        status(&w.registry, "CL-1", repaired - ns(1)),
        Some(Status::Active)
    );
    assert_eq!(
        status(&w.registry, "CL-1", repaired),
        Some(Status::Repaired)
    );
    assert_eq!(
        status(&w.registry, "CL-1", revoked - ns(1)),
        Some(Status::Repaired)
    );
    assert_eq!(status(&w.registry, "CL-1", revoked), Some(Status::Active));
    assert_eq!(active(&w.registry, &e, revoked), ["CL-1"]);
    // The restored listing still ends with its original term.
    let end = t("2029-03-01T02:00:00Z");
    assert_eq!(
        status(&w.registry, "CL-1", end - ns(1)),
        Some(Status::Active)
    );
    assert_eq!(status(&w.registry, "CL-1", end), Some(Status::Expired));
    let statuses: Vec<Status> = w.registry.history(&e, end)[0]
        .history
        .iter()
        .map(|h| h.status)
        .collect();
    assert_eq!(
        statuses,
        [
            Status::Active,
            Status::Repaired,
            Status::Active,
            Status::Expired
        ]
    );
    // A repaired listing that stays repaired never "expires" in its history.
    let mut w2 = World::new();
    w2.listed("CL-2", &e, at);
    w2.apply_at(repaired, Fact::Decision(repair("CL-2", "rep-2", repaired)));
    assert_eq!(status(&w2.registry, "CL-2", end), Some(Status::Repaired));
    assert_eq!(w2.registry.history(&e, end)[0].history.len(), 2);
    // Revoking after the term ended would restore nothing.
    assert_eq!(
        w2.registry
            .review(&revoke("CL-2", "rev-late", end))
            .unwrap_err()
            .reason(),
        "LISTING_TERM_ENDED"
    );
}

#[test]
fn as_of_uses_only_what_was_effective_and_recorded_by_then() {
    let mut w = World::new();
    let e = uscc(1);
    // Decided on 1 March, recorded on 3 March.
    let effective = t("2026-03-01T02:00:00Z");
    let recorded = t("2026-03-03T02:00:00Z");
    w.penalty(Department::Emergency, "P-1", &e, effective);
    let d = listing("CL-1", &e, "P-1", effective);
    w.apply_at(recorded, Fact::Decision(Decision::Listing(d)));
    assert_eq!(status(&w.registry, "CL-1", recorded - ns(1)), None);
    assert!(w.registry.history(&e, recorded - ns(1)).is_empty());
    assert_eq!(status(&w.registry, "CL-1", recorded), Some(Status::Active));
    // A repair effective on 1 April 2027 but recorded on 10 April: as of 5 April, still active.
    let rep_eff = t("2027-04-01T00:00:00Z");
    let rep_rec = t("2027-04-10T00:00:00Z");
    w.apply_at(rep_rec, Fact::Decision(repair("CL-1", "rep-1", rep_eff)));
    assert_eq!(
        status(&w.registry, "CL-1", t("2027-04-05T00:00:00Z")),
        Some(Status::Active)
    );
    assert_eq!(
        status(&w.registry, "CL-1", rep_rec - ns(1)),
        Some(Status::Active)
    );
    assert_eq!(status(&w.registry, "CL-1", rep_rec), Some(Status::Repaired));
    // The history as of 5 April does not show the repair; as of 10 April it does, dated 1 April.
    assert_eq!(
        w.registry.history(&e, t("2027-04-05T00:00:00Z"))[0]
            .history
            .len(),
        1
    );
    let h = &w.registry.history(&e, rep_rec)[0];
    assert_eq!(h.history[1].at, rep_eff);
    assert_eq!(h.listing.changes.len(), 1);
    assert_eq!(
        w.registry.history(&e, rep_rec - ns(1))[0]
            .listing
            .changes
            .len(),
        0
    );
}

#[test]
fn bad_decisions_are_refused_precisely_and_change_nothing() {
    let mut w = World::new();
    let e = uscc(1);
    let other = uscc(2);
    let at = t("2026-03-01T02:00:00Z");
    w.listed("CL-1", &e, at);
    let snapshot = w.registry.history(&e, at);

    // Repair of a listing that does not exist.
    let r = w
        .registry
        .review(&repair("CL-404", "r-404", at))
        .unwrap_err();
    assert!(
        matches!(&r, Refusal::NotFound { reason: "LISTING_NOT_FOUND", resource_name, .. } if resource_name == "CL-404")
    );

    // A repair by another department than the listing's.
    let Decision::Repair(mut by_fire) = repair("CL-1", "r-fire", t("2027-06-01T00:00:00Z")) else {
        unreachable!()
    };
    by_fire.department = Department::Fire;
    let r = w.registry.review(&Decision::Repair(by_fire)).unwrap_err();
    assert_eq!(r.reason(), "NOT_LISTING_DEPARTMENT");
    assert!(matches!(r, Refusal::Denied { .. }));

    // A listing by a department that did not impose the penalty (transport citing emergency's).
    w.penalty(Department::Emergency, "P-E", &other, at);
    let mut d = listing("CL-2", &other, "P-E", at);
    d.department = Department::Transport;
    let r = w
        .registry
        .review(&Decision::Listing(d.clone()))
        .unwrap_err();
    assert!(
        matches!(
            r,
            Refusal::Denied {
                reason: "NOT_SANCTIONING_DEPARTMENT",
                ..
            }
        ),
        "{r:?}"
    );
    assert!(r.to_string().contains("imposed by emergency"), "{r}");
    // A department that imposes no penalties at all.
    d.department = Department::Miit;
    let r = w
        .registry
        .review(&Decision::Listing(d.clone()))
        .unwrap_err();
    assert_eq!(r.reason(), "NOT_SANCTIONING_DEPARTMENT");
    // A penalty nobody recorded.
    d.department = Department::Emergency;
    d.penalty_decision_number = Some("P-nowhere".into());
    let r = w
        .registry
        .review(&Decision::Listing(d.clone()))
        .unwrap_err();
    assert!(matches!(
        r,
        Refusal::NotFound {
            reason: "PENALTY_NOT_FOUND",
            ..
        }
    ));
    // A penalty against another enterprise.
    d.penalty_decision_number = Some("PEN-CL-1".into());
    let r = w
        .registry
        .review(&Decision::Listing(d.clone()))
        .unwrap_err();
    assert_eq!(r.reason(), "PENALTY_ENTERPRISE_MISMATCH");
    // Listed before the penalty.
    d.penalty_decision_number = Some("P-E".into());
    d.listed_at = at - ns(1);
    assert_eq!(
        w.registry
            .review(&Decision::Listing(d.clone()))
            .unwrap_err()
            .reason(),
        "LISTED_BEFORE_PENALTY"
    );
    d.listed_at = at;

    // A measure unknown to the catalogue, and no legal basis: both named at once.
    let mut bad = d.clone();
    bad.measures.push(measure("public_flogging", &[]));
    bad.legal_basis = None;
    let Refusal::Invalid(violations) = w
        .registry
        .review(&Decision::Listing(bad.clone()))
        .unwrap_err()
    else {
        panic!("expected field violations")
    };
    let fields: Vec<(&str, &str)> = violations
        .iter()
        .map(|v| (v.field.as_str(), v.reason))
        .collect();
    assert_eq!(
        fields,
        [
            ("legal_basis", "LEGAL_BASIS_REQUIRED"),
            ("credit_listing_decided.measures[3].code", "UNKNOWN_MEASURE")
        ]
    );
    // A listing id used twice.
    let mut dup = d.clone();
    dup.listing_id = "CL-1".into();
    dup.event_id = "ev-dup".into();
    assert!(matches!(
        w.registry.review(&Decision::Listing(dup)).unwrap_err(),
        Refusal::Exists {
            reason: "LISTING_EXISTS",
            ..
        }
    ));
    // A restricted listing.
    let mut restricted = d.clone();
    restricted.classification = Classification::Restricted;
    assert_eq!(
        w.registry
            .review(&Decision::Listing(restricted))
            .unwrap_err()
            .reason(),
        "CLASSIFICATION_RESTRICTED"
    );

    // Applying any of them (as if they had bypassed the guard) changes nothing.
    for fact in [
        Fact::Decision(Decision::Listing(bad)),
        Fact::Decision(repair("CL-404", "r-404", at)),
    ] {
        assert!(matches!(w.apply_at(at, fact), Outcome::Refused(_)));
    }
    assert_eq!(w.registry.history(&e, at), snapshot);
    assert!(w.registry.history(&other, at).is_empty());
    // The valid one keeps every rule; but the refused `bad` is on the record under its event id now, so
    // under that id the guard refuses it as a reused id (it used to wave it through on the id alone).
    w.registry.check(&Decision::Listing(d.clone())).unwrap();
    assert_eq!(
        w.registry
            .review(&Decision::Listing(d.clone()))
            .unwrap_err()
            .reason(),
        "EVENT_ID_REUSED"
    );
    d.event_id = "ev-CL-2-again".into();
    w.registry.review(&Decision::Listing(d)).unwrap();
}

#[test]
fn the_guard_passes_a_retry_only_with_the_same_content() {
    let mut w = World::new();
    let e = uscc(1);
    let at = t("2026-03-01T02:00:00Z");
    let accepted = w.listed("CL-1", &e, at);
    assert_eq!(accepted.event_id, "ev-CL-1");
    let snapshot = w.registry.history(&e, at);

    // The accepted decision again: a retry, let through (the bus answers it with the original position),
    // although its listing id is now taken.
    w.registry
        .review(&Decision::Listing(accepted.clone()))
        .unwrap();
    assert!(matches!(
        w.registry.check(&Decision::Listing(accepted.clone())),
        Err(Refusal::Exists {
            reason: "LISTING_EXISTS",
            ..
        })
    ));

    // The accepted decision's id on another decision (finding 8): no shortcut on the id alone. A second
    // listing that would pass every rule on its own, a repair dated before the rules allow one, and the
    // same listing with its measures changed are all refused as a reused id.
    let penalty_2 = "PEN-CL-2";
    w.penalty(Department::Emergency, penalty_2, &e, at);
    let mut second = listing("CL-2", &e, penalty_2, at);
    second.event_id = accepted.event_id.clone();
    let mut fewer_measures = accepted.clone();
    fewer_measures.measures.truncate(1);
    let Decision::Repair(mut early_repair) = repair("CL-1", "x", at) else {
        unreachable!()
    };
    early_repair.event_id = accepted.event_id.clone();
    for reused in [
        Decision::Listing(second.clone()),
        Decision::Listing(fewer_measures),
        Decision::Repair(early_repair),
    ] {
        let refusal = w.registry.review(&reused).unwrap_err();
        match &refusal {
            Refusal::Exists {
                reason: "EVENT_ID_REUSED",
                resource_type: "event",
                resource_name,
                field: "id",
                rule: "id.reused",
                message,
            } => {
                assert_eq!(resource_name, "ev-CL-1");
                assert!(
                    message.contains("ev-CL-1") && message.contains("listing CL-1"),
                    "{message}"
                );
            }
            other => panic!("expected EVENT_ID_REUSED, got {other:?}"),
        }
        assert_eq!(refusal.reason(), "EVENT_ID_REUSED");
    }
    // With its own id the second listing is fine.
    let mut own = second.clone();
    own.event_id = "ev-CL-2".into();
    w.registry.review(&Decision::Listing(own)).unwrap();

    // Event ids are scoped by publisher: another department's decision with the same id is its own, and is
    // checked like any other, not waved through because emergency once used the id.
    let mut by_transport = second;
    by_transport.department = Department::Transport;
    by_transport.listing_id = "CL-T".into();
    let refusal = w
        .registry
        .review(&Decision::Listing(by_transport))
        .unwrap_err();
    assert_eq!(refusal.reason(), "NOT_SANCTIONING_DEPARTMENT", "{refusal}");
    let Decision::Repair(mut fire_repair) = repair("CL-1", "x", t("2027-06-01T00:00:00Z")) else {
        unreachable!()
    };
    fire_repair.event_id = accepted.event_id.clone();
    fire_repair.department = Department::Fire;
    let refusal = w
        .registry
        .review(&Decision::Repair(fire_repair))
        .unwrap_err();
    assert_eq!(refusal.reason(), "NOT_LISTING_DEPARTMENT", "{refusal}");

    // Nothing changed.
    assert_eq!(w.registry.history(&e, at), snapshot);
}

#[test]
fn the_sanctioning_department_rule_needs_no_penalty_on_record() {
    let mut rules = Rules::defaults();
    rules.authority = Authority::SanctioningDepartment;
    let registry = Registry::new(Arc::new(rules));
    let mut d = listing("CL-1", &uscc(1), "P-unknown", t("2026-03-01T02:00:00Z"));
    d.penalty_decision_number = None;
    registry.review(&Decision::Listing(d.clone())).unwrap();
    d.department = Department::Approval;
    assert_eq!(
        registry.review(&Decision::Listing(d)).unwrap_err().reason(),
        "NOT_SANCTIONING_DEPARTMENT"
    );
}

fn grant(
    id: &str,
    holder: &Uscc,
    department: Department,
    kind: LicenceKind,
    time: DateTime<Utc>,
) -> Fact {
    Fact::Grant(Grant {
        event_id: id.into(),
        kind: GrantKind::LicenceIssued,
        licence_kind: kind,
        number: format!("LIC-{id}"),
        holder: holder.clone(),
        holder_name: String::new(),
        department,
        competent_department: department,
        time,
    })
}

#[test]
fn a_grant_to_a_listed_enterprise_conflicts_and_not_otherwise() {
    let mut w = World::new();
    let e = uscc(1);
    let at = t("2026-03-01T02:00:00Z");
    w.listed("CL-1", &e, at);
    let later = t("2026-06-01T02:00:00Z");
    let Outcome::Conflict(c) = w.apply_at(
        later,
        grant(
            "g-1",
            &e,
            Department::Emergency,
            LicenceKind::SafetyProduction,
            later,
        ),
    ) else {
        panic!("expected a conflict")
    };
    assert!(c.severe);
    assert_eq!(c.addressed_to, [Department::Emergency]);
    assert_eq!(c.listings[0].listing_id, "CL-1");
    assert_eq!(c.listings[0].measures, ["licence_restriction"]);
    assert_eq!(c.warning_id(), conflict_warning_id("g-1"));
    // Approval granting on behalf of emergency is bound too, and both are addressed.
    let Fact::Grant(mut on_behalf) = grant(
        "g-2",
        &e,
        Department::Approval,
        LicenceKind::Operation,
        later,
    ) else {
        unreachable!()
    };
    on_behalf.competent_department = Department::Emergency;
    let Outcome::Conflict(c) = w.apply_at(later, Fact::Grant(on_behalf)) else {
        panic!("expected a conflict")
    };
    assert_eq!(
        c.addressed_to,
        [Department::Emergency, Department::Approval]
    );
    // Transport is not bound by licence_restriction (it applies to emergency and approval).
    assert_eq!(
        w.apply_at(
            later,
            grant(
                "g-3",
                &e,
                Department::Transport,
                LicenceKind::RoadTransport,
                later
            )
        ),
        Outcome::Applied
    );
    // An unlisted enterprise.
    assert_eq!(
        w.apply_at(
            later,
            grant(
                "g-4",
                &uscc(9),
                Department::Emergency,
                LicenceKind::SafetyProduction,
                later
            )
        ),
        Outcome::Applied
    );
    // Before the listing, and from the end of its term.
    assert_eq!(
        w.apply_at(
            later,
            grant(
                "g-5",
                &e,
                Department::Emergency,
                LicenceKind::SafeUse,
                at - ns(1)
            )
        ),
        Outcome::Applied
    );
    let end = t("2029-03-01T02:00:00Z");
    assert!(matches!(
        w.apply_at(
            end,
            grant(
                "g-6",
                &e,
                Department::Emergency,
                LicenceKind::SafeUse,
                end - ns(1)
            )
        ),
        Outcome::Conflict(_)
    ));
    assert_eq!(
        w.apply_at(
            end,
            grant("g-7", &e, Department::Emergency, LicenceKind::SafeUse, end)
        ),
        Outcome::Applied
    );
}

#[test]
fn listings_are_listed_by_department_type_and_status_a_page_at_a_time() {
    let mut w = World::new();
    let at = t("2026-03-01T02:00:00Z");
    for i in 0..5 {
        w.listed(&format!("CL-{i}"), &uscc(i), at);
    }
    let repaired = t("2027-04-01T00:00:00Z");
    w.apply_at(repaired, Fact::Decision(repair("CL-2", "rep-2", repaired)));
    let mut query = ListQuery {
        department: Some(Department::Emergency),
        list_type: Some(ListType::SeriousDishonest),
        status: Some(Status::Active),
        as_of: repaired,
        page_size: 2,
        after: 0,
    };
    let mut ids = Vec::new();
    loop {
        let page = w.registry.list(&query);
        ids.extend(page.listings.iter().map(|v| v.listing.id.clone()));
        match page.next_after {
            Some(after) => query.after = after,
            None => break,
        }
    }
    assert_eq!(ids, ["CL-0", "CL-1", "CL-3", "CL-4"]);
    query.after = 0;
    query.page_size = 100;
    query.status = Some(Status::Repaired);
    assert_eq!(w.registry.list(&query).listings.len(), 1);
    // As of just before the repair was recorded, it is still active.
    query.as_of = repaired - ns(1);
    assert!(w.registry.list(&query).listings.is_empty());
    query.department = Some(Department::Fire);
    query.status = None;
    assert!(w.registry.list(&query).listings.is_empty());
}

#[test]
fn term_ends_are_due_once_and_not_for_repaired_listings() {
    let mut w = World::new();
    let at = t("2026-03-01T02:00:00Z");
    w.listed("CL-1", &uscc(1), at);
    w.listed("CL-2", &uscc(2), at);
    let repaired = t("2027-04-01T00:00:00Z");
    w.apply_at(repaired, Fact::Decision(repair("CL-2", "rep-2", repaired)));
    let end = t("2029-03-01T02:00:00Z");
    assert_eq!(w.registry.next_expiry(), Some(end));
    assert!(w.registry.due_expiries(end - ns(1)).is_empty());
    let due = w.registry.due_expiries(end);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].listing_id, "CL-1");
    // Due again until its announcement is on the record.
    assert_eq!(w.registry.due_expiries(end).len(), 1);
    w.apply_at(
        end,
        Fact::ExpiryAnnounced {
            event_id: expiry_event_id("CL-1"),
            listing_id: "CL-1".into(),
        },
    );
    assert!(w.registry.due_expiries(end).is_empty());
    assert_eq!(w.registry.next_expiry(), None);
}

#[test]
fn derived_ids_are_stable_tokens() {
    let id = conflict_warning_id(&"x".repeat(128));
    assert_eq!(id, conflict_warning_id(&"x".repeat(128)));
    assert!(id.len() <= 128 && id.starts_with("credit-conflict-"));
    assert_ne!(expiry_event_id("CL-1"), expiry_event_id("CL-2"));
}
