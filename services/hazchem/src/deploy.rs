//! `hazchem deploy nats`: the NATS server configuration, generated from the publish and read policy.
//!
//! The output directory (by default `deploy/nats/`) gets:
//!
//! | file | what | committed |
//! | --- | --- | --- |
//! | `auth.conf` | `authorization { users: [...] }`: one nkey user per department, per service and for the admin ([`ADMIN_USER`]), each with the publish and subscribe `allow` lists of [`hazchem_bus::permissions`], the event subjects taken from the policy; public keys are the variables `$NKEY_<USER>` | yes: derived from the policy only, checked for drift by a test |
//! | `nats-1.conf` … `nats-3.conf` | a three-node JetStream cluster (replicas 3), `sync_interval: always` | yes |
//! | `nats-dev.conf` | one node on localhost for development | yes |
//! | `.gitignore` | keeps `nkeys.conf` out of the repository | yes |
//! | `nkeys.conf` | `NKEY_<USER>: "U..."`, the public keys (with `--secrets`) | no: installation-specific |
//!
//! and, with `--secrets DIR`, `DIR/<user>.nk` holds each user's nkey seed (mode 0600, in a 0700
//! directory). Existing seeds are kept, so regenerating after a policy change does not rotate keys;
//! seeds are never printed or logged. Without `--secrets` only the policy-derived files are written.
//!
//! The package builds this module as a library too (`hazchem_deploy`), so the integration tests can
//! regenerate the configuration from `deploy/policy.toml` and compare it with the committed files.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use hazchem_admission::{Policy, event_type_tokens};
use hazchem_bus::permissions::{ADMIN_USER, Names, Permissions, ReadScope};
use hazchem_domain::Department;
use hazchem_pki::Principal;

/// The file holding the public keys, beside `auth.conf`.
pub const NKEYS_FILE: &str = "nkeys.conf";

/// Where the cluster nodes keep their JetStream store.
pub const CLUSTER_STORE_DIR: &str = "/var/lib/hazchem/nats";

/// What kind of user a [`User`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A department (the gateway publishes and reads as it).
    Department,
    /// One of the bus's services.
    Service,
    /// The admin: creates and updates the stream and the cursor bucket.
    Admin,
}

/// One NATS user of the generated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user's name: a department code, a service name, or [`ADMIN_USER`].
    pub name: String,
    /// What it is.
    pub role: Role,
    /// What it may publish and subscribe to.
    pub permissions: Permissions,
}

impl User {
    /// The configuration variable holding its public key: `NKEY_<NAME>` (upper case, `-` → `_`).
    pub fn key_variable(&self) -> String {
        key_variable(&self.name)
    }
}

/// The configuration variable holding `user`'s public key.
pub fn key_variable(user: &str) -> String {
    format!("NKEY_{}", user.to_ascii_uppercase().replace('-', "_"))
}

/// How the configuration is laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsLayout {
    /// The stream and the cursor bucket.
    pub names: Names,
    /// The three cluster nodes' host names (routes connect to `<host>:6222`).
    pub hosts: [String; 3],
}

impl Default for NatsLayout {
    fn default() -> Self {
        NatsLayout {
            names: Names::default(),
            hosts: ["nats-1".into(), "nats-2".into(), "nats-3".into()],
        }
    }
}

