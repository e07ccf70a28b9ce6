//! The city's traffic: a deterministic sequence of `(Department, Event)` covering every lifecycle stage
//! and all nine departments, with violations injected on request and their ground truth.
//!
//! # Shape
//!
//! - **Phase 0, the registers**: every enterprise's licences (business licences by samr; safety
//!   production, operation and safe-use licences by emergency, a third of them decided and issued by
//!   行政审批 on its behalf; road transport, vehicle and practitioner licences by transport; hazardous
//!   waste licences by eeb; port operation by transport), major hazard sources (emergency) and a few
//!   relocation orders (miit). The driver finishes phase 0 before it starts phase 1, so every licence
//!   is on the record before the traffic that relies on it.
//! - **Phase 1, the traffic**: episodes drawn by weight: sensor reading batches (the bulk, as in the
//!   field), batch lifecycles (production → storage in → sale, with a purchase permit from psb for a
//!   highly toxic chemical and a filing for an explosive precursor → storage out → waybill, road pass
//!   for highly toxic goods, trip started and completed → the buyer's storage in → use), alarms,
//!   ship declarations and decisions (msa), waste manifests (eeb), inspections and penalties by the
//!   inspecting departments, incidents (fire, emergency), renewals, applications decided by 行政审批,
//!   relocation orders (miit), theft reports (psb).
//!
//! Within a batch lifecycle the quantities balance: produced = stored in = sold = stored out = shipped =
//! received, unless an `unbalanced-batch` violation is injected.
//!
//! # Order and time
//!
//! Event times follow a simulated clock that ends at the configured epoch (never after it: the gateway
//! refuses future times), spread over a window (30 days by default). A department's events reach the
//! record in the order generated; across departments, [`SimEvent::after`] names the events that must be
//! on the record first (a permit before the sale it allows, a credit listing before the grant that
//! conflicts with it).
//!
//! # Identity
//!
//! Every event id is `<run>-<index>`, where the run tag is derived from the seed and the epoch: the same
//! seed and epoch give byte-identical traffic (publishing it again is answered as duplicates), and a new
//! epoch gives fresh ids and document numbers, so runs can follow each other on one bus.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use hazchem_domain::Department;
use hazchem_proto::time::timestamp;
use hazchem_proto::v1;
use hazchem_proto::v1::event::Payload;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use crate::city::{City, Enterprise, LicenceGrant, Role};
use crate::error::{Error, Result};
use crate::violation::{
    GroundTruth, InjectedViolation, Injections, TruthEnterprise, ViolationKind,
};

/// One generated event and who publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEvent {
    /// Position in the traffic (the id's suffix).
    pub index: usize,
    pub department: Department,
    /// 0: registers (licences, hazard sources); 1: traffic. A phase is on the record before the next
    /// starts.
    pub phase: u8,
    /// Events (indices) that must be acknowledged before this one is published.
    pub after: Vec<usize>,
    /// The event type token, e.g. `waybill_issued`.
    pub token: String,
    pub event: v1::Event,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficConfig {
    pub seed: u64,
    /// The simulated clock ends here; no event time is later.
    pub epoch: DateTime<Utc>,
    /// How many events (at least; the last episode is completed, and the registers and injected
    /// violations are always generated).
    pub events: usize,
    /// The simulated time the traffic spans, ending at the epoch.
    pub window: Duration,
    pub inject: Injections,
}

impl TrafficConfig {
    /// `events` events for `seed`, ending now (to the second), over 30 days, nothing injected.
    pub fn new(seed: u64, events: usize) -> Self {
        #[allow(clippy::disallowed_methods)]
        // the default run ends at wall time: a live gateway admits it
        let now = Utc::now();
        TrafficConfig {
            seed,
            epoch: Utc
                .timestamp_opt(now.timestamp(), 0)
                .single()
                .unwrap_or(now),
            events,
            window: Duration::days(30),
            inject: Injections::default(),
        }
    }
}

/// Generated traffic and its ground truth.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// The run tag (prefix of every event id).
    pub run: String,
    pub events: Vec<SimEvent>,
    pub truth: GroundTruth,
}

impl Traffic {
    /// Generates the traffic of `city` for `config`.
    pub fn generate(city: &City, config: &TrafficConfig) -> Result<Traffic> {
        if config.window <= Duration::zero() {
            return Err(Error::Config("the time window must be positive".into()));
        }
        let mut generator = Generator::new(city, config);
        generator.registers();
        generator.traffic(config)?;
        let Generator {
            events,
            violations,
            run,
            ..
        } = generator;
        let mut by_department = BTreeMap::new();
        let mut by_type = BTreeMap::new();
        for e in &events {
            *by_department
                .entry(e.department.code().to_owned())
                .or_insert(0) += 1;
            *by_type.entry(e.token.clone()).or_insert(0) += 1;
        }
        let truth = GroundTruth {
            seed: config.seed,
            epoch: config.epoch,
            run: run.clone(),
            events: events.len(),
            events_by_department: by_department,
            events_by_type: by_type,
            violations,
        };
        Ok(Traffic { run, events, truth })
    }

    /// Events per department.
    pub fn by_department(&self) -> BTreeMap<Department, usize> {
        let mut out = BTreeMap::new();
        for e in &self.events {
            *out.entry(e.department).or_insert(0) += 1;
        }
        out
    }
}

/// The run tag of a seed and an epoch: `s` and 8 hex digits.
pub fn run_tag(seed: u64, epoch: DateTime<Utc>) -> String {
    let digest = Sha256::digest(format!("{seed}/{}", epoch.timestamp_millis()));
    format!("s{}", hex8(&digest))
}

