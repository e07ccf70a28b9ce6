//! The default policy against the departments' duties, the query API, and load errors.

mod common;

use std::collections::BTreeSet;

use common::{department, dept, service, tokens};
use hazchem_admission::{DEFAULT_POLICY, Policy, PolicyError, PolicyProblem};
use hazchem_domain::Department;
use hazchem_pki::{Principal, services};
use hazchem_proto::v1;

const ENFORCING: &[&str] = &[
    "emergency",
    "samr",
    "eeb",
    "transport",
    "msa",
    "fire",
    "psb",
];
const LICENSING: &[&str] = &["eeb", "transport", "emergency", "samr", "approval"];
const ALL: &[&str] = &[
    "miit",
    "psb",
    "eeb",
    "transport",
    "emergency",
    "samr",
    "approval",
    "msa",
    "fire",
];
const NONE: &[&str] = &[];

/// Who may publish what, from the duties (departments.csv, README, the design brief). Every event type
/// of the contract appears exactly once.
fn expected_publishers(token: &str) -> &'static [&'static str] {
    match token {
        "production_recorded"
        | "storage_recorded"
        | "major_hazard_source_registered"
        | "usage_recorded"
        | "sensor_readings_recorded"
        | "sensor_alarm_raised"
        | "sensor_alarm_cleared" => &["emergency"],
        "sale_recorded" => &["emergency", "samr"],
        "highly_toxic_purchase_permit_issued"
        | "explosive_precursor_filed"
        | "road_pass_issued" => &["psb"],
        "theft_or_loss_reported" => &["psb", "emergency"],
        "waybill_issued" | "trip_started" | "trip_completed" => &["transport"],
        "ship_declaration_submitted" | "ship_declaration_decided" => &["msa"],
        "waste_manifest_created" | "waste_manifest_received" => &["eeb"],
        "licence_issued"
        | "licence_renewed"
        | "licence_suspended"
        | "licence_revoked"
        | "licence_expired"
        | "application_decided" => LICENSING,
        "relocation_ordered" => &["miit"],
        "incident_reported" => &["emergency", "fire"],
        "inspection_recorded" | "penalty_decided" => ENFORCING,
        "credit_listing_decided" | "credit_repair_decided" | "credit_repair_revoked" => ENFORCING,
        t if t.starts_with("task_") => NONE,
        "credit_listing_expired"
        | "warning_raised"
        | "warning_acknowledged"
        | "warning_escalated"
        | "warning_closed"
        | "checkpoint_published" => NONE,
        other => panic!("the test does not know event type {other}; add it to the duty table"),
    }
}

fn expected_services(token: &str) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    if token == "checkpoint_published" {
        out.insert("ledger");
    }
    if token.starts_with("task_") {
        out.insert("enforcement");
    }
    if token == "credit_listing_expired" || token == "warning_raised" {
        out.insert("credit");
    }
    if matches!(
        token,
        "warning_raised" | "warning_acknowledged" | "warning_escalated" | "warning_closed"
    ) {
        out.insert("warning");
    }
    out
}

#[test]
fn the_default_policy_is_the_deploy_file() {
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/policy.toml"
    ))
    .unwrap();
    assert_eq!(on_disk, DEFAULT_POLICY);
    let loaded = Policy::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/policy.toml"
    ))
    .unwrap();
    assert_eq!(loaded, Policy::default_policy());
}

/// The service table (`crates/pki/src/services.rs`) and the policy's `[services]` table agree: every
/// service the policy names is a row of the table marked `publishes`, every row marked so is named by the
/// policy, and exactly those rows may publish anything.
#[test]
fn the_service_table_is_the_policys() {
    let policy = Policy::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/policy.toml"
    ))
    .unwrap();
    let named: BTreeSet<String> = policy
        .nats_permissions()
        .into_iter()
        .filter_map(|p| match p.principal {
            Principal::Service(name) => Some(name),
            _ => None,
        })
        .collect();
    for name in &named {
        let row = services::get(name).unwrap_or_else(|| {
            panic!(
                "deploy/policy.toml names service `{name}`, which is not in the service table \
                 (crates/pki/src/services.rs)"
            )
        });
        assert!(
            row.publishes,
            "deploy/policy.toml gives service `{name}` event types, but the service table does not \
             mark it `publishes`"
        );
    }
    let publishing: BTreeSet<String> = services::SERVICES
        .iter()
        .filter(|s| s.publishes)
        .map(|s| s.name.to_owned())
        .collect();
    assert_eq!(
        publishing, named,
        "the services the table marks `publishes` and those deploy/policy.toml's [services] names"
    );
    for service in services::SERVICES {
        assert_eq!(
            !policy.publishable_tokens(&service.principal()).is_empty(),
            service.publishes,
            "service `{}`: publishes {:?}",
            service.name,
            policy.publishable_tokens(&service.principal())
        );
    }
}