/// Every user: the nine departments (in [`Department::ALL`] order), the services (by name: those of
/// the service table, [`hazchem_pki::services::SERVICES`], with a NATS user, and any other the policy's
/// `[services]` table names), then the admin.
pub fn users(policy: &Policy, names: &Names) -> Vec<User> {
    let publish = policy.nats_permissions();
    let publish_of = |principal: &Principal| -> Vec<String> {
        publish
            .iter()
            .find(|p| &p.principal == principal)
            .map(|p| p.publish.clone())
            .unwrap_or_default()
    };
    let all = event_type_tokens().len();
    let mut users: Vec<User> = Department::ALL
        .into_iter()
        .map(|d| {
            let principal = Principal::Department(d);
            let readable = policy.readable_tokens(&principal);
            let read = if readable.len() == all {
                ReadScope::All
            } else {
                ReadScope::Types(readable)
            };
            User {
                name: d.code().to_owned(),
                role: Role::Department,
                permissions: Permissions::principal(
                    names,
                    d.code(),
                    &publish_of(&principal),
                    &read,
                ),
            }
        })
        .collect();
    let mut services: BTreeSet<String> = hazchem_pki::services::SERVICES
        .iter()
        .filter(|s| s.nats_user)
        .map(|s| s.name.to_owned())
        .collect();
    services.extend(publish.iter().filter_map(|p| match &p.principal {
        Principal::Service(name) => Some(name.clone()),
        _ => None,
    }));
    for name in services {
        let subjects = publish_of(&Principal::Service(name.clone()));
        users.push(User {
            permissions: Permissions::service(names, &name, &subjects),
            name,
            role: Role::Service,
        });
    }
    users.push(User {
        name: ADMIN_USER.to_owned(),
        role: Role::Admin,
        permissions: Permissions::admin(names),
    });
    users
}

const HEADER: &str = "# Generated by `hazchem deploy nats` from the publish and read policy (deploy/policy.toml).\n\
# Do not edit: change the policy and run `hazchem deploy nats`; tests/tests/nats_permissions.rs\n\
# fails when the committed files and the policy disagree. See docs/DEPLOY.md.\n";

/// `auth.conf`: the users and their permissions; public keys come from `nkeys.conf`.
pub fn auth_conf(users: &[User]) -> String {
    let mut out = String::from(HEADER);
    out.push_str(
        "#\n\
         # One nkey user per department, per service and for the admin. Each `nkey` is a variable\n\
         # defined in nkeys.conf (public keys, written beside this file by\n\
         # `hazchem deploy nats --secrets DIR`, which puts the seeds in DIR; not committed). Without\n\
         # nkeys.conf the server refuses to start.\n\
         #\n\
         # Lists are `allow` lists: everything else is denied. Publish: the event subjects the\n\
         # policy's [publish] or [services] table gives the user, plus the JetStream API its\n\
         # connections use. Subscribe: its own inboxes (_INBOX.<user>.>) and the events it may read\n\
         # ([read]); a department that may read only some event types may create only consumers\n\
         # filtered to those types ($JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>).\n\
         include \"nkeys.conf\"\n\nauthorization {\n  users: [\n",
    );
    for user in users {
        let what = match user.role {
            Role::Department => "department",
            Role::Service => "service",
            Role::Admin => "admin: creates and updates the stream and the cursor bucket",
        };
        let _ = writeln!(out, "    # {} ({what})", user.name);
        let _ = writeln!(out, "    {{");
        let _ = writeln!(out, "      nkey: ${}", user.key_variable());
        out.push_str("      permissions: {\n");
        list(&mut out, "publish", &user.permissions.publish);
        list(&mut out, "subscribe", &user.permissions.subscribe);
        out.push_str("      }\n    }\n");
    }
    out.push_str("  ]\n}\n");
    out
}

/// One `allow` list; an empty one is written as `deny: [">"]`, since NATS reads an empty `allow`
/// as no restriction at all.
fn list(out: &mut String, kind: &str, subjects: &[String]) {
    if subjects.is_empty() {
        let _ = writeln!(out, "        {kind}: {{ deny: [\">\"] }}");
        return;
    }
    let _ = writeln!(out, "        {kind}: {{ allow: [");
    for subject in subjects {
        let _ = writeln!(out, "          \"{subject}\"");
    }
    out.push_str("        ] }\n");
}

/// The JetStream block's `sync_interval` and the comment that says what it risks.
const CLUSTER_SYNC: &str = concat!(
    "  # sync_interval: always: every node fsyncs each write to the stream before it counts\n",
    "  # towards the quorum that acknowledges it, so an acknowledged event survives even a\n",
    "  # simultaneous power loss of every node (the system of record's promise: an ack means\n",
    "  # durable). The price is throughput and latency: each append waits for fsyncs (see\n",
    "  # docs/DEPLOY.md for measurements). With the default (2 minutes), an ack means \"in the\n",
    "  # memory of two of three machines\", and a power cut of two nodes within the interval\n",
    "  # could lose acknowledged events.\n",
    "  sync_interval: always\n",
);