fn hex8(bytes: &[u8]) -> String {
    bytes[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// An event under construction.
struct Ev {
    department: Department,
    subject: String,
    payload: Payload,
    legal: Option<(&'static str, &'static str, &'static str)>,
    correlation: Option<String>,
    causation: Option<usize>,
    after: Vec<usize>,
    classification: v1::DataClassification,
    time: DateTime<Utc>,
}

impl Ev {
    fn new(
        department: Department,
        time: DateTime<Utc>,
        subject: impl Into<String>,
        payload: Payload,
    ) -> Self {
        Ev {
            department,
            subject: subject.into(),
            payload,
            legal: None,
            correlation: None,
            causation: None,
            after: Vec::new(),
            classification: v1::DataClassification::Shared,
            time,
        }
    }

    fn legal(
        mut self,
        instrument: &'static str,
        article: &'static str,
        version: &'static str,
    ) -> Self {
        self.legal = Some((instrument, article, version));
        self
    }

    fn correlate(mut self, id: &str) -> Self {
        self.correlation = Some(id.to_owned());
        self
    }

    fn caused_by(mut self, index: Option<usize>) -> Self {
        self.causation = index;
        self
    }

    fn after(mut self, index: usize) -> Self {
        self.after.push(index);
        self
    }

    fn public(mut self) -> Self {
        self.classification = v1::DataClassification::Public;
        self
    }
}

const REGULATION: &str = "《危险化学品安全管理条例》";
const REGULATION_VERSION: &str = "2013-12-07";

struct Generator<'a> {
    city: &'a City,
    rng: ChaCha20Rng,
    run: String,
    /// Short upper-case tag for document numbers.
    tag: String,
    events: Vec<SimEvent>,
    violations: Vec<InjectedViolation>,
    phase: u8,
    clock: DateTime<Utc>,
    epoch: DateTime<Utc>,
    step_ms: f64,
    serial: usize,
    /// Enterprises on a credit list: nothing is granted to them afterwards except the injected grant.
    listed: HashSet<usize>,
    /// Sensor batches so far (sites take turns).
    sensor_round: usize,
}

impl<'a> Generator<'a> {
    fn new(city: &'a City, config: &TrafficConfig) -> Self {
        let run = run_tag(config.seed, config.epoch);
        let tag = run[1..7].to_uppercase();
        // A different stream of randomness than the city's, from the same seed.
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&Sha256::digest(format!("traffic/{}", config.seed)));
        let rng = ChaCha20Rng::from_seed(seed);
        let window_ms = config.window.num_milliseconds().max(1) as f64;
        Generator {
            city,
            rng,
            run,
            tag,
            events: Vec::with_capacity(config.events + 1024),
            violations: Vec::new(),
            phase: 0,
            clock: config.epoch - config.window,
            epoch: config.epoch,
            step_ms: window_ms / (config.events.max(100) as f64),
            serial: 0,
            listed: HashSet::new(),
            sensor_round: 0,
        }
    }

    /// Advances the simulated clock by about one step and returns the time (never after the epoch).
    fn tick(&mut self) -> DateTime<Utc> {
        let ms = (self.step_ms * self.rng.gen_range(0.5..1.5)).max(1.0) as i64;
        self.clock += Duration::milliseconds(ms);
        if self.clock > self.epoch {
            self.clock = self.epoch;
        }
        // Whole milliseconds keep the JSON form short.
        self.clock
    }

    /// A document number: prefix, the run's tag, a serial of `width` digits, suffix.
    fn doc(&mut self, prefix: &str, suffix: &str, width: usize) -> String {
        let serial = self.next_serial();
        format!("{prefix}{}{serial:0width$}{suffix}", self.tag)
    }

    fn next_serial(&mut self) -> usize {
        self.serial += 1;
        self.serial
    }

    fn push(&mut self, ev: Ev) -> usize {
        let index = self.events.len();
        let id = format!("{}-{index:07}", self.run);
        let time = timestamp(ev.time);
        let mut event = hazchem_proto::build_event(
            id,
            format!(
                "/departments/{}/{}",
                ev.department.code(),
                system_of(ev.department)
            ),
            Some(v1::Department::from(ev.department)),
            time,
            ev.payload,
        );
        let token = event
            .r#type
            .strip_prefix(hazchem_proto::TYPE_PREFIX)
            .unwrap_or_default()
            .to_owned();
        event.subject = ev.subject;
        event.classification = ev.classification as i32;
        if let Some((instrument, article, version)) = ev.legal {
            event.legal_basis = Some(v1::LegalBasis {
                instrument: instrument.to_owned(),
                article: article.to_owned(),
                version: version.to_owned(),
            });
        }
        if let Some(c) = ev.correlation {
            event.correlation_id = c;
        }
        if let Some(c) = ev.causation {
            event.causation_id = self.events[c].event.id.clone();
        }
        self.events.push(SimEvent {
            index,
            department: ev.department,
            phase: self.phase,
            after: ev.after,
            token,
            event,
        });
        index
    }

    fn id(&self, index: usize) -> String {
        self.events[index].event.id.clone()
    }

    fn enterprise(&self, index: usize) -> &'a Enterprise {
        &self.city.enterprises[index]
    }

    // ---- Phase 0: the registers ----

    fn registers(&mut self) {
        self.phase = 0;
        let city = self.city;
        let mut relocations = 0;
        for (index, enterprise) in city.enterprises.iter().enumerate() {
            for grant in &enterprise.licences {
                self.issue(index, grant, false);
            }
            if enterprise.hazard_source.is_some() {
                self.hazard_source(index);
            }
            if index == 7 || self.rng.gen_bool(0.06) {
                self.relocation(index);
                relocations += 1;
            }
        }
        debug_assert!(relocations > 0);
        self.phase = 1;
    }

    /// Issues (or, with `renew`, renews) a licence: by the competent department, or by 行政审批 on its
    /// behalf after an application decision.
    fn issue(&mut self, holder: usize, grant: &LicenceGrant, renew: bool) -> usize {
        let e = self.enterprise(holder);
        let t = self.tick();
        let from = start_of_day(t);
        let licence = v1::Licence {
            licence_number: grant.number.clone(),
            kind: grant.kind as i32,
            holder: Some(enterprise_ref(e)),
            competent_department: v1::Department::from(grant.competent) as i32,
            scope: grant
                .chemicals
                .iter()
                .take(20)
                .map(|&c| {
                    format!(
                        "{} {}吨/年",
                        self.city.chemical(c).name_zh(),
                        1000 * (c % 50 + 1)
                    )
                })
                .collect(),
            chemicals: grant
                .chemicals
                .iter()
                .map(|&c| chemical_ref(self.city, c))
                .collect(),
            validity: Some(v1::Validity {
                valid_from: Some(timestamp(from)),
                valid_until: Some(timestamp(from + Duration::days(3 * 365))),
            }),
            practitioner: grant.practitioner.map(|p| person(&self.city.crew[p])),
            vehicle: grant.vehicle.map(|v| {
                let v = &self.city.vehicles[v];
                vehicle(&v.tractor, &v.tractor_certificate)
            }),
        };
        let (instrument, article, version) = licence_basis(grant.kind);
        let publisher = if grant.via_approval {
            Department::Approval
        } else {
            grant.competent
        };
        let mut first = None;
        if grant.via_approval && !renew {
            let number = self.doc("SP", "", 6);
            let decided = Ev::new(
                Department::Approval,
                t,
                e.uscc.as_str(),
                Payload::ApplicationDecided(v1::ApplicationDecided {
                    application_number: number,
                    applicant: Some(enterprise_ref(e)),
                    kind: grant.kind as i32,
                    competent_department: v1::Department::from(grant.competent) as i32,
                    decision: v1::Decision::Approved as i32,
                    reason: "材料齐全，符合法定形式，准予许可".into(),
                    licence_number: grant.number.clone(),
                }),
            )
            .legal("《中华人民共和国行政许可法》", "第三十八条", "2019-04-23");
            first = Some(self.push(decided));
        }
        let payload = if renew {
            Payload::LicenceRenewed(v1::LicenceRenewed {
                licence: Some(licence),
            })
        } else {
            Payload::LicenceIssued(v1::LicenceIssued {
                licence: Some(licence),
            })
        };
        let ev = Ev::new(publisher, t, e.uscc.as_str(), payload)
            .legal(instrument, article, version)
            .caused_by(first);
        self.push(ev)
    }

    fn hazard_source(&mut self, index: usize) {
        let e = self.enterprise(index);
        let t = self.tick();
        let alpha = [1.0, 1.2, 1.5, 2.0][self.rng.gen_range(0..4)];
        let mut sum = 0.0;
        let inventory: Vec<v1::HazardInventoryLine> = e
            .chemicals
            .iter()
            .take(10)
            .map(|&c| {
                let threshold = [1.0, 5.0, 10.0, 20.0, 50.0, 100.0][self.rng.gen_range(0..6)];
                let factor: f64 = self.rng.gen_range(0.5..8.0);
                let actual = (threshold * factor * 10.0).round() / 10.0;
                let beta = [1.0, 1.5, 2.0, 3.0][self.rng.gen_range(0..4)];
                sum += beta * actual / threshold;
                v1::HazardInventoryLine {
                    chemical: Some(chemical_ref(self.city, c)),
                    actual: Some(tonnes(actual)),
                    threshold: Some(tonnes(threshold)),
                    beta,
                }
            })
            .collect();
        let r = ((alpha * sum) * 100.0).round() / 100.0;
        let grade = if r >= 100.0 {
            v1::HazardSourceGrade::HazardSourceGrade1
        } else if r >= 50.0 {
            v1::HazardSourceGrade::HazardSourceGrade2
        } else if r >= 10.0 {
            v1::HazardSourceGrade::HazardSourceGrade3
        } else {
            v1::HazardSourceGrade::HazardSourceGrade4
        };
        let id = e.hazard_source.clone().unwrap_or_default();
        self.push(
            Ev::new(
                Department::Emergency,
                t,
                id.clone(),
                Payload::MajorHazardSourceRegistered(v1::MajorHazardSourceRegistered {
                    holder: Some(enterprise_ref(e)),
                    hazard_source_id: id,
                    name: format!("{}储罐区", e.name),
                    grade: grade as i32,
                    r_value: r,
                    alpha,
                    inventory,
                    location: Some(place(e)),
                }),
            )
            .legal(
                "《危险化学品重大危险源监督管理暂行规定》",
                "第二十三条",
                "2015-05-27",
            ),
        );
    }

    fn relocation(&mut self, index: usize) {
        let e = self.enterprise(index);
        let t = self.tick();
        let park = crate::city::DISTRICTS[self.rng.gen_range(0..crate::city::DISTRICTS.len())].4;
        let number = self.doc("通工信搬字", "", 5);
        let days = self.rng.gen_range(365..1095);
        self.push(
            Ev::new(
                Department::Miit,
                t,
                e.uscc.as_str(),
                Payload::RelocationOrdered(v1::RelocationOrdered {
                    enterprise: Some(enterprise_ref(e)),
                    order_number: number,
                    destination_park: park.to_owned(),
                    deadline: Some(timestamp(t + Duration::days(days))),
                }),
            )
            .legal(
                "《关于推进城镇人口密集区危险化学品生产企业搬迁改造的指导意见》",
                "二",
                "2017-08-02",
            ),
        );
    }

    // ---- Phase 1: the traffic ----

    fn traffic(&mut self, config: &TrafficConfig) -> Result<()> {
        let injections = config.inject.sequence();
        let start = self.events.len();
        let budget = config.events.saturating_sub(start);
        let mut injected = 0;
        loop {
            let done = self.events.len() - start;
            // The k-th injection goes in once (k + 1) / (n + 1) of the budget is spent.
            while injected < injections.len()
                && done * (injections.len() + 1) >= (injected + 1) * budget
            {
                self.inject(injections[injected])?;
                injected += 1;
            }
            if self.events.len() >= config.events && injected == injections.len() {
                break;
            }
            if self.events.len() >= config.events {
                // Budget spent: the remaining injections go at the end.
                for &kind in &injections[injected..] {
                    self.inject(kind)?;
                }
                break;
            }
            self.episode();
        }
        Ok(())
    }

    fn episode(&mut self) {
        const WEIGHTS: [(u32, u8); 13] = [
            (34, 0), // sensor readings
            (14, 1), // batch lifecycle
            (2, 2),  // alarm raised and cleared
            (5, 3),  // ship declaration
            (5, 4),  // waste manifest
            (10, 5), // inspection (+ penalty)
            (1, 6),  // incident
            (2, 7),  // renewal
            (2, 8),  // application decided by approval
            (1, 9),  // relocation
            (1, 10), // theft or loss
            (5, 11), // usage
            (1, 12), // stocktake
        ];
        let total: u32 = WEIGHTS.iter().map(|w| w.0).sum();
        let mut pick = self.rng.gen_range(0..total);
        let mut kind = 0;
        for (w, k) in WEIGHTS {
            if pick < w {
                kind = k;
                break;
            }
            pick -= w;
        }
        match kind {
            0 => self.sensor_readings(),
            1 => {
                self.lifecycle(Lifecycle::default());
            }
            2 => self.alarm(),
            3 => self.ship_call(),
            4 => self.waste(),
            5 => {
                let departments = [
                    Department::Emergency,
                    Department::Emergency,
                    Department::Fire,
                    Department::Fire,
                    Department::Samr,
                    Department::Eeb,
                    Department::Transport,
                    Department::Msa,
                    Department::Psb,
                ];
                let d = departments[self.rng.gen_range(0..departments.len())];
                let target = self.rng.gen_range(0..self.city.enterprises.len());
                self.inspection(d, target, true);
            }
            6 => self.incident(),
            7 => self.renewal(),
            8 => self.application(),
            9 => {
                let target = self.rng.gen_range(0..self.city.enterprises.len());
                self.relocation(target);
            }
            10 => self.theft(),
            11 => self.usage(),
            _ => self.stocktake(),
        }
    }

    fn sensor_readings(&mut self) {
        let sites: Vec<usize> = self
            .city
            .enterprises
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.sensors.is_empty())
            .map(|(i, _)| i)
            .collect();
        if sites.is_empty() {
            return;
        }
        self.sensor_round += 1;
        let site = sites[self.sensor_round % sites.len()];
        let e = self.enterprise(site);
        let t = self.tick();
        let rounds = self.rng.gen_range(1..=3);
        let mut readings = Vec::with_capacity(rounds * e.sensors.len());
        for r in 0..rounds {
            let at = timestamp(t - Duration::seconds(10 * (rounds - 1 - r) as i64));
            for s in &e.sensors {
                let jitter = if s.kind == v1::SensorKind::Oxygen as i32 {
                    self.rng.gen_range(-0.2..0.2)
                } else {
                    s.normal * self.rng.gen_range(-0.05..0.05)
                };
                readings.push(v1::SensorReading {
                    sensor_id: s.id.clone(),
                    kind: s.kind,
                    value: ((s.normal + jitter).max(0.0) * 100.0).round() / 100.0,
                    measured_at: Some(at),
                });
            }
        }
        let hazard = e.hazard_source.clone().unwrap_or_default();
        self.push(Ev::new(
            Department::Emergency,
            t,
            hazard.clone(),
            Payload::SensorReadingsRecorded(v1::SensorReadingsRecorded {
                enterprise: Some(enterprise_ref(e)),
                hazard_source_id: hazard,
                readings,
            }),
        ));
    }

    fn alarm_event(&mut self, site: usize, t: DateTime<Utc>, level2: bool) -> (usize, String) {
        let e = self.enterprise(site);
        let flammable: Vec<_> = e
            .sensors
            .iter()
            .filter(|s| s.kind == v1::SensorKind::FlammableGas as i32)
            .collect();
        let sensor = flammable.first().copied().unwrap_or(&e.sensors[0]);
        let (level, value, threshold) = if level2 {
            (
                v1::AlarmLevel::AlarmLevel2,
                self.rng.gen_range(50.0..70.0),
                50.0,
            )
        } else {
            (
                v1::AlarmLevel::AlarmLevel1,
                self.rng.gen_range(25.0..40.0),
                25.0,
            )
        };
        let alarm_id = self.doc("AL", "", 7);
        let chemical = e.chemicals.first().map(|&c| chemical_ref(self.city, c));
        let index = self.push(Ev::new(
            Department::Emergency,
            t,
            alarm_id.clone(),
            Payload::SensorAlarmRaised(v1::SensorAlarmRaised {
                alarm_id: alarm_id.clone(),
                enterprise: Some(enterprise_ref(e)),
                hazard_source_id: e.hazard_source.clone().unwrap_or_default(),
                sensor_id: sensor.id.clone(),
                kind: v1::SensorKind::FlammableGas as i32,
                level: level as i32,
                value: (value * 10.0_f64).round() / 10.0,
                threshold,
                chemical,
                raised_at: Some(timestamp(t)),
            }),
        ));
        (index, alarm_id)
    }

    fn monitored_sites(&self) -> Vec<usize> {
        self.city
            .enterprises
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.sensors.is_empty())
            .map(|(i, _)| i)
            .collect()
    }

    fn alarm(&mut self) {
        let sites = self.monitored_sites();
        let Some(&site) = sites.choose(&mut self.rng) else {
            return;
        };
        let t = self.tick();
        let (raised, alarm_id) = self.alarm_event(site, t, false);
        let e = self.enterprise(site);
        let cleared = self.tick();
        self.push(
            Ev::new(
                Department::Emergency,
                cleared,
                alarm_id.clone(),
                Payload::SensorAlarmCleared(v1::SensorAlarmCleared {
                    alarm_id,
                    enterprise: Some(enterprise_ref(e)),
                    cleared_at: Some(timestamp(cleared)),
                }),
            )
            .caused_by(Some(raised)),
        );
    }

    /// A batch lifecycle. Returns the indices of its events and facts the injections need.
    fn lifecycle(&mut self, spec: Lifecycle) -> LifecycleEvents {
        let city = self.city;
        let producers: Vec<usize> = city
            .with_role(Role::Producer)
            .into_iter()
            .filter(|&p| !city.enterprises[p].chemicals.is_empty())
            .collect();
        let (producer, chemical) = match spec.chemical {
            Some((p, c)) => (p, c),
            None => {
                let p = producers[self.rng.gen_range(0..producers.len())];
                let chems = &city.enterprises[p].chemicals;
                (p, chems[self.rng.gen_range(0..chems.len())])
            }
        };
        let chem = city.chemical(chemical);
        let toxic = chem.is_on("highly_toxic");
        let precursor = chem.is_on("explosive_precursor");
        let p = self.enterprise(producer);
        let batch = self.doc("B", "", 7);
        let quantity = half(self.rng.gen_range(5.0..60.0));
        let mut out = LifecycleEvents {
            producer,
            batch: batch.clone(),
            ..LifecycleEvents::default()
        };

        let t = self.tick();
        let licence = p
            .licence(v1::LicenceKind::SafetyProduction)
            .map(|l| l.number.clone())
            .unwrap_or_default();
        let produced = self.push(
            Ev::new(
                Department::Emergency,
                t,
                batch.clone(),
                Payload::ProductionRecorded(v1::ProductionRecorded {
                    producer: Some(enterprise_ref(p)),
                    facility_id: format!("FAC-{}-01", &p.uscc.as_str()[10..17]),
                    chemical: Some(chemical_ref(city, chemical)),
                    quantity: Some(tonnes(quantity)),
                    batch_code: batch.clone(),
                    produced_at: Some(timestamp(t)),
                    licence_number: licence,
                }),
            )
            .correlate(&batch)
            .legal("《安全生产许可证条例》", "第二条", "2014-07-29"),
        );
        out.all.push(produced);
        let t = self.tick();
        let stored = self.push(
            storage(
                p,
                chemical,
                city,
                v1::StorageMovement::In,
                quantity,
                &batch,
                t,
            )
            .correlate(&batch)
            .caused_by(Some(produced)),
        );
        out.all.push(stored);

        // Buyers and how much each gets.
        let mut candidates: Vec<usize> = city
            .enterprises
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                *i != producer && (e.has(Role::Trader) || e.has(Role::User) || e.has(Role::Storage))
            })
            .map(|(i, _)| i)
            .collect();
        candidates.shuffle(&mut self.rng);
        if let Some(buyer) = spec.buyer {
            candidates.retain(|&c| c != buyer);
            candidates.insert(0, buyer);
        }
        let sales = if quantity >= 10.0 && self.rng.gen_bool(0.4) {
            2
        } else {
            1
        };
        let mut shares = Vec::new();
        if sales == 2 {
            let first = half(quantity * self.rng.gen_range(0.3..0.7));
            shares.push(first);
            shares.push(quantity - first);
        } else {
            shares.push(quantity);
        }
        if let Some(extra) = spec.oversell {
            // Sold more than was produced: the last sale carries the excess.
            let last = shares.len() - 1;
            shares[last] = half(shares[last] + quantity * extra);
        }
        let carriers = city.licensed_carriers();
        for (n, &share) in shares.iter().enumerate() {
            let buyer = candidates[n % candidates.len()];
            let b = self.enterprise(buyer);
            let without_permit = spec.without_permit && n == 0;
            let mut permit_number = String::new();
            let mut permit = None;
            if toxic && !without_permit {
                let t = self.tick();
                permit_number = self.doc(&format!("苏通公剧购字〔{}〕第", t.format("%Y")), "号", 5);
                permit = Some(
                    self.push(
                        Ev::new(
                            Department::Psb,
                            t,
                            b.uscc.as_str(),
                            Payload::HighlyToxicPurchasePermitIssued(
                                v1::HighlyToxicPurchasePermitIssued {
                                    permit_number: permit_number.clone(),
                                    purchaser: Some(enterprise_ref(b)),
                                    chemical: Some(chemical_ref(city, chemical)),
                                    quantity: Some(tonnes(share)),
                                    purpose: "生产原料，按年度用量计划采购".into(),
                                    validity: Some(v1::Validity {
                                        valid_from: Some(timestamp(start_of_day(t))),
                                        valid_until: Some(timestamp(
                                            start_of_day(t) + Duration::days(30),
                                        )),
                                    }),
                                },
                            ),
                        )
                        .legal(REGULATION, "第三十九条", REGULATION_VERSION)
                        .correlate(&batch),
                    ),
                );
                out.all.push(permit.expect("just pushed"));
            }
            let filing_number = if precursor {
                self.doc("苏通公易制爆备", "", 5)
            } else {
                String::new()
            };
            let t = self.tick();
            let seller_dept = if self.rng.gen_bool(0.5) {
                Department::Samr
            } else {
                Department::Emergency
            };
            let mut sale = Ev::new(
                seller_dept,
                t,
                batch.clone(),
                Payload::SaleRecorded(v1::SaleRecorded {
                    seller: Some(enterprise_ref(p)),
                    buyer: Some(enterprise_ref(b)),
                    chemical: Some(chemical_ref(city, chemical)),
                    quantity: Some(tonnes(share)),
                    batch_code: batch.clone(),
                    sold_at: Some(timestamp(t)),
                    purchase_permit_number: permit_number,
                    precursor_filing_number: filing_number.clone(),
                }),
            )
            .legal(REGULATION, "第三十七条", REGULATION_VERSION)
            .correlate(&batch)
            .caused_by(Some(stored));
            if let Some(permit) = permit {
                sale = sale.after(permit);
            }
            let sale = self.push(sale);
            out.all.push(sale);
            out.sales.push(sale);
            if precursor {
                let filed = self.tick();
                let f = self.push(
                    Ev::new(
                        Department::Psb,
                        filed,
                        b.uscc.as_str(),
                        Payload::ExplosivePrecursorFiled(v1::ExplosivePrecursorFiled {
                            filing_number,
                            seller: Some(enterprise_ref(p)),
                            buyer: Some(enterprise_ref(b)),
                            chemical: Some(chemical_ref(city, chemical)),
                            quantity: Some(tonnes(share)),
                            traded_at: Some(timestamp(t)),
                            filed_at: Some(timestamp(filed)),
                        }),
                    )
                    .legal("《易制爆危险化学品治安管理办法》", "第十三条", "2019-08-10")
                    .correlate(&batch)
                    .after(sale),
                );
                out.all.push(f);
            }
            let t = self.tick();
            let out_idx = self.push(
                storage(
                    p,
                    chemical,
                    city,
                    v1::StorageMovement::Out,
                    share,
                    &batch,
                    t,
                )
                .correlate(&batch)
                .caused_by(Some(sale)),
            );
            out.all.push(out_idx);

            // Road transport.
            let carrier = if spec.unlicensed_carrier && n == 0 {
                city.unlicensed_carrier().unwrap_or_else(|| carriers[0])
            } else {
                carriers[self.rng.gen_range(0..carriers.len())]
            };
            let c = self.enterprise(carrier);
            let v = &city.vehicles[c.vehicles[self.rng.gen_range(0..c.vehicles.len())]];
            let carrier_licence = c
                .licence(v1::LicenceKind::RoadTransport)
                .map(|l| l.number.clone())
                .unwrap_or_else(|| format!("苏交运管许可通字320699{:06}号", self.serial));
            let waybill = self.doc("WB", "", 7);
            let t = self.tick();
            let route = v1::Route {
                origin: Some(place(p)),
                destination: Some(place(b)),
                waypoints: Vec::new(),
                planned_departure: Some(timestamp(t + Duration::minutes(30))),
                planned_arrival: Some(timestamp(t + Duration::minutes(210))),
            };
            let goods = vec![v1::GoodsLine {
                chemical: Some(chemical_ref(city, chemical)),
                transport_class: chem.transport_class().unwrap_or_default().to_owned(),
                packing_group: v1::PackingGroup::Ii as i32,
                quantity: Some(tonnes(share)),
                batch_code: batch.clone(),
            }];
            let issued = self.push(
                Ev::new(
                    Department::Transport,
                    t,
                    waybill.clone(),
                    Payload::WaybillIssued(v1::WaybillIssued {
                        waybill_number: waybill.clone(),
                        shipper: Some(enterprise_ref(p)),
                        consignee: Some(enterprise_ref(b)),
                        carrier: Some(enterprise_ref(c)),
                        carrier_licence_number: carrier_licence,
                        tractor: Some(vehicle(&v.tractor, &v.tractor_certificate)),
                        trailer: Some(vehicle(&v.trailer, &v.trailer_certificate)),
                        driver: Some(person(&city.crew[v.driver])),
                        escort: Some(person(&city.crew[v.escort])),
                        route: Some(route.clone()),
                        goods: goods.clone(),
                    }),
                )
                .legal(
                    "《危险货物道路运输安全管理办法》(交通运输部令2019年第29号)",
                    "第十二条",
                    "2019-11-10",
                )
                .correlate(&batch)
                .caused_by(Some(sale)),
            );
            out.all.push(issued);
            out.waybills.push(issued);
            if toxic {
                let t = self.tick();
                let pass_number = self.doc("苏通公剧运", "", 5);
                let pass = self.push(
                    Ev::new(
                        Department::Psb,
                        t,
                        waybill.clone(),
                        Payload::RoadPassIssued(v1::RoadPassIssued {
                            pass_number,
                            waybill_number: waybill.clone(),
                            carrier: Some(enterprise_ref(c)),
                            tractor: Some(vehicle(&v.tractor, &v.tractor_certificate)),
                            goods,
                            route: Some(route),
                            validity: Some(v1::Validity {
                                valid_from: Some(timestamp(t)),
                                valid_until: Some(timestamp(t + Duration::days(3))),
                            }),
                            trailer: Some(vehicle(&v.trailer, &v.trailer_certificate)),
                            driver: Some(person(&city.crew[v.driver])),
                            escort: Some(person(&city.crew[v.escort])),
                        }),
                    )
                    .legal(REGULATION, "第五十条", REGULATION_VERSION)
                    .correlate(&batch)
                    .after(issued),
                );
                out.all.push(pass);
            }
            let t = self.tick();
            let started = self.push(
                Ev::new(
                    Department::Transport,
                    t,
                    waybill.clone(),
                    Payload::TripStarted(v1::TripStarted {
                        waybill_number: waybill.clone(),
                        tractor: Some(vehicle(&v.tractor, &v.tractor_certificate)),
                        started_at: Some(timestamp(t)),
                        place: Some(place(p)),
                    }),
                )
                .correlate(&batch)
                .caused_by(Some(issued)),
            );
            let t = self.tick();
            let completed = self.push(
                Ev::new(
                    Department::Transport,
                    t,
                    waybill.clone(),
                    Payload::TripCompleted(v1::TripCompleted {
                        waybill_number: waybill.clone(),
                        tractor: Some(vehicle(&v.tractor, &v.tractor_certificate)),
                        completed_at: Some(timestamp(t)),
                        place: Some(place(b)),
                    }),
                )
                .correlate(&batch)
                .caused_by(Some(started)),
            );
            out.all.extend([started, completed]);
            out.trips.extend([started, completed]);
            let t = self.tick();
            let received = self.push(
                storage(b, chemical, city, v1::StorageMovement::In, share, &batch, t)
                    .correlate(&batch)
                    .caused_by(Some(completed)),
            );
            out.all.push(received);
            if b.has(Role::User) {
                let t = self.tick();
                let used = half(share * self.rng.gen_range(0.2..1.0)).min(share);
                let u = self.push(
                    Ev::new(
                        Department::Emergency,
                        t,
                        batch.clone(),
                        Payload::UsageRecorded(v1::UsageRecorded {
                            user: Some(enterprise_ref(b)),
                            chemical: Some(chemical_ref(city, chemical)),
                            quantity: Some(tonnes(used)),
                            batch_code: batch.clone(),
                            process: "反应釜投料".into(),
                            used_at: Some(timestamp(t)),
                        }),
                    )
                    .correlate(&batch)
                    .caused_by(Some(received)),
                );
                out.all.push(u);
            }
            out.buyers.push(buyer);
        }
        out.quantity = quantity;
        out.sold = shares.iter().sum();
        out
    }

    fn ship_call(&mut self) {
        let city = self.city;
        let ship = &city.ships[self.rng.gen_range(0..city.ships.len())];
        let declarant = self.enterprise(ship.declarant);
        let (port, _) = city
            .ports
            .iter()
            .find(|(_, t)| *t == ship.declarant)
            .cloned()
            .unwrap_or_else(|| ("南通港".to_owned(), ship.declarant));
        let number = self.doc("SD", "", 7);
        let t = self.tick();
        let pool: Vec<usize> = if declarant.chemicals.is_empty() {
            vec![0]
        } else {
            declarant.chemicals.clone()
        };
        let goods = pool
            .iter()
            .take(self.rng.gen_range(1..=3))
            .map(|&c| v1::GoodsLine {
                chemical: Some(chemical_ref(city, c)),
                transport_class: city
                    .chemical(c)
                    .transport_class()
                    .unwrap_or_default()
                    .to_owned(),
                packing_group: v1::PackingGroup::Ii as i32,
                quantity: Some(tonnes(f64::from(self.rng.gen_range(5..50u32)) * 100.0)),
                batch_code: String::new(),
            })
            .collect();
        let ship_ref = v1::Ship {
            imo: ship.imo.as_str().to_owned(),
            name: ship.name.clone(),
            mmsi: ship.mmsi.clone(),
        };
        let movement = if self.rng.gen_bool(0.5) {
            v1::ShipMovement::Arrival
        } else {
            v1::ShipMovement::Departure
        };
        let berth = format!("{}号泊位", self.rng.gen_range(1..12));
        let hours = self.rng.gen_range(24..48);
        let submitted = self.push(
            Ev::new(
                Department::Msa,
                t,
                number.clone(),
                Payload::ShipDeclarationSubmitted(v1::ShipDeclarationSubmitted {
                    declaration_number: number.clone(),
                    ship: Some(ship_ref.clone()),
                    declarant: Some(enterprise_ref(declarant)),
                    port,
                    berth,
                    movement: movement as i32,
                    expected_at: Some(timestamp(t + Duration::hours(hours))),
                    goods,
                    submitted_at: Some(timestamp(t)),
                }),
            )
            .legal(
                "《船舶载运危险货物安全监督管理规定》",
                "第二十一条",
                "2018-09-15",
            ),
        );
        let t = self.tick();
        let approved = self.rng.gen_bool(0.95);
        self.push(
            Ev::new(
                Department::Msa,
                t,
                number.clone(),
                Payload::ShipDeclarationDecided(v1::ShipDeclarationDecided {
                    declaration_number: number,
                    ship: Some(ship_ref),
                    decision: if approved {
                        v1::Decision::Approved as i32
                    } else {
                        v1::Decision::Rejected as i32
                    },
                    reason: if approved {
                        String::new()
                    } else {
                        "危险货物积载隔离不符合要求".into()
                    },
                    decided_at: Some(timestamp(t)),
                }),
            )
            .caused_by(Some(submitted)),
        );
    }

    fn waste(&mut self) {
        let city = self.city;
        let generators: Vec<usize> = city
            .enterprises
            .iter()
            .enumerate()
            .filter(|(_, e)| e.has(Role::Producer) || e.has(Role::User))
            .map(|(i, _)| i)
            .collect();
        let handlers = city.with_role(Role::WasteHandler);
        let carriers = city.licensed_carriers();
        let (Some(&g), Some(&h), Some(&c)) = (
            generators.choose(&mut self.rng),
            handlers.choose(&mut self.rng),
            carriers.choose(&mut self.rng),
        ) else {
            return;
        };
        let (ge, he, ce) = (self.enterprise(g), self.enterprise(h), self.enterprise(c));
        let number = self.doc("WM", "", 7);
        let code =
            ["HW06", "HW08", "HW49", "900-404-06", "900-249-08", "HW34"][self.rng.gen_range(0..6)];
        let quantity = half(self.rng.gen_range(1.0..20.0));
        let chemical = ge.chemicals.first().map(|&x| chemical_ref(city, x));
        let t = self.tick();
        let created = self.push(
            Ev::new(
                Department::Eeb,
                t,
                number.clone(),
                Payload::WasteManifestCreated(v1::WasteManifestCreated {
                    manifest_number: number.clone(),
                    generator: Some(enterprise_ref(ge)),
                    transporter: Some(enterprise_ref(ce)),
                    receiver: Some(enterprise_ref(he)),
                    waste_code: code.into(),
                    chemical,
                    quantity: Some(tonnes(quantity)),
                    batch_code: String::new(),
                    waybill_number: String::new(),
                    shipped_at: Some(timestamp(t)),
                }),
            )
            .legal("《危险废物转移管理办法》", "第十三条", "2021-11-30"),
        );
        let t = self.tick();
        self.push(
            Ev::new(
                Department::Eeb,
                t,
                number.clone(),
                Payload::WasteManifestReceived(v1::WasteManifestReceived {
                    manifest_number: number,
                    receiver: Some(enterprise_ref(he)),
                    quantity_received: Some(tonnes(quantity)),
                    received_at: Some(timestamp(t)),
                }),
            )
            .caused_by(Some(created)),
        );
    }

    fn inspection(
        &mut self,
        department: Department,
        target: usize,
        may_penalise: bool,
    ) -> Vec<usize> {
        let city = self.city;
        let e = self.enterprise(target);
        let officers = city.inspectors_of(department);
        let n = self.rng.gen_range(2..=3.min(officers.len()).max(2));
        let inspectors: Vec<v1::Person> = officers
            .choose_multiple(&mut self.rng, n)
            .map(person)
            .collect();
        const FINDINGS: [(&str, v1::FindingSeverity); 6] = [
            (
                "储罐区可燃气体检测报警仪未按期检定",
                v1::FindingSeverity::Minor,
            ),
            ("应急器材柜内防化服超过有效期", v1::FindingSeverity::Minor),
            ("危险化学品出入库台账记录不完整", v1::FindingSeverity::Minor),
            (
                "紧急切断阀未与有毒气体检测报警联锁",
                v1::FindingSeverity::MajorHazard,
            ),
            (
                "消防通道被占用，消防设施维护保养不到位",
                v1::FindingSeverity::Major,
            ),
            ("特殊作业审批手续不全", v1::FindingSeverity::Major),
        ];
        let count = [0, 0, 0, 1, 1, 2][self.rng.gen_range(0..6)];
        let findings: Vec<v1::Finding> = FINDINGS
            .choose_multiple(&mut self.rng, count)
            .enumerate()
            .map(|(i, (text, severity))| v1::Finding {
                code: format!("F{:02}", i + 1),
                description: (*text).to_owned(),
                severity: *severity as i32,
            })
            .collect();
        let serious = findings
            .iter()
            .any(|f| f.severity != v1::FindingSeverity::Minor as i32);
        let id = self.doc("INSP", "", 7);
        let t = self.tick();
        let inspected = self.push(
            Ev::new(
                department,
                t,
                e.uscc.as_str(),
                Payload::InspectionRecorded(v1::InspectionRecorded {
                    inspection_id: id,
                    enterprise: Some(enterprise_ref(e)),
                    inspectors,
                    findings,
                    inspected_at: Some(timestamp(t)),
                }),
            )
            .legal("《中华人民共和国安全生产法》", "第六十五条", "2021-06-10")
            .public(),
        );
        let mut out = vec![inspected];
        if may_penalise && serious && !self.listed.contains(&target) && self.rng.gen_bool(0.4) {
            out.push(self.penalty(department, target, Some(inspected)).0);
        }
        out
    }

    /// A penalty decision; returns its index and decision number.
    fn penalty(
        &mut self,
        department: Department,
        target: usize,
        cause: Option<usize>,
    ) -> (usize, String) {
        let e = self.enterprise(target);
        let t = self.tick();
        let number = self.doc(
            &format!("(通){}罚〔{}〕", short_name(department), t.format("%Y")),
            "号",
            5,
        );
        let fine = f64::from(self.rng.gen_range(1..20u32)) * 10_000.0;
        let index = self.push(
            Ev::new(
                department,
                t,
                e.uscc.as_str(),
                Payload::PenaltyDecided(v1::PenaltyDecided {
                    decision_number: number.clone(),
                    enterprise: Some(enterprise_ref(e)),
                    reason:
                        "未按规定对重大危险源安全设施进行经常性维护、保养，责令限期改正并处罚款"
                            .into(),
                    fine_yuan: fine,
                    task_id: String::new(),
                    decided_at: Some(timestamp(t)),
                }),
            )
            .legal("《中华人民共和国安全生产法》", "第九十九条", "2021-06-10")
            .caused_by(cause)
            .public(),
        );
        (index, number)
    }

    fn incident(&mut self) {
        let city = self.city;
        let sites = self.monitored_sites();
        let Some(&site) = sites.choose(&mut self.rng) else {
            return;
        };
        let e = self.enterprise(site);
        let department = if self.rng.gen_bool(0.5) {
            Department::Fire
        } else {
            Department::Emergency
        };
        let kind = [
            v1::IncidentKind::Leak,
            v1::IncidentKind::Fire,
            v1::IncidentKind::Leak,
            v1::IncidentKind::Other,
        ][self.rng.gen_range(0..4)];
        let t = self.tick();
        let id = self.doc("INC", "", 6);
        let injuries = u32::from(self.rng.gen_bool(0.1));
        self.push(Ev::new(
            department,
            t,
            id.clone(),
            Payload::IncidentReported(v1::IncidentReported {
                incident_id: id,
                kind: kind as i32,
                enterprise: Some(enterprise_ref(e)),
                place: Some(place(e)),
                chemicals: e
                    .chemicals
                    .iter()
                    .take(2)
                    .map(|&c| chemical_ref(city, c))
                    .collect(),
                deaths: 0,
                injuries,
                waybill_number: String::new(),
                description: "储罐区法兰连接处少量泄漏，现场已处置，无人员伤亡".into(),
                occurred_at: Some(timestamp(t)),
            }),
        ));
    }

    fn renewal(&mut self) {
        let n = self.city.enterprises.len();
        let holder = self.rng.gen_range(0..n);
        if self.listed.contains(&holder) {
            return;
        }
        let e = self.enterprise(holder);
        let Some(grant) = e.licences.choose(&mut self.rng).cloned() else {
            return;
        };
        self.issue(holder, &grant, true);
    }

    fn application(&mut self) {
        let n = self.city.enterprises.len();
        let applicant = self.rng.gen_range(0..n);
        let e = self.enterprise(applicant);
        let approve = self.rng.gen_bool(0.5) && !self.listed.contains(&applicant);
        let (kind, competent) = [
            (v1::LicenceKind::Operation, Department::Emergency),
            (v1::LicenceKind::SafeUse, Department::Emergency),
            (v1::LicenceKind::Business, Department::Samr),
            (v1::LicenceKind::HazardousWaste, Department::Eeb),
        ][self.rng.gen_range(0..4)];
        if approve {
            let grant = LicenceGrant {
                number: self.doc("SPX", "", 6),
                kind,
                competent,
                via_approval: true,
                chemicals: e.chemicals.clone(),
                vehicle: None,
                practitioner: None,
            };
            self.issue(applicant, &grant, false);
        } else {
            let t = self.tick();
            let number = self.doc("SP", "", 6);
            self.push(
                Ev::new(
                    Department::Approval,
                    t,
                    e.uscc.as_str(),
                    Payload::ApplicationDecided(v1::ApplicationDecided {
                        application_number: number,
                        applicant: Some(enterprise_ref(e)),
                        kind: kind as i32,
                        competent_department: v1::Department::from(competent) as i32,
                        decision: v1::Decision::Rejected as i32,
                        reason: "安全评价报告结论不满足要求，不予许可".into(),
                        licence_number: String::new(),
                    }),
                )
                .legal("《中华人民共和国行政许可法》", "第三十八条", "2019-04-23"),
            );
        }
    }

    fn theft(&mut self) {
        let city = self.city;
        let holders: Vec<(usize, usize)> = city
            .enterprises
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.chemicals.iter().map(move |&c| (i, c)))
            .filter(|&(_, c)| {
                let chem = city.chemical(c);
                chem.is_on("highly_toxic") || chem.is_on("explosive_precursor")
            })
            .collect();
        let Some(&(holder, chemical)) = holders.choose(&mut self.rng) else {
            return;
        };
        let e = self.enterprise(holder);
        let t = self.tick();
        let report_number = self.doc("苏通公失报", "", 5);
        let kilograms = f64::from(self.rng.gen_range(1..50u32));
        self.push(
            Ev::new(
                Department::Psb,
                t,
                e.uscc.as_str(),
                Payload::TheftOrLossReported(v1::TheftOrLossReported {
                    report_number,
                    holder: Some(enterprise_ref(e)),
                    chemical: Some(chemical_ref(city, chemical)),
                    quantity: Some(v1::Quantity {
                        value: kilograms,
                        unit: v1::QuantityUnit::Kilogram as i32,
                    }),
                    batch_code: String::new(),
                    discovered_at: Some(timestamp(t)),
                }),
            )
            .legal(REGULATION, "第二十三条", REGULATION_VERSION),
        );
    }

    fn usage(&mut self) {
        let city = self.city;
        let users: Vec<usize> = city
            .with_role(Role::User)
            .into_iter()
            .filter(|&u| !city.enterprises[u].chemicals.is_empty())
            .collect();
        let Some(&u) = users.choose(&mut self.rng) else {
            return;
        };
        let e = self.enterprise(u);
        let c = e.chemicals[self.rng.gen_range(0..e.chemicals.len())];
        let t = self.tick();
        let used = half(self.rng.gen_range(0.5..5.0));
        self.push(Ev::new(
            Department::Emergency,
            t,
            e.uscc.as_str(),
            Payload::UsageRecorded(v1::UsageRecorded {
                user: Some(enterprise_ref(e)),
                chemical: Some(chemical_ref(city, c)),
                quantity: Some(tonnes(used)),
                batch_code: String::new(),
                process: "连续化生产线投料".into(),
                used_at: Some(timestamp(t)),
            }),
        ));
    }

    fn stocktake(&mut self) {
        let city = self.city;
        let holders: Vec<usize> = city
            .with_role(Role::Storage)
            .into_iter()
            .filter(|&s| !city.enterprises[s].chemicals.is_empty())
            .collect();
        let Some(&s) = holders.choose(&mut self.rng) else {
            return;
        };
        let e = self.enterprise(s);
        let c = e.chemicals[self.rng.gen_range(0..e.chemicals.len())];
        let t = self.tick();
        let q = half(self.rng.gen_range(10.0..500.0));
        self.push(storage(
            e,
            c,
            city,
            v1::StorageMovement::Stocktake,
            q,
            "",
            t,
        ));
    }

    // ---- Injected violations ----

    fn inject(&mut self, kind: ViolationKind) -> Result<()> {
        let violation = match kind {
            ViolationKind::ListedLicence => self.listed_licence()?,
            ViolationKind::ToxicSaleWithoutPermit => self.toxic_sale_without_permit()?,
            ViolationKind::UnlicensedCarrierWaybill => self.unlicensed_carrier_waybill()?,
            ViolationKind::UnbalancedBatch => self.unbalanced_batch(),
            ViolationKind::AlarmStorm => self.alarm_storm()?,
        };
        self.violations.push(violation);
        Ok(())
    }

    fn listed_licence(&mut self) -> Result<InjectedViolation> {
        let city = self.city;
        // A trader or user not listed yet.
        let candidates: Vec<usize> = city
            .enterprises
            .iter()
            .enumerate()
            .filter(|(i, e)| !self.listed.contains(i) && (e.has(Role::Trader) || e.has(Role::User)))
            .map(|(i, _)| i)
            .collect();
        let Some(&target) = candidates.choose(&mut self.rng) else {
            return Err(Error::Config(
                "listed-licence: every trader and user is listed already; inject fewer or grow the city".into(),
            ));
        };
        self.listed.insert(target);
        let e = self.enterprise(target);
        let inspection = self.inspection(Department::Emergency, target, false);
        let (penalty, number) =
            self.penalty(Department::Emergency, target, inspection.first().copied());
        let t = self.tick();
        let listing_id = self.doc("CL", "", 6);
        let listing = self.push(
            Ev::new(
                Department::Emergency,
                t,
                e.uscc.as_str(),
                Payload::CreditListingDecided(v1::CreditListingDecided {
                    listing_id: listing_id.clone(),
                    enterprise: Some(enterprise_ref(e)),
                    list_type: v1::ListType::SeriousDishonest as i32,
                    reason: "存在重大事故隐患且拒不整改，受到行政处罚".into(),
                    penalty_decision_number: number.clone(),
                    measures: vec![
                        v1::Measure {
                            code: "licence_restriction".into(),
                            applies_to: Vec::new(),
                            description: "依法限制新增行政许可".into(),
                        },
                        v1::Measure {
                            code: "stricter_inspection".into(),
                            applies_to: vec![
                                v1::Department::Emergency as i32,
                                v1::Department::Psb as i32,
                                v1::Department::Fire as i32,
                            ],
                            description: "列为重点检查对象，提高抽查比例和频次".into(),
                        },
                    ],
                    listed_at: Some(timestamp(t)),
                }),
            )
            .legal(
                "《安全生产严重失信主体名单管理办法》(应急管理部令第11号)",
                "第六条",
                "2023-08-08",
            )
            .caused_by(Some(penalty)),
        );
        // Another department grants it a licence afterwards.
        let t = self.tick();
        let from = start_of_day(t);
        let grant_number = self.doc("(苏)XK13-014-", "", 5);
        let grant = self.push(
            Ev::new(
                Department::Samr,
                t,
                e.uscc.as_str(),
                Payload::LicenceIssued(v1::LicenceIssued {
                    licence: Some(v1::Licence {
                        licence_number: grant_number.clone(),
                        kind: v1::LicenceKind::IndustrialProduct as i32,
                        holder: Some(enterprise_ref(e)),
                        competent_department: v1::Department::Samr as i32,
                        scope: vec!["危险化学品(工业产品生产许可)".into()],
                        chemicals: e.chemicals.iter().map(|&c| chemical_ref(city, c)).collect(),
                        validity: Some(v1::Validity {
                            valid_from: Some(timestamp(from)),
                            valid_until: Some(timestamp(from + Duration::days(5 * 365))),
                        }),
                        practitioner: None,
                        vehicle: None,
                    }),
                }),
            )
            .legal(
                "《中华人民共和国工业产品生产许可证管理条例》",
                "第二条",
                "2023-07-20",
            )
            .after(listing),
        );
        let mut ids: Vec<String> = inspection.iter().map(|&i| self.id(i)).collect();
        ids.extend([self.id(penalty), self.id(listing), self.id(grant)]);
        Ok(InjectedViolation {
            kind: ViolationKind::ListedLicence,
            description: format!(
                "emergency penalised {} ({number}) and put it on the serious-dishonest list ({listing_id}) \
                 with measure licence_restriction for every department; samr then granted it industrial \
                 product licence {grant_number}",
                e.name
            ),
            enterprise: truth_enterprise(e),
            event_ids: ids,
            violating_event_id: self.id(grant),
            expected_detection: format!(
                "credit: a credit.conflict warning (red: serious-dishonest listing {listing_id}, measure \
                 licence_restriction) about grant event {}, addressed to samr and emergency",
                self.id(grant)
            ),
            detector: "credit".into(),
        })
    }

    fn toxic_producer(&self) -> Result<(usize, usize)> {
        let city = self.city;
        city.enterprises
            .iter()
            .enumerate()
            .filter(|(_, e)| e.has(Role::Producer))
            .find_map(|(i, e)| {
                e.chemicals
                    .iter()
                    .find(|&&c| city.chemical(c).is_on("highly_toxic"))
                    .map(|&c| (i, c))
            })
            .ok_or_else(|| Error::Config("no producer of a highly toxic chemical".into()))
    }

    fn toxic_sale_without_permit(&mut self) -> Result<InjectedViolation> {
        let (producer, chemical) = self.toxic_producer()?;
        let events = self.lifecycle(Lifecycle {
            chemical: Some((producer, chemical)),
            without_permit: true,
            ..Lifecycle::default()
        });
        let sale = events.sales[0];
        let buyer = self.enterprise(events.buyers[0]);
        let seller = self.enterprise(producer);
        let chem = self.city.chemical(chemical).name_zh().to_owned();
        Ok(InjectedViolation {
            kind: ViolationKind::ToxicSaleWithoutPermit,
            description: format!(
                "{} sold highly toxic {chem} (batch {}) to {} with no purchase permit: no \
                 highly_toxic_purchase_permit_issued for the buyer, and the sale names none",
                seller.name, events.batch, buyer.name
            ),
            enterprise: truth_enterprise(seller),
            event_ids: vec![self.id(sale)],
            violating_event_id: self.id(sale),
            expected_detection: format!(
                "lifecycle/warning: a highly toxic sale ({chem}, 剧毒化学品) without a purchase permit on \
                 the record (《危险化学品安全管理条例》第三十八、三十九条): sale event {} has an empty \
                 purchase_permit_number and no permit names the buyer",
                self.id(sale)
            ),
            detector: "warning".into(),
        })
    }

    fn unlicensed_carrier_waybill(&mut self) -> Result<InjectedViolation> {
        let Some(carrier) = self.city.unlicensed_carrier() else {
            return Err(Error::Config("the city has no unlicensed carrier".into()));
        };
        if self.enterprise(carrier).vehicles.is_empty() {
            return Err(Error::Config(
                "the unlicensed carrier has no vehicle".into(),
            ));
        }
        // An ordinary chemical, so that this is the only violation in the lifecycle.
        let city = self.city;
        let choice = city.with_role(Role::Producer).into_iter().find_map(|p| {
            city.enterprises[p]
                .chemicals
                .iter()
                .find(|&&c| {
                    let chem = city.chemical(c);
                    !chem.is_on("highly_toxic") && !chem.is_on("explosive_precursor")
                })
                .map(|&c| (p, c))
        });
        let events = self.lifecycle(Lifecycle {
            chemical: choice,
            unlicensed_carrier: true,
            ..Lifecycle::default()
        });
        let waybill = events.waybills[0];
        let c = self.enterprise(carrier);
        let number = match &self.events[waybill].event.payload {
            Some(Payload::WaybillIssued(w)) => w.waybill_number.clone(),
            _ => String::new(),
        };
        Ok(InjectedViolation {
            kind: ViolationKind::UnlicensedCarrierWaybill,
            description: format!(
                "waybill {number} names carrier {} ({}), which holds no road dangerous-goods transport \
                 licence (no licence_issued of kind ROAD_TRANSPORT for it on the record)",
                c.name,
                c.uscc.as_str()
            ),
            enterprise: truth_enterprise(c),
            event_ids: vec![
                self.id(waybill),
                self.id(events.trips[0]),
                self.id(events.trips[1]),
            ],
            violating_event_id: self.id(waybill),
            expected_detection: format!(
                "lifecycle/warning: waybill {number} (event {}) names a carrier without a valid \
                 road_transport licence on the record; its carrier_licence_number was never issued",
                self.id(waybill)
            ),
            detector: "warning".into(),
        })
    }

    fn unbalanced_batch(&mut self) -> InjectedViolation {
        let city = self.city;
        let choice = city
            .with_role(Role::Producer)
            .into_iter()
            .rev()
            .find_map(|p| {
                city.enterprises[p]
                    .chemicals
                    .iter()
                    .find(|&&c| {
                        let chem = city.chemical(c);
                        !chem.is_on("highly_toxic") && !chem.is_on("explosive_precursor")
                    })
                    .map(|&c| (p, c))
            });
        let events = self.lifecycle(Lifecycle {
            chemical: choice,
            oversell: Some(0.3),
            ..Lifecycle::default()
        });
        let p = self.enterprise(events.producer);
        InjectedViolation {
            kind: ViolationKind::UnbalancedBatch,
            description: format!(
                "batch {} of {}: {} t produced and stored in, but {} t sold, stored out and shipped",
                events.batch, p.name, events.quantity, events.sold
            ),
            enterprise: truth_enterprise(p),
            event_ids: events.all.iter().map(|&i| self.id(i)).collect(),
            violating_event_id: self.id(*events.sales.last().expect("one sale at least")),
            expected_detection: format!(
                "lifecycle: batch {} does not balance: production {} t = storage in {} t, but sales {} t \
                 (the batch trail shows {} t more leaving than entering)",
                events.batch,
                events.quantity,
                events.quantity,
                events.sold,
                half(events.sold - events.quantity)
            ),
            detector: "lifecycle".into(),
        }
    }

    fn alarm_storm(&mut self) -> Result<InjectedViolation> {
        let sites = self.monitored_sites();
        let Some(&site) = sites.choose(&mut self.rng) else {
            return Err(Error::Config("no monitored site for an alarm storm".into()));
        };
        const ALARMS: usize = 20;
        let base = self
            .tick()
            .min(self.epoch - Duration::seconds(5 * ALARMS as i64));
        let mut ids = Vec::with_capacity(ALARMS);
        for k in 0..ALARMS {
            let t = base + Duration::seconds(5 * k as i64);
            let (index, _) = self.alarm_event(site, t, k % 3 == 2);
            ids.push(self.id(index));
        }
        self.clock = self.clock.max(base + Duration::seconds(5 * ALARMS as i64));
        let e = self.enterprise(site);
        Ok(InjectedViolation {
            kind: ViolationKind::AlarmStorm,
            description: format!(
                "{ALARMS} flammable-gas alarms (levels 1 and 2) from {} within {} seconds, none cleared",
                e.name,
                5 * (ALARMS - 1)
            ),
            enterprise: truth_enterprise(e),
            violating_event_id: ids.last().cloned().unwrap_or_default(),
            event_ids: ids,
            expected_detection: format!(
                "warning: an alarm storm at {} ({ALARMS} sensor_alarm_raised within 2 minutes, none \
                 cleared): warning_raised (orange or red) addressed to emergency and fire",
                e.hazard_source.clone().unwrap_or_default()
            ),
            detector: "warning".into(),
        })
    }
}

