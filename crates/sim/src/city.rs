//! The simulated city: enterprises with valid USCCs and their roles and licences, the chemicals they
//! handle (from the catalogue), carriers' vehicles and crews, ships, ports and each department's
//! inspectors. Everything follows from the seed ([`City::generate`]: a ChaCha20 generator), so one seed is
//! one city on every machine.

use std::collections::BTreeSet;

use hazchem_domain::{Catalogue, Chemical, Department, ImoNumber, PlateColour, Uscc, VehiclePlate};
use hazchem_proto::v1::LicenceKind;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How big the city is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CityConfig {
    /// Enterprises (at least [`CityConfig::MIN_ENTERPRISES`]): every role is represented.
    pub enterprises: usize,
    /// Tractor-trailer combinations per licensed carrier.
    pub vehicles_per_carrier: usize,
    /// Ships calling at the city's ports.
    pub ships: usize,
    /// Law-enforcement officers per inspecting department (at least 2: an inspection needs two).
    pub inspectors_per_department: usize,
    /// Sensors per monitored site (major hazard source).
    pub sensors_per_site: usize,
}

impl Default for CityConfig {
    fn default() -> Self {
        CityConfig {
            enterprises: 40,
            vehicles_per_carrier: 3,
            ships: 6,
            inspectors_per_department: 6,
            sensors_per_site: 12,
        }
    }
}

impl CityConfig {
    /// The fewest enterprises a city can have: one of each role, one unlicensed carrier, and room
    /// for buyers.
    pub const MIN_ENTERPRISES: usize = 12;

    /// Checks the numbers.
    pub fn validate(&self) -> Result<()> {
        if self.enterprises < Self::MIN_ENTERPRISES {
            return Err(Error::Config(format!(
                "a city needs at least {} enterprises (one of every role), got {}",
                Self::MIN_ENTERPRISES,
                self.enterprises
            )));
        }
        if self.enterprises > 100_000 {
            return Err(Error::Config(format!(
                "at most 100000 enterprises, got {}",
                self.enterprises
            )));
        }
        if !(1..=50).contains(&self.vehicles_per_carrier) {
            return Err(Error::Config(
                "vehicles per carrier: between 1 and 50".into(),
            ));
        }
        if !(1..=1000).contains(&self.ships) {
            return Err(Error::Config("ships: between 1 and 1000".into()));
        }
        if !(2..=200).contains(&self.inspectors_per_department) {
            return Err(Error::Config(
                "inspectors per department: between 2 and 200 (an inspection needs two)".into(),
            ));
        }
        if !(1..=1000).contains(&self.sensors_per_site) {
            return Err(Error::Config("sensors per site: between 1 and 1000".into()));
        }
        Ok(())
    }
}

/// What an enterprise does in the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Produces chemicals (safety production licence, emergency).
    Producer,
    /// Runs a tank farm or warehouse (operation licence, emergency).
    Storage,
    /// Trades chemicals (operation licence, emergency).
    Trader,
    /// Carries dangerous goods by road (road transport licence, transport).
    Carrier,
    /// Uses chemicals in its processes (safe-use licence, emergency).
    User,
    /// Collects and disposes of hazardous waste (hazardous waste licence, eeb).
    WasteHandler,
    /// Operates a dangerous-goods port terminal (port operation licence, transport).
    Port,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Producer,
        Role::Storage,
        Role::Trader,
        Role::Carrier,
        Role::User,
        Role::WasteHandler,
        Role::Port,
    ];

    fn weight(self) -> u32 {
        match self {
            Role::Producer => 20,
            Role::Storage => 10,
            Role::Trader => 18,
            Role::Carrier => 15,
            Role::User => 27,
            Role::WasteHandler => 5,
            Role::Port => 5,
        }
    }

    fn name_suffix(self) -> &'static [&'static str] {
        match self {
            Role::Producer => &["化工有限公司", "精细化工有限公司", "化学工业有限公司"],
            Role::Storage => &["石化仓储有限公司", "化工储运有限公司"],
            Role::Trader => &["化工贸易有限公司", "化学品经营有限公司"],
            Role::Carrier => &["危险货物运输有限公司", "化工物流有限公司"],
            Role::User => &[
                "新材料科技有限公司",
                "表面处理有限公司",
                "制药有限公司",
                "电子材料有限公司",
            ],
            Role::WasteHandler => &["环保科技有限公司", "固废处置有限公司"],
            Role::Port => &["港务有限公司", "港口储运有限公司"],
        }
    }
}

