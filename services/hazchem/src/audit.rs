//! `hazchem audit`: the auditor's side of the ledger. Replays the record, fetches and checks checkpoints and
//! proofs, verifies the whole log against a signed checkpoint trusting only the ledger's public key, and
//! exports offline bundles that `audit verify --bundle` checks with no server running.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use hazchem_ledger::bundle::{self, BundleRecord, BundleWriter};
use hazchem_ledger::merkle::{self, MemoryTree};
use hazchem_ledger::note::{Checkpoint, VerifierKey};
use hazchem_ledger::online::{self, consistency, get_checkpoint, replay_all};
use hazchem_ledger::origin::OriginCheck;
use hazchem_ledger::registry::KeyRegistry;
use hazchem_ledger::verify::{Requirements, Witnesses};
use hazchem_ledger::witness::WitnessKey;
use hazchem_proto::v1;
use hazchem_proto::v1::audit_service_client::AuditServiceClient;
use prost::Message;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::client::Connection;

/// `hazchem audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Stream the log in order, each record with its leaf index, filtered and restricted to what you may
    /// read.
    Replay(ReplayArgs),
    /// Fetch the latest signed checkpoint (or a fresh one), check its signature, optionally save it.
    Checkpoint(CheckpointArgs),
    /// Replay the whole log, recompute the Merkle root and check it against a signed checkpoint, trusting
    /// only the ledger's public key; or check an offline bundle (--bundle) with no server.
    Verify(VerifyArgs),
    /// Fetch the inclusion proof of one event and check it locally against a signed checkpoint.
    Prove(ProveArgs),
    /// Write an offline bundle: every record, the signed checkpoint, inclusion proofs, and optionally
    /// the consistency proof from an earlier checkpoint.
    Export(ExportArgs),
}

/// Where the ledger is, and who we are (default: the development auditor). The same options as the
/// other commands' connection, except that the client key is `--client-key`: `--key` is the ledger's
/// public key here.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("endpoint", |a| a
    .long("ledger")
    .env("HAZCHEM_LEDGER")
    .default_value(hazchem_pki::services::default_endpoint(hazchem_ledger::SERVICE_NAME))
    .help("The ledger's audit service")))]
#[command(mut_arg("client_key", |a| a
    .long("client-key")
    .env("HAZCHEM_CLIENT_KEY")))]
#[command(mut_arg("principal", |a| a
    .help("Act as this principal, with its certificate from the development PKI in --data-dir: \
           `auditor` (the default), `auditor:<name>`, a department code or `service:<name>`")))]
pub struct LedgerConnection {
    #[command(flatten)]
    pub connection: Connection,
}

impl LedgerConnection {
    /// A client of the audit service, as the development auditor unless told otherwise.
    async fn client(&self) -> Result<AuditServiceClient<Channel>> {
        let mut connection = self.connection.clone();
        if connection.principal.is_none() && connection.cert.is_none() {
            connection.principal = Some("auditor".to_owned());
        }
        Ok(
            AuditServiceClient::new(connection.channel().await?)
                .max_decoding_message_size(64 << 20),
        )
    }

    /// The trusted key: `--key`, or the development PKI's `ledger.pub`, for `--origin`.
    fn key(&self, trusted: &TrustedKey) -> Result<VerifierKey> {
        trusted.load(&self.connection.data_dir)
    }
}

/// The one key an auditor trusts, and the log it is for.
#[derive(Debug, Clone, Args)]
pub struct TrustedKey {
    /// The ledger's public key: `<name>+<id>+<base64>`, SPKI PEM or base64 (default: the development
    /// PKI's ledger.pub). Nothing else is trusted.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The ledger's origin, the first line of its checkpoints: a checkpoint of another origin is refused.
    /// A bare key (SPKI PEM or base64) is trusted for this origin only (default: hazchem.example/ledger);
    /// a `<name>+<id>+<base64>` key names its own, and --origin must agree with it.
    #[arg(long, env = "HAZCHEM_LEDGER_ORIGIN")]
    pub origin: Option<String>,
}