/// How a batch lifecycle deviates from the ordinary (for injections).
#[derive(Debug, Default, Clone, Copy)]
struct Lifecycle {
    /// Producer and chemical; drawn at random when unset.
    chemical: Option<(usize, usize)>,
    /// First buyer.
    buyer: Option<usize>,
    /// Sell this fraction more than was produced.
    oversell: Option<f64>,
    /// The first sale of a highly toxic chemical has no permit.
    without_permit: bool,
    /// The first waybill names the unlicensed carrier.
    unlicensed_carrier: bool,
}

#[derive(Debug, Default)]
struct LifecycleEvents {
    producer: usize,
    batch: String,
    quantity: f64,
    sold: f64,
    all: Vec<usize>,
    sales: Vec<usize>,
    waybills: Vec<usize>,
    trips: Vec<usize>,
    buyers: Vec<usize>,
}

fn storage(
    holder: &Enterprise,
    chemical: usize,
    city: &City,
    movement: v1::StorageMovement,
    quantity: f64,
    batch: &str,
    t: DateTime<Utc>,
) -> Ev {
    Ev::new(
        Department::Emergency,
        t,
        if batch.is_empty() {
            holder.warehouse.clone()
        } else {
            batch.to_owned()
        },
        Payload::StorageRecorded(v1::StorageRecorded {
            holder: Some(enterprise_ref(holder)),
            warehouse_id: holder.warehouse.clone(),
            chemical: Some(chemical_ref(city, chemical)),
            movement: movement as i32,
            quantity: Some(tonnes(quantity)),
            batch_code: batch.to_owned(),
            recorded_at: Some(timestamp(t)),
        }),
    )
}