#[test]
fn every_department_publishes_exactly_its_duties() {
    let policy = Policy::default_policy();
    let all = tokens();
    assert_eq!(
        all.len(),
        49,
        "the contract defines 49 event types; update the duty table"
    );
    for token in &all {
        let expected: BTreeSet<&str> = expected_publishers(token).iter().copied().collect();
        for d in Department::ALL {
            assert_eq!(
                policy.may_publish(&Principal::Department(d), token),
                expected.contains(d.code()),
                "{} publishing {token}",
                d.code()
            );
        }
    }
}

#[test]
fn every_service_publishes_exactly_its_duties() {
    let policy = Policy::default_policy();
    for token in tokens() {
        let expected = expected_services(&token);
        for name in [
            "ledger",
            "credit",
            "enforcement",
            "warning",
            "lifecycle",
            "simulator",
            "console",
        ] {
            assert_eq!(
                policy.may_publish(&service(name), &token),
                expected.contains(name),
                "service {name} publishing {token}"
            );
        }
    }
    assert_eq!(policy.publishable_tokens(&service("enforcement")).len(), 11);
    assert!(!policy.may_publish(&Principal::Auditor("a".into()), "warning_acknowledged"));
}

#[test]
fn duties_named_in_the_brief() {
    let policy = Policy::default_policy();
    // psb issues highly toxic purchase permits; emergency does not.
    assert!(policy.may_publish(&dept("psb"), "highly_toxic_purchase_permit_issued"));
    assert!(!policy.may_publish(&dept("emergency"), "highly_toxic_purchase_permit_issued"));
    // Only transport issues waybills.
    for d in ALL {
        assert_eq!(
            policy.may_publish(&dept(d), "waybill_issued"),
            *d == "transport"
        );
    }
    // msa decides ship declarations.
    assert!(policy.may_publish(&dept("msa"), "ship_declaration_decided"));
    assert!(!policy.may_publish(&dept("transport"), "ship_declaration_decided"));
    // Tasks come only from the enforcement service.
    assert!(!policy.may_publish(&dept("emergency"), "task_opened"));
    assert!(policy.may_publish(&service("enforcement"), "task_opened"));
}

#[test]
fn licence_issuers_follow_the_readme() {
    let policy = Policy::default_policy();
    use v1::LicenceKind as K;
    let expected = [
        (K::SafetyProduction, "emergency"),
        (K::SafeUse, "emergency"),
        (K::Operation, "emergency"),
        (K::HazardousWaste, "eeb"),
        (K::RoadTransport, "transport"),
        (K::PortOperation, "transport"),
        (K::VehicleCertificate, "transport"),
        (K::PractitionerQualification, "transport"),
        (K::IndustrialProduct, "samr"),
        (K::Business, "samr"),
    ];
    for (kind, issuer) in expected {
        assert_eq!(
            policy.licence_issuers(kind),
            [department(issuer)],
            "{kind:?}"
        );
        assert!(policy.may_issue_licence(department(issuer), kind));
        assert!(policy.may_issue_licence(Department::Approval, kind));
    }
    assert!(policy.licence_issuers(K::Unspecified).is_empty());
    assert!(!policy.may_issue_licence(Department::Eeb, K::SafetyProduction));
    assert!(!policy.may_issue_licence(Department::Psb, K::Business));
    assert_eq!(policy.on_behalf(), [Department::Approval]);
}

#[test]
fn signatures_are_required_for_sanctions_and_permits() {
    let policy = Policy::default_policy();
    for token in [
        "credit_listing_decided",
        "credit_repair_decided",
        "credit_repair_revoked",
        "highly_toxic_purchase_permit_issued",
    ] {
        for d in Department::ALL {
            assert!(policy.signature_required(d, token), "{token}");
        }
    }
    assert!(!policy.signature_required(Department::Transport, "waybill_issued"));

    let strict = Policy::from_toml_str(
        "[publish]\npsb = [\"road_pass_issued\"]\n[signatures]\nrequired_departments = [\"psb\"]\n",
    )
    .unwrap();
    assert!(strict.signature_required(Department::Psb, "road_pass_issued"));
    assert!(!strict.signature_required(Department::Fire, "road_pass_issued"));
}

#[test]
fn every_department_reads_everything_by_default() {
    let policy = Policy::default_policy();
    for d in Department::ALL {
        assert_eq!(policy.readable_tokens(&Principal::Department(d)), tokens());
        for token in tokens() {
            for classification in [
                v1::DataClassification::Public,
                v1::DataClassification::Shared,
            ] {
                assert!(policy.may_read(
                    &Principal::Department(d),
                    &token,
                    Some(Department::Emergency),
                    classification,
                    &[]
                ));
            }
        }
    }
}