/// A licence an enterprise holds (issued in the setup phase of the traffic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenceGrant {
    pub number: String,
    #[serde(with = "licence_kind_serde")]
    pub kind: LicenceKind,
    /// The department whose duty the licence is.
    pub competent: Department,
    /// Whether 行政审批 decides and issues it on the competent department's behalf.
    pub via_approval: bool,
    /// Chemicals it covers (indices into [`City::chemicals`]).
    pub chemicals: Vec<usize>,
    /// For a vehicle certificate: the vehicle (index into [`City::vehicles`]).
    pub vehicle: Option<usize>,
    /// For a practitioner qualification: the person (index into [`City::crew`]).
    pub practitioner: Option<usize>,
}

mod licence_kind_serde {
    use hazchem_proto::v1::LicenceKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(kind: &LicenceKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LicenceKind, D::Error> {
        let name = String::deserialize(d)?;
        LicenceKind::from_str_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown licence kind {name}")))
    }
}

/// A sensor at a monitored site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    pub id: String,
    /// `hazchem.v1.SensorKind` value.
    pub kind: i32,
    /// The normal reading (readings wander around it).
    pub normal: f64,
}

/// An enterprise of the city.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enterprise {
    pub uscc: Uscc,
    pub name: String,
    /// 行政区划代码 of its district.
    pub region_code: String,
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
    pub roles: Vec<Role>,
    /// Chemicals it produces, stores, trades or uses (indices into [`City::chemicals`]).
    pub chemicals: Vec<usize>,
    pub licences: Vec<LicenceGrant>,
    /// Its warehouse or tank farm.
    pub warehouse: String,
    /// Its major hazard source, if it has one (then it is monitored by sensors).
    pub hazard_source: Option<String>,
    pub sensors: Vec<Sensor>,
    /// A carrier that holds no road transport licence: only the injected violation uses it.
    pub unlicensed: bool,
    /// Vehicles it operates (indices into [`City::vehicles`]).
    pub vehicles: Vec<usize>,
}

impl Enterprise {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The number of its licence of `kind`, if it holds one.
    pub fn licence(&self, kind: LicenceKind) -> Option<&LicenceGrant> {
        self.licences.iter().find(|l| l.kind == kind)
    }
}

/// A road vehicle combination: tractor and trailer with yellow plates (colour 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vehicle {
    pub tractor: VehiclePlate,
    pub trailer: VehiclePlate,
    pub tractor_certificate: String,
    pub trailer_certificate: String,
    /// The operating carrier (index into [`City::enterprises`]).
    pub carrier: usize,
    /// Driver and escort (indices into [`City::crew`]).
    pub driver: usize,
    pub escort: usize,
}

/// A person with a qualification or an enforcement badge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub certificate: String,
}

/// A ship calling at the city's ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ship {
    pub imo: ImoNumber,
    pub name: String,
    pub mmsi: String,
    /// The enterprise that declares its cargo (a port operator or a trader).
    pub declarant: usize,
}

/// The generated city.
#[derive(Debug, Clone)]
pub struct City {
    pub seed: u64,
    pub config: CityConfig,
    pub catalogue: Catalogue,
    pub enterprises: Vec<Enterprise>,
    pub vehicles: Vec<Vehicle>,
    /// Drivers and escorts.
    pub crew: Vec<Person>,
    pub ships: Vec<Ship>,
    /// Ports (name) and their terminals (enterprise index).
    pub ports: Vec<(String, usize)>,
    /// Officers per department, in [`Department::ALL`] order.
    pub inspectors: Vec<(Department, Vec<Person>)>,
}