impl TrustedKey {
    fn load(&self, data_dir: &Path) -> Result<VerifierKey> {
        let path = match &self.key {
            Some(path) => path.clone(),
            None => data_dir.join("pki").join("ledger.pub"),
        };
        VerifierKey::load_for_origin(&path, self.origin.as_deref()).with_context(|| {
            format!(
                "reading the ledger's public key {} (give it with --key, and its origin with --origin)",
                path.display()
            )
        })
    }
}

/// What origin signatures are checked with: the departments' keys the auditor trusts and the rules of
/// which events must be signed.
#[derive(Debug, Clone, Args)]
pub struct OriginTrust {
    /// The departments' origin-signing keys you trust, with their key ids and validity
    /// (`signing-keys.toml`; default: the development PKI's under --data-dir, if there is one; without
    /// any, origin signatures are not checked and the command says so). Every record's origin signature
    /// must verify with the key its key id names, valid when the record was accepted; keys a bundle
    /// carries are never trusted because it says so.
    #[arg(long, value_name = "FILE")]
    pub key_registry: Option<PathBuf>,
    /// The publish policy whose `[signatures]` rules say which events must be signed (default: the
    /// built-in policy, deploy/policy.toml).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

impl OriginTrust {
    /// The origin check, or `None` when no registry was named and there is none in the development PKI
    /// (then only the ledger's key is trusted, and the caller says that origin signatures were not
    /// checked). A registry that was named but cannot be read is an error.
    fn load(&self, data_dir: &Path) -> Result<Option<OriginCheck>> {
        let path = match &self.key_registry {
            Some(path) => path.clone(),
            None => {
                let default = data_dir.join("pki").join("signing-keys.toml");
                if !default.exists() {
                    return Ok(None);
                }
                default
            }
        };
        let registry = KeyRegistry::load(&path).with_context(|| {
            format!(
                "reading the departments' key registry {} (give the one you trust with --key-registry)",
                path.display()
            )
        })?;
        let policy = match &self.policy {
            Some(path) => hazchem_admission::Policy::load(path)?,
            None => hazchem_admission::Policy::default_policy(),
        };
        Ok(Some(OriginCheck::new(registry, policy.signature_rules())))
    }
}

/// What `audit verify` prints when it checks no origin signatures.
const ORIGIN_UNCHECKED: &str = "origin signatures not checked: no key registry (give the departments' \
                                keys you trust with --key-registry FILE)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line: leafIndex, sequence, record (base64 of the exact leaf bytes), and the
    /// record and event decoded.
    Json,
    /// Length-delimited `hazchem.v1.ReplayResponse` messages (varint length, then the message).
    Binary,
}

/// `hazchem audit replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub ledger: LedgerConnection,
    /// Only events published by these departments (codes).
    #[arg(long = "department", value_name = "CODE")]
    pub departments: Vec<String>,
    /// Only these event types (tokens such as waybill_issued).
    #[arg(long = "type", value_name = "TOKEN")]
    pub event_types: Vec<String>,
    /// Only events naming this enterprise (USCC).
    #[arg(long = "enterprise", value_name = "USCC")]
    pub enterprises: Vec<String>,
    /// Only events naming this chemical (CAS number).
    #[arg(long = "chemical", value_name = "CAS")]
    pub chemicals: Vec<String>,
    /// Only events naming this batch code.
    #[arg(long = "batch", value_name = "CODE")]
    pub batch_codes: Vec<String>,
    /// Only events whose time is at or after this instant (RFC 3339).
    #[arg(long)]
    pub from_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events whose time is before this instant (RFC 3339).
    #[arg(long)]
    pub until_time: Option<chrono::DateTime<chrono::Utc>>,
    /// The first leaf index.
    #[arg(long, default_value_t = 0)]
    pub from_index: u64,
    /// Stop before this leaf index (default: the current tree size).
    #[arg(long)]
    pub to_index: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
}