/// `nats-<n>.conf` (`n` in 1..=3): one node of the three-node cluster.
pub fn cluster_node_conf(layout: &NatsLayout, n: usize) -> String {
    let host = &layout.hosts[n - 1];
    let mut out = String::from(HEADER);
    let _ = write!(
        out,
        "#\n# Node {n} of the three-node JetStream cluster `hazchem` (host {host}). The stream and the\n\
         # cursor bucket have 3 replicas (bus.replicas = 3); the gateway's admin user creates them.\n\
         server_name: hazchem-nats-{n}\n\
         listen: 0.0.0.0:4222\n\
         # Monitoring shows connections and consumer names: keep it off public networks.\n\
         http: 127.0.0.1:8222\n\n\
         jetstream {{\n  store_dir: \"{CLUSTER_STORE_DIR}\"\n{CLUSTER_SYNC}}}\n\n\
         cluster {{\n  name: hazchem\n  listen: 0.0.0.0:6222\n  routes: [\n"
    );
    for host in &layout.hosts {
        let _ = writeln!(out, "    \"nats-route://{host}:6222\"");
    }
    out.push_str(
        "  ]\n  # Routes carry every message between the nodes: keep them on a private network, or add\n\
         \x20 # tls { cert_file: ..., key_file: ..., ca_file: ..., verify: true } here.\n}\n\n\
         # Clients (gateway, services) authenticate with nkeys; to encrypt their traffic add\n\
         # tls { cert_file: ..., key_file: ... } and give the bus `tls_ca_file`.\n\
         include \"auth.conf\"\n",
    );
    out
}

/// `nats-dev.conf`: one node on localhost.
pub fn dev_conf() -> String {
    let mut out = String::from(HEADER);
    out.push_str(
        "#\n# One node on localhost for development (bus.replicas = 1):\n\
         #   hazchem deploy nats --secrets .hazchem/nats-secrets && nats-server -c deploy/nats/nats-dev.conf\n\
         server_name: hazchem-dev\n\
         listen: 127.0.0.1:4222\n\
         http: 127.0.0.1:8222\n\n\
         jetstream {\n  store_dir: \".hazchem/nats\"\n\
         \x20 # sync_interval: the server's default (2 minutes): a power cut of this machine can lose\n\
         \x20 # the events acknowledged in the last two minutes. Fine for development only.\n}\n\n\
         include \"auth.conf\"\n",
    );
    out
}

/// The policy-derived files, by name, in the order they are written.
pub fn generate(policy: &Policy, layout: &NatsLayout) -> Vec<(String, String)> {
    let users = users(policy, &layout.names);
    let mut files = vec![("auth.conf".to_owned(), auth_conf(&users))];
    for n in 1..=3 {
        files.push((format!("nats-{n}.conf"), cluster_node_conf(layout, n)));
    }
    files.push(("nats-dev.conf".to_owned(), dev_conf()));
    files.push((
        ".gitignore".to_owned(),
        format!("# Public keys of one installation, written by `hazchem deploy nats --secrets`.\n{NKEYS_FILE}\n"),
    ));
    files
}

/// Loads each user's seed from `secrets` (`<user>.nk`), creating missing ones (0600, in a 0700
/// directory), and returns `nkeys.conf` with their public keys. Seeds never leave `secrets`.
pub fn ensure_keys(users: &[User], secrets: &Path) -> Result<String> {
    create_private_dir(secrets)?;
    let mut out = String::from(
        "# Public nkeys of this installation's Hazchem Bus NATS users, written by\n\
         # `hazchem deploy nats --secrets DIR` (the seeds are in DIR/<user>.nk). Not secret, but\n\
         # specific to one installation: not committed.\n",
    );
    for user in users {
        let path = seed_path(secrets, &user.name);
        let pair = if path.exists() {
            let seed = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            nkeys::KeyPair::from_seed(seed.trim())
                .with_context(|| format!("{} does not hold an nkey seed", path.display()))?
        } else {
            let pair = nkeys::KeyPair::new_user();
            let seed = pair.seed().context("encoding a new nkey seed")?;
            write_private(&path, &format!("{seed}\n"))?;
            pair
        };
        if !pair.public_key().starts_with('U') {
            bail!(
                "{} holds a {:?} seed, not a user seed",
                path.display(),
                pair.key_pair_type()
            );
        }
        let _ = writeln!(out, "{}: \"{}\"", user.key_variable(), pair.public_key());
    }
    Ok(out)
}