#[test]
fn restricted_events_are_read_by_publisher_audience_auditors_and_services() {
    let policy = Policy::default_policy();
    let restricted = v1::DataClassification::Restricted;
    let audience = [Department::Emergency, Department::Fire];
    let read = |p: &Principal| {
        policy.may_read(
            p,
            "theft_or_loss_reported",
            Some(Department::Psb),
            restricted,
            &audience,
        )
    };
    assert!(read(&dept("psb")), "the publisher");
    assert!(read(&dept("emergency")), "in the audience");
    assert!(read(&dept("fire")), "in the audience");
    for other in ["miit", "eeb", "transport", "samr", "approval", "msa"] {
        assert!(!read(&dept(other)), "{other} is not in the audience");
    }
    assert!(read(&Principal::Auditor("court".into())));
    assert!(read(&service("ledger")));
    // A restricted event of a service is readable by its audience only.
    assert!(!policy.may_read(&dept("psb"), "warning_raised", None, restricted, &audience));
    assert!(policy.may_read(&dept("fire"), "warning_raised", None, restricted, &audience));
    // Unspecified classification fails closed, as RESTRICTED.
    assert!(!policy.may_read(
        &dept("miit"),
        "waybill_issued",
        Some(Department::Transport),
        v1::DataClassification::Unspecified,
        &[]
    ));
}

#[test]
fn reading_can_be_restricted_by_event_type() {
    let policy = Policy::from_toml_str(
        "[read]\nfire = [\"sensor_*\", \"incident_reported\", \"waybill_issued\"]\nmiit = []\n",
    )
    .unwrap();
    let fire = dept("fire");
    assert_eq!(
        policy.readable_tokens(&fire),
        [
            "waybill_issued",
            "sensor_readings_recorded",
            "sensor_alarm_raised",
            "sensor_alarm_cleared",
            "incident_reported"
        ]
    );
    let shared = v1::DataClassification::Shared;
    assert!(policy.may_read(
        &fire,
        "incident_reported",
        Some(Department::Emergency),
        shared,
        &[]
    ));
    assert!(!policy.may_read(&fire, "sale_recorded", Some(Department::Samr), shared, &[]));
    // The classification rule applies on top of the table: an audience does not widen [read].
    assert!(!policy.may_read(
        &fire,
        "sale_recorded",
        Some(Department::Samr),
        v1::DataClassification::Restricted,
        &[Department::Fire]
    ));
    assert!(policy.readable_tokens(&dept("miit")).is_empty());
    assert!(
        policy.readable_tokens(&dept("psb")).is_empty(),
        "absent = nothing"
    );
    assert_eq!(policy.readable_tokens(&service("warning")), tokens());
}

#[test]
fn nats_permissions_mirror_the_publish_policy() {
    let policy = Policy::default_policy();
    let permissions = policy.nats_permissions();
    assert_eq!(permissions.len(), 9 + 4);
    for p in &permissions {
        let tokens = policy.publishable_tokens(&p.principal);
        let expected: Vec<String> = tokens
            .iter()
            .map(|t| format!("hazchem.ev.{}.{t}.*", p.principal.name()))
            .collect();
        assert_eq!(p.publish, expected, "{}", p.principal.name());
    }
    let miit = &permissions[0];
    assert_eq!(miit.principal, dept("miit"));
    assert_eq!(miit.publish, ["hazchem.ev.miit.relocation_ordered.*"]);
    let transport = permissions
        .iter()
        .find(|p| p.principal == dept("transport"))
        .unwrap();
    assert!(
        transport
            .publish
            .contains(&"hazchem.ev.transport.waybill_issued.*".to_owned())
    );
    let ledger = permissions
        .iter()
        .find(|p| p.principal == service("ledger"))
        .unwrap();
    assert_eq!(ledger.publish, ["hazchem.ev.ledger.checkpoint_published.*"]);
}

fn entry_error(text: &str) -> (String, String, PolicyProblem, String) {
    match Policy::from_toml_str(text) {
        Err(e @ PolicyError::Entry { .. }) => {
            let message = e.to_string();
            let PolicyError::Entry {
                table,
                entry,
                problem,
                ..
            } = e
            else {
                unreachable!()
            };
            (table, entry, *problem, message)
        }
        Err(other) => panic!("expected an entry error, got {other}"),
        Ok(_) => panic!("expected an error for:\n{text}"),
    }
}