/// `hazchem audit checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub ledger: LedgerConnection,
    /// Ask for a fresh checkpoint covering everything appended so far.
    #[arg(long)]
    pub fresh: bool,
    /// Save the signed note to this file (for `audit verify --since-checkpoint`).
    #[arg(long)]
    pub save: Option<PathBuf>,
    #[command(flatten)]
    pub trusted: TrustedKey,
}

/// `hazchem audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub ledger: LedgerConnection,
    #[command(flatten)]
    pub trusted: TrustedKey,
    #[command(flatten)]
    pub origin: OriginTrust,
    /// An earlier checkpoint you saved: the log must extend it.
    #[arg(long)]
    pub since_checkpoint: Option<PathBuf>,
    /// Check this offline bundle (a directory written by `audit export`) instead of a server.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Verify against a fresh checkpoint rather than the latest one.
    #[arg(long, conflicts_with = "bundle")]
    pub fresh: bool,
    /// Check the system of record itself (the stream every service derives its state from) rather than
    /// the ledger's copy: against the latest checkpoint the ledger published into it. The bus is the one
    /// `--config` names, or the embedded bus under `--data-dir` (with `hazchem dev` stopped: one process
    /// at a time opens it).
    #[arg(long, conflicts_with_all = ["bundle", "fresh"])]
    pub stream: bool,
    /// The service configuration whose `[bus]` `--stream` reads.
    #[arg(long, requires = "stream")]
    pub config: Option<PathBuf>,
    /// After a successful verification, save the checkpoint to this file (for the next
    /// --since-checkpoint).
    #[arg(long)]
    pub save_checkpoint: Option<PathBuf>,
    /// Also require good C2SP cosignatures by at least K of the known witnesses (--witness-keys) on the
    /// checkpoint: a checkpoint fewer witnesses vouch for (a log that showed you a fork) is refused.
    #[arg(long, value_name = "K")]
    pub witnesses: Option<usize>,
    /// The known witnesses' keys, one per line, `<name>+<key id hex>+<base64(0x04 || key)>` (`#` comments
    /// and blank lines allowed; default: the development PKI's witnesses.keys under --data-dir).
    #[arg(long, value_name = "FILE", requires = "witnesses")]
    pub witness_keys: Option<PathBuf>,
}

/// `hazchem audit prove`.
#[derive(Debug, Args)]
pub struct ProveArgs {
    #[command(flatten)]
    pub ledger: LedgerConnection,
    /// The event id.
    pub event_id: String,
    /// Who published the event (a department code or a service name); needed only when more than one
    /// publisher you may read used the id.
    #[arg(long)]
    pub publisher: Option<String>,
    /// Prove against this tree size (default: the latest checkpoint's, or a fresh one if the event is
    /// newer); linked to the signed checkpoint by a consistency proof.
    #[arg(long)]
    pub tree_size: Option<u64>,
    #[command(flatten)]
    pub trusted: TrustedKey,
}

/// `hazchem audit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub ledger: LedgerConnection,
    /// The bundle directory to create (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    // The key the export is checked with, written to the bundle for reference.
    #[command(flatten)]
    pub trusted: TrustedKey,
    // The departments' keys the export's origin signatures are checked with; those that signed a
    // record are written to the bundle, for reference.
    #[command(flatten)]
    pub origin: OriginTrust,
    /// Include this earlier checkpoint and the consistency proof from it.
    #[arg(long)]
    pub since_checkpoint: Option<PathBuf>,
    /// Export against a fresh checkpoint rather than the latest one.
    #[arg(long)]
    pub fresh: bool,
    /// Leave out the per-record inclusion proofs (a smaller bundle; a disagreement is then located only
    /// as "below the tree size").
    #[arg(long)]
    pub no_proofs: bool,
}