/// Where `user`'s seed lives under `secrets`.
pub fn seed_path(secrets: &Path, user: &str) -> PathBuf {
    secrets.join(format!("{user}.nk"))
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// `hazchem deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(subcommand)]
    pub target: DeployTarget,
}

/// What to generate.
#[derive(Debug, Subcommand)]
pub enum DeployTarget {
    /// NATS server configuration: one nkey user per department, per service and for the admin,
    /// with permissions mirroring the policy; a three-node cluster and a development node.
    Nats(NatsArgs),
}

/// `hazchem deploy nats`.
#[derive(Debug, Args)]
pub struct NatsArgs {
    /// The publish and read policy (TOML); default: the built-in one (deploy/policy.toml).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Where to write the configuration.
    #[arg(long, default_value = "deploy/nats")]
    pub out: PathBuf,
    /// Where the users' nkey seeds are (created if missing; 0600 files in a 0700 directory). With
    /// it, `nkeys.conf` (public keys) is written to the output directory too. Never put it under
    /// deploy/.
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// The event stream's name.
    #[arg(long, default_value = hazchem_bus::DEFAULT_STREAM)]
    pub stream: String,
    /// The cursor bucket's name.
    #[arg(long, default_value = hazchem_bus::DEFAULT_CURSOR_BUCKET)]
    pub cursor_bucket: String,
    /// The three cluster nodes' host names, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 3, default_values_t = ["nats-1".to_owned(), "nats-2".to_owned(), "nats-3".to_owned()])]
    pub hosts: Vec<String>,
}

/// Runs `hazchem deploy`.
pub fn run(args: DeployArgs) -> Result<()> {
    match args.target {
        DeployTarget::Nats(args) => nats(&args),
    }
}

fn nats(args: &NatsArgs) -> Result<()> {
    let policy = match &args.policy {
        Some(path) => Policy::load(path)?,
        None => Policy::default_policy(),
    };
    let hosts: [String; 3] = args
        .hosts
        .clone()
        .try_into()
        .map_err(|_| anyhow::anyhow!("--hosts: exactly three host names"))?;
    let layout = NatsLayout {
        names: Names {
            stream: args.stream.clone(),
            cursor_bucket: args.cursor_bucket.clone(),
        },
        hosts,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for (name, text) in generate(&policy, &layout) {
        let path = args.out.join(&name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(secrets) = &args.secrets {
        let nkeys = ensure_keys(&users(&policy, &layout.names), secrets)?;
        let path = args.out.join(NKEYS_FILE);
        std::fs::write(&path, nkeys).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote {} (public keys; seeds in {})",
            path.display(),
            secrets.display()
        );
    } else if !args.out.join(NKEYS_FILE).exists() {
        println!(
            "note: no {NKEYS_FILE} in {}: run again with --secrets DIR to create the users' keys",
            args.out.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_principal_gets_a_user() {
        let users = users(&Policy::default_policy(), &Names::default());
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "miit",
                "psb",
                "eeb",
                "transport",
                "emergency",
                "samr",
                "approval",
                "msa",
                "fire",
                "credit",
                "enforcement",
                "ledger",
                "lifecycle",
                "warning",
                "gateway-admin"
            ]
        );
        assert_eq!(key_variable("gateway-admin"), "NKEY_GATEWAY_ADMIN");
    }

    #[test]
    fn keys_are_kept_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        let users = users(&Policy::default_policy(), &Names::default());
        let first = ensure_keys(&users, &secrets).unwrap();
        let second = ensure_keys(&users, &secrets).unwrap();
        assert_eq!(first, second, "existing seeds are reused");
        for user in &users {
            let seed = std::fs::read_to_string(seed_path(&secrets, &user.name)).unwrap();
            let seed = seed.trim();
            assert!(seed.starts_with("SU"), "{} holds a user seed", user.name);
            assert!(!first.contains(seed), "no seed in nkeys.conf");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(seed_path(&secrets, "miit"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
