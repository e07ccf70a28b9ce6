//! The bus's services: one table, [`SERVICES`], that every list of services derives from.
//!
//! A row is one service principal, `hazchem://service/<name>`. Its name is also its NATS user, the
//! publisher token of its events (`hazchem.ev.<name>.<type>.<id>`), its key in the policy's `[services]`
//! table and the stem of its files in the development PKI (`services/<name>.pem`). From the table:
//!
//! - the development PKI issues a client certificate to every row ([`crate::DevPki::principals`]);
//! - `hazchem serve <service>` offers every row with a [`port`](Service::port), and `hazchem dev` runs
//!   the rows marked [`dev`](Service::dev), each on `127.0.0.1:<port>` (a `--<name>-listen` flag each,
//!   the gateway's being `--listen`), and lists them in its banner;
//! - each service's configuration listens on [`default_listen`] unless told otherwise, and the client
//!   commands connect to [`Service::default_endpoint`];
//! - `hazchem deploy nats` gives every row marked [`nats_user`](Service::nats_user) a NATS user;
//! - the policy's `[services]` table (`deploy/policy.toml`) names exactly the rows marked
//!   [`publishes`](Service::publishes) (a test in `hazchem-admission` fails when they disagree).
//!
//! Adding a service is one row here, plus its crate, which implements `hazchem_kit::Launch` (its
//! configuration section, how `hazchem dev` configures it, how it is opened and run), named once in the
//! `hazchem` binary's list of launchers (`services/hazchem/src/launch.rs`).
//!
//! Not in the table, because they are not services: the departments ([`hazchem_domain::Department`]),
//! auditors ([`crate::Principal::Auditor`]; the development PKI's is [`crate::dev::DEV_AUDITOR`]) and the
//! NATS admin user `gateway-admin` (`hazchem_bus::permissions::ADMIN_USER`), which the gateway uses to
//! manage the stream.

use std::net::{Ipv4Addr, SocketAddr};

use crate::identity::Principal;

/// One service of the bus. See the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The principal `hazchem://service/<name>`, its NATS user and its events' publisher token.
    pub name: &'static str,
    /// What it is, in one line (the help of `hazchem serve <service>`).
    pub about: &'static str,
    /// The default port of its gRPC server (on `127.0.0.1`); `None`: the `hazchem` binary runs no server
    /// for it (not built yet, or a client only).
    pub port: Option<u16>,
    /// Whether `hazchem dev` runs it (only a row with a [`port`](Service::port)).
    pub dev: bool,
    /// Whether it has a NATS user of its own: it reads every event, looks the stream and the cursor
    /// bucket up, and publishes the event types the policy's `[services]` table gives it. (The gateway
    /// has none: it publishes and reads as each department, and manages the stream as `gateway-admin`.)
    pub nats_user: bool,
    /// Whether it publishes events of its own: the policy's `[services]` table names it (and only the
    /// rows marked so).
    pub publishes: bool,
    /// What `hazchem dev`'s banner says of it after its address (`None`: its [`about`](Service::about)).
    /// `{exe}` is the binary, `{data}` the data directory, `{addr}` the service's address, and
    /// `{endpoint}` and `{dir}` the ` --endpoint <url>` and ` --data-dir <dir>` a client command needs
    /// when they are not the defaults (else nothing).
    pub banner: Option<&'static str>,
}

/// Every service, in the order the development PKI issues their certificates.
pub const SERVICES: &[Service] = &[
    Service {
        name: "gateway",
        about: "The gateway: departments publish and subscribe over gRPC with mTLS; it admits events by the \
                policy and appends them to the stream",
        port: Some(7443),
        dev: true,
        nats_user: false,
        publishes: false,
        banner: Some("{addr}; mTLS, development CA in {data}/pki"),
    },
    Service {
        name: "ledger",
        about: "The audit ledger: Merkle log, signed checkpoints, proofs, replay",
        port: Some(7444),
        dev: true,
        nats_user: true,
        publishes: true,
        banner: Some("audit service; checkpoint key {data}/pki/ledger.pub"),
    },
    Service {
        name: "credit",
        about: "Credit constraint: the registry of sanction listings, Check/GetHistory/ListListings, the \
                review of credit decisions, conflict warnings",
        port: Some(7445),
        dev: true,
        nats_user: true,
        publishes: true,
        banner: Some("credit registry: {exe} credit check <uscc> --as emergency{endpoint}{dir}"),
    },
    Service {
        name: "enforcement",
        about: "Joint enforcement: tasks, reproducible draws of targets and inspectors, transfers to public \
                security, deadlines and escalation",
        port: Some(7446),
        dev: true,
        nats_user: true,
        publishes: true,
        banner: Some("joint tasks: {exe} enforcement list --as emergency{endpoint}{dir}"),
    },
    Service {
        name: "warning",
        about: "Early warning: rules over the stream raise warnings at four levels; addressed departments \
                acknowledge and close them; unacknowledged warnings escalate",
        port: Some(7447),
        dev: true,
        nats_user: true,
        publishes: true,
        banner: Some("warnings: {exe} warnings list --as emergency{endpoint}{dir}"),
    },
    Service {
        name: "witness",
        about: "A witness a department runs itself: cosigns the ledger's checkpoints (C2SP tlog-witness, \
                HTTP POST /add-checkpoint) only when they are consistent with the last one it cosigned \
                (`hazchem dev` runs one per department on ports 7450-7458)",
        port: Some(7448),
        dev: false,
        nats_user: false,
        publishes: false,
        banner: None,
    },
    Service {
        name: "lifecycle",
        about: "Lifecycle: trails and balances of chemicals across enterprises (not built yet: its \
                principal, certificate and NATS user exist)",
        port: None,
        dev: false,
        nats_user: true,
        publishes: false,
        banner: None,
    },
    Service {
        name: "simulator",
        about: "The identity reserved for a simulated city's own tooling (a client: no server, no NATS \
                user)",
        port: None,
        dev: false,
        nats_user: false,
        publishes: false,
        banner: None,
    },
    Service {
        name: "console",
        about: "The identity reserved for the coordinators' console (a client: no server, no NATS user)",
        port: None,
        dev: false,
        nats_user: false,
        publishes: false,
        banner: None,
    },
];