pub async fn run(args: AuditArgs) -> Result<()> {
    match args.command {
        AuditCommand::Replay(args) => replay(args).await,
        AuditCommand::Checkpoint(args) => checkpoint(args).await,
        AuditCommand::Verify(args) => verify_command(args).await,
        AuditCommand::Prove(args) => prove(args).await,
        AuditCommand::Export(args) => export(args).await,
    }
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn department_numbers(codes: &[String]) -> Result<Vec<i32>> {
    codes
        .iter()
        .map(|d| {
            let d: hazchem_domain::Department = d.parse()?;
            Ok(v1::Department::from(d) as i32)
        })
        .collect()
}

/// One replayed record as a JSON line.
pub fn replay_json(item: &v1::ReplayResponse) -> Value {
    let mut line = json!({
        "leafIndex": item.leaf_index,
        "sequence": item.sequence,
        "record": BASE64.encode(&item.record),
    });
    if let Ok(record) = v1::Record::decode(item.record.as_slice()) {
        if let Ok(event) = v1::Event::decode(record.event.as_slice())
            && let Ok(event) = hazchem_proto::to_json(&event)
        {
            line["event"] = event;
        }
        if let Ok(mut meta) = hazchem_proto::to_json(&v1::Record {
            event: vec![],
            ..record
        }) {
            if let Value::Object(map) = &mut meta {
                map.remove("event");
            }
            line["stored"] = meta;
        }
    }
    line
}

async fn replay(args: ReplayArgs) -> Result<()> {
    let mut client = args.ledger.client().await?;
    let filter = v1::EventFilter {
        departments: department_numbers(&args.departments)?,
        event_types: args.event_types.clone(),
        enterprises: args.enterprises.clone(),
        chemicals: args.chemicals.clone(),
        batch_codes: args.batch_codes.clone(),
        time_from: args.from_time.map(hazchem_proto::time::timestamp),
        time_until: args.until_time.map(hazchem_proto::time::timestamp),
    };
    let mut stream = client
        .replay(v1::ReplayRequest {
            filter: Some(filter),
            from_index: args.from_index,
            to_index: args.to_index.unwrap_or(0),
        })
        .await?
        .into_inner();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    while let Some(item) = stream.next().await {
        let item = item?;
        match args.format {
            Format::Json => writeln!(out, "{}", replay_json(&item))?,
            Format::Binary => out.write_all(&item.encode_length_delimited_to_vec())?,
        }
    }
    out.flush()?;
    Ok(())
}

async fn checkpoint(args: CheckpointArgs) -> Result<()> {
    let key = args.ledger.key(&args.trusted)?;
    let mut client = args.ledger.client().await?;
    let note = get_checkpoint(&mut client, args.fresh).await?;
    let checkpoint = key
        .open_checkpoint(&note)
        .with_context(|| format!("the ledger's checkpoint does not verify with {key}"))?;
    print!("{note}");
    eprintln!(
        "signature good ({key}): {} leaves, root {}",
        checkpoint.size,
        hex::encode(checkpoint.root)
    );
    if let Some(path) = &args.save {
        std::fs::write(path, &note).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("saved to {}", path.display());
    }
    Ok(())
}

async fn verify_command(args: VerifyArgs) -> Result<()> {
    let key = args.ledger.key(&args.trusted)?;
    let data_dir = &args.ledger.connection.data_dir;
    let mut requirements = Requirements {
        since: args
            .since_checkpoint
            .as_deref()
            .map(read_file)
            .transpose()?,
        origin: args.origin.load(data_dir)?,
        ..Requirements::default()
    };
    if let Some(required) = args.witnesses {
        let path = args
            .witness_keys
            .clone()
            .unwrap_or_else(|| data_dir.join("pki").join("witnesses.keys"));
        let known = WitnessKey::load_list(&path).with_context(|| {
            format!(
                "reading the witnesses' keys {} (give them with --witness-keys)",
                path.display()
            )
        })?;
        requirements.witnesses = Witnesses { known, required };
    }
    let (result, note) = if args.stream {
        let bus = match &args.config {
            Some(file) => crate::config::Config::load(Some(file))?.bus,
            None => crate::config::BusConfig::Embedded {
                dir: data_dir.join("bus"),
            },
        }
        .open()
        .await?;
        println!("checking the stream itself trusting only {key}");
        let origin = key.name().to_owned();
        match online::verify_stream(&bus, key, &requirements).await? {
            online::StreamVerdict::NoCheckpoint { messages } => bail!(
                "the stream's {messages} messages hold no checkpoint of {} signed by the key: nothing to \
                 check against yet",
                origin
            ),
            online::StreamVerdict::Checked { note, result } => (result, note),
        }
    } else if let Some(dir) = &args.bundle {
        println!("checking bundle {} trusting only {key}", dir.display());
        let note = std::fs::read_to_string(dir.join(bundle::CHECKPOINT)).unwrap_or_default();
        (bundle::verify_bundle(dir, key, &requirements), note)
    } else {
        let mut client = args.ledger.client().await?;
        let note = get_checkpoint(&mut client, args.fresh).await?;
        println!(
            "checking {} trusting only {key}",
            args.ledger.connection.endpoint
        );
        (
            online::verify_log(&mut client, key, &note, &requirements).await?,
            note,
        )
    };
    match result {
        Ok(verified) => {
            println!("{verified}");
            if verified.origin.is_none() {
                println!("{ORIGIN_UNCHECKED}");
            }
            if let Some(path) = &args.save_checkpoint {
                std::fs::write(path, &note)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("checkpoint saved to {}", path.display());
            }
            Ok(())
        }
        Err(failure) => {
            println!("FAILED: {}", failure.first());
            for problem in failure.problems.iter().skip(1).take(20) {
                println!("  also: {problem}");
            }
            if failure.total() > 21 {
                println!("  and {} more", failure.total() - 21);
            }
            bail!("verification failed: {}", failure.first())
        }
    }
}

/// The record at leaf `index` must be event `event_id`, of `publisher` when one is named.
fn check_leaf(index: u64, record: &[u8], event_id: &str, publisher: Option<&str>) -> Result<()> {
    let (id, by) = hazchem_proto::open_record(record)
        .map(|(record, event)| (event.id, record.publisher.and_then(|p| p.token())))
        .unwrap_or_default();
    if id != event_id {
        bail!("leaf {index} holds event {id:?}, not {event_id:?}");
    }
    if let Some(wanted) = publisher
        && by.as_deref() != Some(wanted)
    {
        bail!(
            "leaf {index} holds event {id:?} published by {}, not by {wanted}",
            by.as_deref().unwrap_or("nobody named"),
        );
    }
    Ok(())
}

async fn prove(args: ProveArgs) -> Result<()> {
    let key = args.ledger.key(&args.trusted)?;
    let mut client = args.ledger.client().await?;
    let mut note = get_checkpoint(&mut client, false).await?;
    let mut checkpoint = key
        .open_checkpoint(&note)
        .with_context(|| format!("the ledger's checkpoint does not verify with {key}"))?;
    let request = |tree_size: u64| v1::GetInclusionProofRequest {
        leaf: Some(v1::get_inclusion_proof_request::Leaf::EventId(
            args.event_id.clone(),
        )),
        tree_size,
        publisher: args.publisher.clone().unwrap_or_default(),
    };
    let tree_size = args.tree_size.unwrap_or(checkpoint.size);
    let proof = match client.get_inclusion_proof(request(tree_size)).await {
        Ok(r) => r.into_inner(),
        Err(status)
            if status.code() == tonic::Code::FailedPrecondition && args.tree_size.is_none() =>
        {
            // The event is newer than the latest checkpoint: ask for a fresh one.
            note = get_checkpoint(&mut client, true).await?;
            checkpoint = key.open_checkpoint(&note)?;
            client
                .get_inclusion_proof(request(checkpoint.size))
                .await
                .context("GetInclusionProof")?
                .into_inner()
        }
        Err(status) => return Err(status).context("GetInclusionProof"),
    };
    if proof.tree_size > checkpoint.size {
        // A tree size beyond the latest checkpoint: get one that covers it.
        note = get_checkpoint(&mut client, true).await?;
        checkpoint = key.open_checkpoint(&note)?;
        if proof.tree_size > checkpoint.size {
            bail!(
                "the ledger has no checkpoint covering tree size {}",
                proof.tree_size
            );
        }
    }
    // The record itself, hashed here: the server's leaf hash is not trusted.
    let mut stream = replay_all(&mut client, proof.leaf_index, proof.leaf_index + 1).await?;
    let item = stream
        .next()
        .await
        .context("the ledger replayed nothing for the leaf")??;
    let leaf = merkle::leaf_hash(&item.record);
    if leaf.as_slice() != proof.leaf_hash.as_slice() {
        bail!(
            "leaf {}: the replayed record hashes to {}, the proof says {}",
            proof.leaf_index,
            hex::encode(leaf),
            hex::encode(&proof.leaf_hash)
        );
    }
    let path = online::hashes("GetInclusionProof", &proof.hashes)?;
    // The server's choice of leaf is not trusted either.
    check_leaf(
        proof.leaf_index,
        &item.record,
        &args.event_id,
        args.publisher.as_deref(),
    )?;
    // The root at the proof's size, from the proof; then tied to the signed checkpoint.
    let root_at_size = merkle::inclusion_root(&leaf, proof.leaf_index, proof.tree_size, &path)
        .with_context(|| {
            format!(
                "leaf {}: the inclusion proof is malformed",
                proof.leaf_index
            )
        })?;
    let mut consistency_path = Vec::new();
    if proof.tree_size == checkpoint.size {
        if root_at_size != checkpoint.root {
            bail!(
                "leaf {}: the inclusion proof does not lead to the signed root of size {}",
                proof.leaf_index,
                checkpoint.size
            );
        }
    } else {
        consistency_path = consistency(&mut client, proof.tree_size, checkpoint.size).await?;
        merkle::verify_consistency(
            proof.tree_size,
            checkpoint.size,
            &consistency_path,
            &root_at_size,
            &checkpoint.root,
        )
        .with_context(|| {
            format!(
                "the tree of size {} is not consistent with the signed checkpoint of size {}",
                proof.tree_size, checkpoint.size
            )
        })?;
    }
    let out = json!({
        "eventId": args.event_id,
        "leafIndex": proof.leaf_index,
        "treeSize": proof.tree_size,
        "leafHash": hex::encode(leaf),
        "inclusionProof": path.iter().map(hex::encode).collect::<Vec<_>>(),
        "consistencyProof": consistency_path.iter().map(hex::encode).collect::<Vec<_>>(),
        "checkpoint": note,
        "verified": true,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    eprintln!(
        "verified: event {} is leaf {} of the log signed at size {} ({key})",
        args.event_id, proof.leaf_index, checkpoint.size
    );
    Ok(())
}

async fn export(args: ExportArgs) -> Result<()> {
    let key = args.ledger.key(&args.trusted)?;
    let since = args
        .since_checkpoint
        .as_deref()
        .map(read_file)
        .transpose()?;
    let mut client = args.ledger.client().await?;
    let note = get_checkpoint(&mut client, args.fresh).await?;
    let checkpoint: Checkpoint = key
        .open_checkpoint(&note)
        .with_context(|| format!("the ledger's checkpoint does not verify with {key}"))?;
    let size = checkpoint.size;
    // First pass: verify everything, origin signatures included, and learn which keys signed.
    let origin = args.origin.load(&args.ledger.connection.data_dir)?;
    if origin.is_none() {
        eprintln!("{ORIGIN_UNCHECKED}");
    }
    let requirements = Requirements {
        since: since.clone(),
        origin: origin.clone(),
        ..Requirements::default()
    };
    let verified = match online::verify_log(&mut client, key.clone(), &note, &requirements).await? {
        Ok(verified) => verified,
        Err(failure) => bail!("not exporting: the ledger's log does not verify: {failure}"),
    };
    let mut signers = KeyRegistry::new();
    for id in verified.origin.iter().flat_map(|o| o.verified.keys()) {
        if let Some(key) = origin.as_ref().and_then(|o| o.registry().key(id)) {
            signers.add(key.clone())?;
        }
    }
    let mut tree = MemoryTree::new();
    let mut writer = BundleWriter::create(&args.out)?;
    writer.write_origin_keys(&signers)?;
    if args.no_proofs {
        let mut stream = replay_all(&mut client, 0, size).await?;
        while let Some(item) = stream.next().await {
            let item = item?;
            writer.write_record(&BundleRecord {
                index: item.leaf_index,
                record: item.record,
                proof: None,
            })?;
        }
    } else {
        let mut stream = replay_all(&mut client, 0, size).await?;
        while let Some(item) = stream.next().await {
            tree.push_leaf(&item?.record);
        }
        // Second pass: the records with their proofs, which hold against the verified root.
        let mut stream = replay_all(&mut client, 0, size).await?;
        while let Some(item) = stream.next().await {
            let item = item?;
            let proof = merkle::inclusion_proof(&tree, item.leaf_index, size)?;
            writer.write_record(&BundleRecord {
                index: item.leaf_index,
                record: item.record,
                proof: Some(proof),
            })?;
        }
        if tree.size() != size || tree.root() != checkpoint.root {
            bail!("the log changed between the verification and the export; export again");
        }
    }
    let earlier = match &since {
        Some(note) => {
            let first = key.open_checkpoint(note)?;
            Some((
                note.as_str(),
                consistency(&mut client, first.size, size).await?,
            ))
        }
        None => None,
    };
    #[allow(clippy::disallowed_methods)]
    // CLI: the bundle's descriptive `createdAt` is when a person exported it
    let created_at = chrono::Utc::now();
    let dir = writer.finish(
        &note,
        Some(&key),
        earlier.as_ref().map(|(n, p)| (*n, p.as_slice())),
        created_at,
    )?;
    let origin = if checkpoint.origin == hazchem_ledger::DEFAULT_ORIGIN {
        String::new()
    } else {
        format!(" --origin {}", checkpoint.origin)
    };
    println!(
        "exported {size} records with the checkpoint of size {size} to {}; check it with:\n  hazchem audit verify --bundle {} --key <ledger.pub>{origin} --key-registry <signing-keys.toml you trust>",
        dir.display(),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, publisher: v1::publisher::Principal) -> Vec<u8> {
        let event = v1::Event {
            id: id.to_owned(),
            ..v1::Event::default()
        };
        v1::Record {
            event: event.encode_to_vec(),
            publisher: Some(v1::Publisher {
                principal: Some(publisher),
            }),
            ..v1::Record::default()
        }
        .encode_to_vec()
    }

    /// A proof's leaf must hold the event asked for, and the publisher asked for: a server answering
    /// with another publisher's event under the same id is refused.
    #[test]
    fn a_proofs_leaf_must_be_the_event_and_publisher_asked_for() {
        let transport = v1::publisher::Principal::Department(v1::Department::Transport as i32);
        let leaf = record("e-1", transport);
        check_leaf(7, &leaf, "e-1", None).unwrap();
        check_leaf(7, &leaf, "e-1", Some("transport")).unwrap();
        let other = check_leaf(7, &leaf, "e-1", Some("psb")).unwrap_err();
        assert_eq!(
            other.to_string(),
            "leaf 7 holds event \"e-1\" published by transport, not by psb"
        );
        let wrong = check_leaf(7, &leaf, "e-2", None).unwrap_err();
        assert_eq!(wrong.to_string(), "leaf 7 holds event \"e-1\", not \"e-2\"");
        let service = record("e-1", v1::publisher::Principal::Service("credit".into()));
        check_leaf(7, &service, "e-1", Some("credit")).unwrap();
        assert!(check_leaf(7, b"not a record", "e-1", None).is_err());
    }
}