fn system_of(department: Department) -> &'static str {
    match department {
        Department::Miit => "industry-planning",
        Department::Psb => "hazchem-control",
        Department::Eeb => "solid-waste",
        Department::Transport => "waybill-system",
        Department::Emergency => "hazard-platform",
        Department::Samr => "market-supervision",
        Department::Approval => "licensing",
        Department::Msa => "ship-declaration",
        Department::Fire => "fire-supervision",
    }
}

fn short_name(department: Department) -> &'static str {
    match department {
        Department::Miit => "工信",
        Department::Psb => "公",
        Department::Eeb => "环",
        Department::Transport => "交",
        Department::Emergency => "应急",
        Department::Samr => "市监",
        Department::Approval => "审批",
        Department::Msa => "海事",
        Department::Fire => "消",
    }
}

fn licence_basis(kind: v1::LicenceKind) -> (&'static str, &'static str, &'static str) {
    use v1::LicenceKind as K;
    match kind {
        K::SafetyProduction => ("《安全生产许可证条例》", "第二条", "2014-07-29"),
        K::SafeUse => (REGULATION, "第二十九条", REGULATION_VERSION),
        K::Operation => (REGULATION, "第三十三条", REGULATION_VERSION),
        K::HazardousWaste => ("《危险废物经营许可证管理办法》", "第二条", "2016-02-06"),
        K::RoadTransport | K::VehicleCertificate | K::PractitionerQualification => {
            ("《道路危险货物运输管理规定》", "第十条", "2023-11-10")
        }
        K::PortOperation => ("《港口危险货物安全管理规定》", "第十条", "2019-11-28"),
        K::IndustrialProduct => (
            "《中华人民共和国工业产品生产许可证管理条例》",
            "第二条",
            "2023-07-20",
        ),
        K::Business | K::Unspecified => (
            "《中华人民共和国市场主体登记管理条例》",
            "第三条",
            "2021-07-27",
        ),
    }
}