#[test]
fn unknown_departments_are_named_with_their_table() {
    let (table, entry, problem, message) =
        entry_error("[publish]\npolice = [\"road_pass_issued\"]\n");
    assert_eq!((table.as_str(), entry.as_str()), ("publish", "police"));
    assert_eq!(
        problem,
        PolicyProblem::UnknownDepartment {
            code: "police".into()
        }
    );
    assert!(message.starts_with("policy: [publish] police: `police` is not a department code"));

    let (table, entry, _, _) = entry_error("[read]\nfirebrigade = [\"*\"]\n");
    assert_eq!((table.as_str(), entry.as_str()), ("read", "firebrigade"));

    let (table, entry, problem, _) =
        entry_error("[licence_issuers]\nsafety_production = [\"safety\"]\n");
    assert_eq!(
        (table.as_str(), entry.as_str()),
        ("licence_issuers", "safety_production")
    );
    assert_eq!(
        problem,
        PolicyProblem::UnknownDepartment {
            code: "safety".into()
        }
    );

    let (table, entry, _, _) = entry_error("[signatures]\nrequired_departments = [\"court\"]\n");
    assert_eq!(
        (table.as_str(), entry.as_str()),
        ("signatures", "required_departments")
    );
}

#[test]
fn unknown_event_types_and_empty_wildcards_are_named() {
    let (table, entry, problem, _) = entry_error("[services]\nledger = [\"checkpoint\"]\n");
    assert_eq!((table.as_str(), entry.as_str()), ("services", "ledger"));
    assert!(
        matches!(problem, PolicyProblem::UnknownEventType { ref token, .. } if token == "checkpoint")
    );

    let (table, entry, problem, message) = entry_error("[publish]\npsb = [\"permit_*\"]\n");
    assert_eq!((table.as_str(), entry.as_str()), ("publish", "psb"));
    assert_eq!(
        problem,
        PolicyProblem::WildcardMatchesNothing {
            pattern: "permit_*".into()
        }
    );
    assert!(message.contains("the wildcard `permit_*` matches no event type"));

    let (table, entry, _, _) =
        entry_error("[signatures]\nrequired_event_types = [\"credit_listing\"]\n");
    assert_eq!(
        (table.as_str(), entry.as_str()),
        ("signatures", "required_event_types")
    );
}

#[test]
fn unknown_licence_kinds_are_named() {
    let (table, entry, problem, message) = entry_error("[licence_issuers]\nfirearms = [\"psb\"]\n");
    assert_eq!(
        (table.as_str(), entry.as_str()),
        ("licence_issuers", "firearms")
    );
    let PolicyProblem::UnknownLicenceKind { kind, known } = problem else {
        panic!("{problem:?}")
    };
    assert_eq!(kind, "firearms");
    assert_eq!(known.len(), 10);
    assert!(message.contains("safety_production"));
}

#[test]
fn inconsistent_entries_are_refused() {
    // A service name would collide with a department in bus subjects.
    let (table, entry, problem, _) = entry_error("[services]\nfire = [\"warning_raised\"]\n");
    assert_eq!((table.as_str(), entry.as_str()), ("services", "fire"));
    assert!(matches!(problem, PolicyProblem::BadServiceName { .. }));
    // Services have no origin keys, so their events cannot be required to be signed.
    let (table, _, problem, _) = entry_error(
        "[services]\nwarning = [\"warning_*\"]\n[signatures]\nrequired_event_types = [\"warning_raised\"]\n",
    );
    assert_eq!(table, "signatures");
    assert_eq!(
        problem,
        PolicyProblem::ServiceCannotSign {
            token: "warning_raised".into(),
            service: "warning".into()
        }
    );
}

#[test]
fn shape_errors_are_toml_errors() {
    for text in [
        "[pubish]\npsb = []\n",
        "[publish]\npsb = \"road_pass_issued\"\n",
        "[signatures]\nrequired = []\n",
        "not toml at all [",
    ] {
        assert!(
            matches!(Policy::from_toml_str(text), Err(PolicyError::Toml { .. })),
            "{text}"
        );
    }
    let message = Policy::from_toml_str("[pubish]\npsb = []\n")
        .unwrap_err()
        .to_string();
    assert!(message.contains("pubish"), "{message}");
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    assert!(matches!(
        Policy::load(&missing),
        Err(PolicyError::Io { ref path, .. }) if path == &missing
    ));
    let bad = dir.path().join("policy.toml");
    std::fs::write(&bad, "[publish]\npolice = []\n").unwrap();
    let message = Policy::load(&bad).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("policy {}: [publish] police:", bad.display())),
        "{message}"
    );
}

#[test]
fn an_empty_policy_allows_nothing() {
    let policy = Policy::from_toml_str("").unwrap();
    for token in tokens() {
        assert!(!policy.may_publish(&dept("emergency"), &token));
        assert!(!policy.may_read(
            &dept("emergency"),
            &token,
            Some(Department::Emergency),
            v1::DataClassification::Public,
            &[]
        ));
    }
    assert!(
        policy
            .nats_permissions()
            .iter()
            .all(|p| p.publish.is_empty())
    );
}