/// Nantong's districts: code, name, a point near its chemical park, the park.
pub const DISTRICTS: [(&str, &str, f64, f64, &str); 7] = [
    (
        "320602",
        "崇川区",
        32.0105,
        120.8942,
        "南通经济技术开发区化工园区",
    ),
    (
        "320612",
        "通州区",
        32.0648,
        121.0731,
        "通州湾示范区化工新材料产业园",
    ),
    ("320614", "海门区", 31.9672, 121.0386, "海门临江新区"),
    ("320623", "如东县", 32.5531, 121.0412, "洋口化学工业园"),
    ("320681", "启东市", 31.8103, 121.6575, "启东滨江精细化工园"),
    (
        "320682",
        "如皋市",
        32.1342,
        120.5132,
        "如皋港化工新材料产业园",
    ),
    ("320685", "海安市", 32.5335, 120.4680, "海安经济技术开发区"),
];

const BRANDS: [&str; 40] = [
    "江海", "恒信", "安达", "金泽", "洋口", "华盛", "天成", "瑞丰", "宏达", "永安", "正泰", "鑫源",
    "海晨", "国泰", "嘉诚", "振华", "通达", "龙腾", "东方", "新阳", "明珠", "盛世", "长江", "富华",
    "中联", "万邦", "德润", "汇通", "联创", "海宏", "凯盛", "星辰", "丰源", "润华", "金陵", "启航",
    "紫琅", "崇信", "濠河", "狼山",
];

const SURNAMES: [&str; 24] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋",
];

const GIVEN: [&str; 30] = [
    "建国", "晓燕", "海峰", "立新", "海燕", "志强", "秀英", "文杰", "丽华", "明", "伟", "敏", "静",
    "磊", "洋", "勇", "军", "杰", "娟", "涛", "超", "霞", "平", "刚", "桂英", "永生", "春梅",
    "国平", "红梅", "新民",
];

const STREETS: [&str; 12] = [
    "江海路",
    "黄海三路",
    "通海大道",
    "临江大道",
    "化工园路",
    "滨江路",
    "港城路",
    "新材料大道",
    "纬二路",
    "经五路",
    "海港大道",
    "青年东路",
];

/// The USCC alphabet without the characters organisation codes avoid (I O S V Z are not in it).
const ORG_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Plate serial characters: digits and letters other than I and O.
const PLATE_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";