/// Rounds to half a tonne (at least half a tonne).
fn half(value: f64) -> f64 {
    ((value * 2.0).round() / 2.0).max(0.5)
}

fn truth_enterprise(e: &Enterprise) -> TruthEnterprise {
    TruthEnterprise {
        uscc: e.uscc.as_str().to_owned(),
        name: e.name.clone(),
    }
}

/// 00:00 China Standard Time of the day `t` falls on, as an instant.
fn start_of_day(t: DateTime<Utc>) -> DateTime<Utc> {
    let cst = t + Duration::hours(8);
    let midnight = cst.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default();
    Utc.from_utc_datetime(&midnight) - Duration::hours(8)
}

fn enterprise_ref(e: &Enterprise) -> v1::EnterpriseRef {
    v1::EnterpriseRef {
        uscc: e.uscc.as_str().to_owned(),
        name: e.name.clone(),
    }
}

fn chemical_ref(city: &City, index: usize) -> v1::ChemicalRef {
    let c = city.chemical(index);
    v1::ChemicalRef {
        cas: c.cas().as_str().to_owned(),
        un_number: c.un().map(|u| u.as_str().to_owned()).unwrap_or_default(),
        name: c.name_zh().to_owned(),
    }
}

fn tonnes(value: f64) -> v1::Quantity {
    v1::Quantity {
        value,
        unit: v1::QuantityUnit::Tonne as i32,
    }
}

fn place(e: &Enterprise) -> v1::Place {
    v1::Place {
        address: e.address.clone(),
        region_code: e.region_code.clone(),
        point: Some(v1::GeoPoint {
            latitude: (e.latitude * 10_000.0).round() / 10_000.0,
            longitude: (e.longitude * 10_000.0).round() / 10_000.0,
        }),
    }
}

fn vehicle(plate: &hazchem_domain::VehiclePlate, certificate: &str) -> v1::Vehicle {
    v1::Vehicle {
        plate: plate.plate().to_owned(),
        plate_colour: plate.colour().code(),
        transport_certificate: certificate.to_owned(),
    }
}

fn person(p: &crate::city::Person) -> v1::Person {
    v1::Person {
        name: p.name.clone(),
        certificate_number: p.certificate.clone(),
    }
}