/// The row named `name`.
#[must_use]
pub fn get(name: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|s| s.name == name)
}

/// The rows with a server (a [`port`](Service::port)): the choices of `hazchem serve`.
pub fn servers() -> impl Iterator<Item = &'static Service> {
    SERVICES.iter().filter(|s| s.port.is_some())
}

/// The rows `hazchem dev` runs.
pub fn dev() -> impl Iterator<Item = &'static Service> {
    SERVICES.iter().filter(|s| s.dev)
}

/// Where the service `name` listens unless configured otherwise: `127.0.0.1:<port>`.
///
/// # Panics
/// If the table has no row `name` with a port: the caller is a server the table does not list.
#[must_use]
pub fn default_listen(name: &str) -> SocketAddr {
    get(name)
        .and_then(Service::default_listen)
        .unwrap_or_else(|| {
            panic!("no row `{name}` with a port in the service table (hazchem_pki::services)")
        })
}

/// Where the client commands reach the service `name` unless told otherwise: `https://localhost:<port>`.
///
/// # Panics
/// If the table has no row `name` with a port.
#[must_use]
pub fn default_endpoint(name: &str) -> String {
    get(name)
        .and_then(Service::default_endpoint)
        .unwrap_or_else(|| {
            panic!("no row `{name}` with a port in the service table (hazchem_pki::services)")
        })
}

impl Service {
    /// Its principal, `hazchem://service/<name>`.
    #[must_use]
    pub fn principal(&self) -> Principal {
        Principal::Service(self.name.to_owned())
    }

    /// `127.0.0.1:<port>`, if it has a server.
    #[must_use]
    pub fn default_listen(&self) -> Option<SocketAddr> {
        self.port
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// `https://localhost:<port>` (a name the development server certificate carries), if it has a
    /// server: where the client commands connect by default.
    #[must_use]
    pub fn default_endpoint(&self) -> Option<String> {
        self.port.map(|port| format!("https://localhost:{port}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use hazchem_domain::Department;

    use super::*;

    #[test]
    fn names_are_distinct_valid_service_principals_and_not_department_codes() {
        let mut seen = BTreeSet::new();
        for service in SERVICES {
            assert!(seen.insert(service.name), "{} twice", service.name);
            assert_eq!(
                Principal::service(service.name).unwrap(),
                service.principal()
            );
            // A NATS subject token and a NATS user name too.
            assert!(
                service
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}",
                service.name
            );
            assert!(
                Department::ALL.iter().all(|d| d.code() != service.name),
                "{} is a department code",
                service.name
            );
            assert!(!service.about.is_empty());
            assert_eq!(get(service.name), Some(service));
        }
        assert_eq!(get("nobody"), None);
    }

    #[test]
    fn rows_are_consistent() {
        let mut ports = BTreeSet::new();
        for service in SERVICES {
            if let Some(port) = service.port {
                assert!(ports.insert(port), "port {port} twice");
                assert_eq!(
                    default_listen(service.name),
                    SocketAddr::from(([127, 0, 0, 1], port))
                );
                assert_eq!(
                    default_endpoint(service.name),
                    format!("https://localhost:{port}")
                );
            }
            assert!(
                !service.dev || service.port.is_some(),
                "{}: `hazchem dev` runs only servers",
                service.name
            );
            assert!(
                !service.publishes || service.nats_user,
                "{}: a service that publishes needs its own NATS user",
                service.name
            );
        }
    }

    #[test]
    #[should_panic(expected = "no row `nobody` with a port")]
    fn a_name_without_a_server_has_no_default_address() {
        let _ = default_listen("nobody");
    }
}