impl City {
    /// Generates the city for `seed`: the same seed and configuration give the same city.
    pub fn generate(seed: u64, config: CityConfig) -> Result<City> {
        config.validate()?;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let catalogue = Catalogue::sample();
        let chemicals: Vec<&Chemical> = catalogue.chemicals().iter().collect();
        let toxic: Vec<usize> = index_where(&chemicals, |c| c.is_on("highly_toxic"));
        let precursor: Vec<usize> = index_where(&chemicals, |c| {
            c.is_on("explosive_precursor") && !c.is_on("highly_toxic")
        });
        let ordinary: Vec<usize> = index_where(&chemicals, |c| {
            !c.is_on("highly_toxic") && !c.is_on("explosive_precursor")
        });
        let transportable: Vec<usize> = index_where(&chemicals, |c| c.un().is_some());
        if toxic.is_empty() || precursor.is_empty() || ordinary.is_empty() {
            return Err(Error::Config(
                "the catalogue needs highly toxic, explosive-precursor and ordinary chemicals"
                    .into(),
            ));
        }

        // Roles: the first enterprises take one role each so every role exists (the second carrier
        // is the unlicensed one); the rest are drawn by weight.
        let fixed = [
            Role::Producer,
            Role::Producer,
            Role::Storage,
            Role::Trader,
            Role::Carrier,
            Role::Carrier,
            Role::User,
            Role::User,
            Role::WasteHandler,
            Role::Port,
            Role::Trader,
            Role::Producer,
        ];
        let total_weight: u32 = Role::ALL.iter().map(|r| r.weight()).sum();
        let mut usccs = BTreeSet::new();
        let mut names = BTreeSet::new();
        let mut enterprises = Vec::with_capacity(config.enterprises);
        for i in 0..config.enterprises {
            let role = if i < fixed.len() {
                fixed[i]
            } else {
                let mut pick = rng.gen_range(0..total_weight);
                let mut chosen = Role::User;
                for r in Role::ALL {
                    if pick < r.weight() {
                        chosen = r;
                        break;
                    }
                    pick -= r.weight();
                }
                chosen
            };
            let mut roles = vec![role];
            // Producers often store, traders often store too.
            if matches!(role, Role::Producer | Role::Trader) && rng.gen_bool(0.3) {
                roles.push(Role::Storage);
            }
            let district = DISTRICTS[rng.gen_range(0..DISTRICTS.len())];
            let uscc = loop {
                let mut first17 = String::from("91");
                first17.push_str(district.0);
                first17.push_str("MA");
                for _ in 0..7 {
                    first17.push(char::from(ORG_CHARS[rng.gen_range(0..ORG_CHARS.len())]));
                }
                let uscc = Uscc::with_check(&first17)
                    .map_err(|e| Error::Config(format!("generated USCC: {e}")))?;
                if usccs.insert(uscc.clone()) {
                    break uscc;
                }
            };
            let name = loop {
                let brand = BRANDS[rng.gen_range(0..BRANDS.len())];
                let suffixes = role.name_suffix();
                let suffix = suffixes[rng.gen_range(0..suffixes.len())];
                let candidate = format!("南通{brand}{suffix}");
                if names.insert(candidate.clone()) {
                    break candidate;
                }
                let candidate =
                    format!("南通{}{brand}{suffix}", &district.1[..district.1.len() - 3]);
                if names.insert(candidate.clone()) {
                    break candidate;
                }
                let candidate = format!("南通{brand}{}{suffix}", i);
                if names.insert(candidate.clone()) {
                    break candidate;
                }
            };
            let address = format!(
                "江苏省南通市{}{}{}{}号",
                district.1,
                district.4,
                STREETS[rng.gen_range(0..STREETS.len())],
                rng.gen_range(1..300)
            );
            let mut handled: Vec<usize> = Vec::new();
            let draw = |rng: &mut ChaCha20Rng, pool: &[usize], n: usize| -> Vec<usize> {
                pool.choose_multiple(rng, n.min(pool.len()))
                    .copied()
                    .collect()
            };
            match role {
                // The first producer makes a highly toxic chemical, the second an explosive precursor,
                // so every run can show permits and filings.
                Role::Producer if i == 0 => {
                    handled.push(toxic[rng.gen_range(0..toxic.len())]);
                    handled.extend(draw(&mut rng, &ordinary, 1));
                }
                Role::Producer if i == 1 => {
                    handled.push(precursor[rng.gen_range(0..precursor.len())]);
                    handled.extend(draw(&mut rng, &ordinary, 1));
                }
                Role::Producer => {
                    let n = rng.gen_range(1..=3);
                    handled.extend(draw(&mut rng, &transportable, n));
                }
                Role::Storage | Role::Trader | Role::User | Role::Port => {
                    let n = rng.gen_range(2..=4);
                    handled.extend(draw(&mut rng, &transportable, n));
                }
                Role::Carrier | Role::WasteHandler => {}
            }
            handled.sort_unstable();
            handled.dedup();
            let code = uscc.as_str()[10..17].to_owned();
            let code = code.as_str();
            let monitored = roles
                .iter()
                .any(|r| matches!(r, Role::Producer | Role::Storage | Role::Port))
                || (role == Role::User && rng.gen_bool(0.3));
            let hazard_source = monitored.then(|| format!("MHS-{}-{code}", district.0));
            let sensors = if monitored {
                (0..config.sensors_per_site)
                    .map(|n| sensor(&mut rng, code, n))
                    .collect()
            } else {
                Vec::new()
            };
            enterprises.push(Enterprise {
                uscc,
                name,
                region_code: district.0.to_owned(),
                address,
                latitude: district.2 + rng.gen_range(-0.02..0.02),
                longitude: district.3 + rng.gen_range(-0.02..0.02),
                roles,
                chemicals: handled,
                licences: Vec::new(),
                warehouse: format!("WH-{code}-{:02}", rng.gen_range(1..20)),
                hazard_source,
                sensors,
                unlicensed: i == 5,
                vehicles: Vec::new(),
            });
        }

        // Carriers' vehicles and crews.
        let mut plates = BTreeSet::new();
        let mut vehicles = Vec::new();
        let mut crew = Vec::new();
        for (index, enterprise) in enterprises.iter_mut().enumerate() {
            if !enterprise.has(Role::Carrier) {
                continue;
            }
            for _ in 0..config.vehicles_per_carrier {
                let (tractor, trailer) = loop {
                    let letter = char::from(b"FAB"[rng.gen_range(0..3)]);
                    let serial: String = (0..4)
                        .map(|_| char::from(PLATE_CHARS[rng.gen_range(0..PLATE_CHARS.len())]))
                        .collect();
                    let last = char::from(b'0' + rng.gen_range(0..10));
                    let tractor = format!("苏{letter}{serial}{last}");
                    let trailer = format!("苏{letter}{serial}挂");
                    if plates.insert(tractor.clone()) {
                        break (tractor, trailer);
                    }
                };
                let tractor = VehiclePlate::new(&tractor, PlateColour::Yellow)
                    .map_err(|e| Error::Config(format!("generated plate: {e}")))?;
                let trailer = VehiclePlate::new(&trailer, PlateColour::Yellow)
                    .map_err(|e| Error::Config(format!("generated plate: {e}")))?;
                let n = vehicles.len();
                let driver = crew.len();
                crew.push(Person {
                    name: person_name(&mut rng),
                    certificate: format!("JS3206-DGJS-{}-{:06}", 2015 + n % 10, 1000 + 2 * n),
                });
                crew.push(Person {
                    name: person_name(&mut rng),
                    certificate: format!("JS3206-DGYY-{}-{:06}", 2015 + n % 10, 1001 + 2 * n),
                });
                enterprise.vehicles.push(n);
                vehicles.push(Vehicle {
                    tractor,
                    trailer,
                    tractor_certificate: format!("苏交运管通字320600{:06}号", 10_000 + 2 * n),
                    trailer_certificate: format!("苏交运管通字320600{:06}号", 10_001 + 2 * n),
                    carrier: index,
                    driver,
                    escort: driver + 1,
                });
            }
        }

        // Ports and ships.
        let ports: Vec<(String, usize)> = enterprises
            .iter()
            .enumerate()
            .filter(|(_, e)| e.has(Role::Port))
            .map(|(i, e)| {
                let district = DISTRICTS
                    .iter()
                    .find(|d| d.0 == e.region_code)
                    .map_or("如东县", |d| d.1);
                (format!("南通港{}港区", &district[..district.len() - 3]), i)
            })
            .collect();
        let mut imos = BTreeSet::new();
        let ships = (0..config.ships)
            .map(|n| {
                let imo = loop {
                    let imo = imo_number(&mut rng);
                    if imos.insert(imo.clone()) {
                        break imo;
                    }
                };
                let (_, terminal) = ports[n % ports.len()];
                Ok(Ship {
                    imo,
                    name: format!("{}化{}", BRANDS[rng.gen_range(0..BRANDS.len())], n + 1),
                    mmsi: format!("41{:07}", rng.gen_range(0..10_000_000u32)),
                    declarant: terminal,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        // Inspectors.
        let inspectors = Department::ALL
            .into_iter()
            .map(|d| {
                let people = (0..config.inspectors_per_department)
                    .map(|n| Person {
                        name: person_name(&mut rng),
                        certificate: format!(
                            "JS-ZF-{}-3206{:05}",
                            d.code().to_uppercase(),
                            100 + n
                        ),
                    })
                    .collect();
                (d, people)
            })
            .collect();

        let mut city = City {
            seed,
            config,
            catalogue,
            enterprises,
            vehicles,
            crew,
            ships,
            ports,
            inspectors,
        };
        city.assign_licences(&mut rng);
        Ok(city)
    }

    /// Every enterprise's licences: a business licence (samr) for all, and the ones its roles need.
    fn assign_licences(&mut self, rng: &mut ChaCha20Rng) {
        let mut serial = 0usize;
        let mut next = || {
            serial += 1;
            serial
        };
        for index in 0..self.enterprises.len() {
            let e = &self.enterprises[index];
            let code = e.uscc.as_str()[8..17].to_owned();
            let chemicals = e.chemicals.clone();
            let mut licences = vec![LicenceGrant {
                number: format!("{}{:06}", e.uscc.as_str(), next()),
                kind: LicenceKind::Business,
                competent: Department::Samr,
                via_approval: false,
                chemicals: Vec::new(),
                vehicle: None,
                practitioner: None,
            }];
            let roles = e.roles.clone();
            for role in roles {
                let via_approval = rng.gen_bool(0.3);
                let grant = |kind, competent, number: String, chemicals: Vec<usize>| LicenceGrant {
                    number,
                    kind,
                    competent,
                    via_approval,
                    chemicals,
                    vehicle: None,
                    practitioner: None,
                };
                match role {
                    Role::Producer => {
                        licences.push(grant(
                            LicenceKind::SafetyProduction,
                            Department::Emergency,
                            format!("(苏)WH安许证字[F{:05}]", next()),
                            chemicals.clone(),
                        ));
                        if rng.gen_bool(0.5) {
                            licences.push(LicenceGrant {
                                via_approval: false,
                                ..grant(
                                    LicenceKind::IndustrialProduct,
                                    Department::Samr,
                                    format!("(苏)XK13-014-{:05}", next()),
                                    chemicals.clone(),
                                )
                            });
                        }
                    }
                    Role::Storage | Role::Trader => {
                        if licences.iter().all(|l| l.kind != LicenceKind::Operation) {
                            licences.push(grant(
                                LicenceKind::Operation,
                                Department::Emergency,
                                format!("苏通危化经字[{:05}]", next()),
                                chemicals.clone(),
                            ));
                        }
                    }
                    Role::User => licences.push(grant(
                        LicenceKind::SafeUse,
                        Department::Emergency,
                        format!("苏通危化使字[{:05}]", next()),
                        chemicals.clone(),
                    )),
                    Role::Carrier if !self.enterprises[index].unlicensed => {
                        licences.push(LicenceGrant {
                            via_approval: false,
                            ..grant(
                                LicenceKind::RoadTransport,
                                Department::Transport,
                                format!("苏交运管许可通字320600{:06}号", next()),
                                Vec::new(),
                            )
                        });
                        for &v in &self.enterprises[index].vehicles {
                            licences.push(LicenceGrant {
                                number: self.vehicles[v].tractor_certificate.clone(),
                                kind: LicenceKind::VehicleCertificate,
                                competent: Department::Transport,
                                via_approval: false,
                                chemicals: Vec::new(),
                                vehicle: Some(v),
                                practitioner: None,
                            });
                            licences.push(LicenceGrant {
                                number: self.crew[self.vehicles[v].driver].certificate.clone(),
                                kind: LicenceKind::PractitionerQualification,
                                competent: Department::Transport,
                                via_approval: false,
                                chemicals: Vec::new(),
                                vehicle: None,
                                practitioner: Some(self.vehicles[v].driver),
                            });
                        }
                    }
                    Role::Carrier => {}
                    Role::WasteHandler => licences.push(grant(
                        LicenceKind::HazardousWaste,
                        Department::Eeb,
                        format!("JSNT{code}OOD{:03}", next() % 1000),
                        Vec::new(),
                    )),
                    Role::Port => licences.push(LicenceGrant {
                        via_approval: false,
                        ..grant(
                            LicenceKind::PortOperation,
                            Department::Transport,
                            format!("(苏通)港经证({:04})号", next()),
                            chemicals.clone(),
                        )
                    }),
                }
            }
            self.enterprises[index].licences = licences;
        }
    }

    /// Enterprises with `role` (indices), in order.
    pub fn with_role(&self, role: Role) -> Vec<usize> {
        self.enterprises
            .iter()
            .enumerate()
            .filter(|(_, e)| e.has(role))
            .map(|(i, _)| i)
            .collect()
    }

    /// Licensed carriers that operate at least one vehicle.
    pub fn licensed_carriers(&self) -> Vec<usize> {
        self.with_role(Role::Carrier)
            .into_iter()
            .filter(|&i| {
                !self.enterprises[i].unlicensed && !self.enterprises[i].vehicles.is_empty()
            })
            .collect()
    }

    /// The carrier without a road transport licence (the city always has one).
    pub fn unlicensed_carrier(&self) -> Option<usize> {
        self.enterprises.iter().position(|e| e.unlicensed)
    }

    /// A chemical by index.
    pub fn chemical(&self, index: usize) -> &Chemical {
        &self.catalogue.chemicals()[index]
    }

    /// The inspectors of a department.
    pub fn inspectors_of(&self, department: Department) -> &[Person] {
        self.inspectors
            .iter()
            .find(|(d, _)| *d == department)
            .map_or(&[], |(_, p)| p.as_slice())
    }
}

fn index_where(chemicals: &[&Chemical], keep: impl Fn(&Chemical) -> bool) -> Vec<usize> {
    chemicals
        .iter()
        .enumerate()
        .filter(|(_, c)| keep(c))
        .map(|(i, _)| i)
        .collect()
}

fn person_name(rng: &mut ChaCha20Rng) -> String {
    format!(
        "{}{}",
        SURNAMES[rng.gen_range(0..SURNAMES.len())],
        GIVEN[rng.gen_range(0..GIVEN.len())]
    )
}

fn sensor(rng: &mut ChaCha20Rng, site: &str, n: usize) -> Sensor {
    use hazchem_proto::v1::SensorKind;
    let (prefix, kind, normal) = match n % 6 {
        0 => ("GT", SensorKind::FlammableGas, rng.gen_range(0.0..3.0)),
        1 => ("TX", SensorKind::ToxicGas, rng.gen_range(0.0..15.0)),
        2 => ("TT", SensorKind::Temperature, rng.gen_range(10.0..40.0)),
        3 => ("PT", SensorKind::Pressure, rng.gen_range(0.1..1.6)),
        4 => ("LT", SensorKind::LiquidLevel, rng.gen_range(30.0..80.0)),
        _ => ("OX", SensorKind::Oxygen, 20.9),
    };
    Sensor {
        id: format!("{prefix}-{site}-{n:03}"),
        kind: kind as i32,
        normal,
    }
}

/// A valid IMO number: six digits and the check digit (Σ dᵢ·(7..2) mod 10).
pub fn imo_number(rng: &mut impl Rng) -> ImoNumber {
    let digits: Vec<u32> = std::iter::once(rng.gen_range(8..10))
        .chain((0..5).map(|_| rng.gen_range(0..10)))
        .collect();
    let check = digits
        .iter()
        .zip(ImoNumber::WEIGHTS)
        .map(|(d, w)| d * w)
        .sum::<u32>()
        % 10;
    let text: String = digits
        .iter()
        .chain(std::iter::once(&check))
        .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
        .collect();
    ImoNumber::parse(&text).expect("the check digit is computed by the published algorithm")
}
