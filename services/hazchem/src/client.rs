//! Talking to a running bus: connection options, `publish` and `tail`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use hazchem_pki::{ClientTls, DevPki, Principal, SigningKey};
use hazchem_proto::v1;
use hazchem_proto::v1::publish_service_client::PublishServiceClient;
use hazchem_proto::v1::subscription_service_client::SubscriptionServiceClient;
use prost::Message;
use serde_json::{Value, json};
use tonic::transport::{Channel, Endpoint};

/// Where the bus is and who we are.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The gateway's address.
    #[arg(
        long,
        env = "HAZCHEM_ENDPOINT",
        default_value_t = hazchem_pki::services::default_endpoint(hazchem_gateway::SERVICE_NAME)
    )]
    pub endpoint: String,
    /// Act as this principal, with its certificate from the development PKI in --data-dir: a department
    /// code (emergency, psb, transport, ...), `service:<name>` or `auditor`.
    #[arg(long = "as", env = "HAZCHEM_AS", value_name = "PRINCIPAL")]
    pub principal: Option<String>,
    /// The development data directory (where `hazchem dev` wrote its PKI).
    #[arg(long, env = "HAZCHEM_DATA_DIR", default_value = ".hazchem")]
    pub data_dir: PathBuf,
    /// CA certificate (PEM) to trust, instead of the development CA.
    #[arg(long, env = "HAZCHEM_CA", requires_all = ["cert", "client_key"])]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), instead of --as.
    #[arg(long, env = "HAZCHEM_CERT", requires_all = ["ca", "client_key"])]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), instead of --as.
    #[arg(long = "key", value_name = "KEY", env = "HAZCHEM_KEY", requires_all = ["ca", "cert"])]
    pub client_key: Option<PathBuf>,
}

/// The options that replace the development PKI, as the error messages name them.
const CERTIFICATE_FILES: &str =
    "--ca, --cert and the client key (--key; --client-key in `hazchem audit`)";

impl Connection {
    fn dev_principal(&self) -> Result<Option<Principal>> {
        self.principal.as_deref().map(parse_principal).transpose()
    }

    fn tls(&self) -> Result<ClientTls> {
        if let (Some(ca), Some(cert), Some(key)) = (&self.ca, &self.cert, &self.client_key) {
            return Ok(ClientTls::from_files(ca, cert, key)?);
        }
        let Some(principal) = self.dev_principal()? else {
            bail!("say who you are: --as <department> (development PKI), or {CERTIFICATE_FILES}");
        };
        let pki = DevPki::load(&self.data_dir.join("pki")).with_context(|| {
            format!(
                "no development PKI in {}: start `hazchem dev` first, or pass {CERTIFICATE_FILES}",
                self.data_dir.display()
            )
        })?;
        Ok(pki.client_tls(&principal)?)
    }

    /// Opens a channel to the gateway.
    pub async fn channel(&self) -> Result<Channel> {
        let tls = self.tls()?;
        Endpoint::from_shared(self.endpoint.clone())
            .context("--endpoint is not a URL")?
            .tls_config(tls.config())?
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.endpoint))
    }

    /// The development signing key of the department we act as.
    fn dev_signing_key(&self) -> Result<SigningKey> {
        let Some(Principal::Department(department)) = self.dev_principal()? else {
            bail!("--sign needs --as <department>; otherwise give --sign-key");
        };
        let pki = DevPki::load(&self.data_dir.join("pki"))?;
        Ok(pki.signing_key(department)?)
    }
}

/// "emergency", "service:ledger", "auditor" or "auditor:<name>".
pub fn parse_principal(text: &str) -> Result<Principal> {
    Ok(match text.split_once(':') {
        Some(("service", name)) => Principal::service(name)?,
        Some(("auditor", name)) => Principal::auditor(name)?,
        None if text == "auditor" => Principal::auditor(hazchem_pki::dev::DEV_AUDITOR)?,
        None => Principal::Department(text.parse()?),
        Some(_) => bail!("{text:?}: a department code, service:<name> or auditor[:<name>]"),
    })
}

/// `hazchem publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Files of events in canonical protobuf JSON: one object, an array, or one object per line. `-` or
    /// nothing reads standard input.
    pub files: Vec<PathBuf>,
    /// Sign each event with the department's development signing key (from --data-dir).
    #[arg(long, conflicts_with = "sign_key")]
    pub sign: bool,
    /// Sign each event with this Ed25519 key (PKCS#8 PEM).
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
    /// Send all events in batch calls (up to 1000 per call) instead of one call per event.
    #[arg(long)]
    pub batch: bool,
}

pub async fn publish(args: PublishArgs) -> Result<()> {
    let signer = match (&args.sign_key, args.sign) {
        (Some(path), _) => Some(SigningKey::load(path)?),
        (None, true) => Some(args.connection.dev_signing_key()?),
        (None, false) => None,
    };
    // The key id names the signing key of the department the event is published for
    // (`<code>+<8 hex digits>`, derived from the key), as the registry lists it.
    let principal = args.connection.dev_principal()?;
    let events = read_events(&args.files)?;
    let signed: Vec<v1::SignedEvent> = events
        .iter()
        .map(|event| {
            let bytes = event.encode_to_vec();
            let department = hazchem_proto::department_from_i32(event.department)
                .ok()
                .or_else(|| principal.as_ref().and_then(Principal::department));
            let signature = signer.as_ref().map(|k| v1::OriginSignature {
                key_id: department.map(|d| k.origin_key_id(d)).unwrap_or_default(),
                signature: k.sign(&bytes).to_vec(),
            });
            v1::SignedEvent {
                event: bytes,
                signature,
            }
        })
        .collect();
    let mut client = PublishServiceClient::new(args.connection.channel().await?);
    let mut out = std::io::stdout().lock();
    let mut rejected = 0usize;
    if args.batch {
        for chunk in signed.chunks(hazchem_gateway::MAX_BATCH) {
            let response = client
                .publish_batch(v1::PublishBatchRequest {
                    events: chunk.to_vec(),
                })
                .await?
                .into_inner();
            for (result, event) in response.results.into_iter().zip(chunk) {
                let line = match result.outcome {
                    Some(v1::publish_result::Outcome::Accepted(a)) => accepted_json(&a),
                    Some(v1::publish_result::Outcome::Rejected(status)) => {
                        rejected += 1;
                        rpc_status_json(&event_id(event), &status)
                    }
                    None => json!({"error": "the gateway returned an empty result"}),
                };
                writeln!(out, "{line}")?;
            }
        }
    } else {
        for event in signed {
            let id = event_id(&event);
            let line = match client
                .publish(v1::PublishRequest { event: Some(event) })
                .await
            {
                Ok(response) => accepted_json(&response.into_inner().accepted.unwrap_or_default()),
                Err(status) => {
                    rejected += 1;
                    let rpc = hazchem_proto::google::rpc::Status::decode(status.details())
                        .unwrap_or_else(|_| hazchem_proto::google::rpc::Status {
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                            details: vec![],
                        });
                    rpc_status_json(&id, &rpc)
                }
            };
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    if rejected > 0 {
        bail!("{rejected} event(s) rejected");
    }
    Ok(())
}

fn event_id(signed: &v1::SignedEvent) -> String {
    v1::Event::decode(signed.event.as_slice())
        .map(|e| e.id)
        .unwrap_or_default()
}

fn accepted_json(a: &v1::Accepted) -> Value {
    json!({"eventId": a.event_id, "sequence": a.sequence, "duplicate": a.duplicate})
}

/// A rejection as JSON: code, message and the standard error details, decoded.
fn rpc_status_json(event_id: &str, status: &hazchem_proto::google::rpc::Status) -> Value {
    let code = tonic::Code::from_i32(status.code);
    let mut details = Vec::new();
    let tonic_status =
        tonic::Status::with_details(code, status.message.clone(), status.encode_to_vec().into());
    use tonic_types::StatusExt;
    let error_details = tonic_status.get_error_details();
    if let Some(bad) = error_details.bad_request() {
        for v in &bad.field_violations {
            details.push(json!({"field": v.field, "description": v.description}));
        }
    }
    let info = error_details
        .error_info()
        .map(|i| json!({"reason": i.reason, "domain": i.domain, "metadata": i.metadata}));
    json!({
        "eventId": event_id,
        "error": {
            "code": format!("{code:?}"),
            "message": status.message,
            "fieldViolations": details,
            "errorInfo": info,
        }
    })
}

/// Reads events from files or standard input: one JSON object, an array, or a sequence of objects.
fn read_events(files: &[PathBuf]) -> Result<Vec<v1::Event>> {
    let mut values = Vec::new();
    let stdin = [PathBuf::from("-")];
    for file in if files.is_empty() { &stdin[..] } else { files } {
        let reader: Box<dyn BufRead> = if file == Path::new("-") {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
            ))
        };
        for value in serde_json::Deserializer::from_reader(reader).into_iter::<Value>() {
            match value.with_context(|| format!("{} is not JSON", file.display()))? {
                Value::Array(items) => values.extend(items),
                v => values.push(v),
            }
        }
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            hazchem_proto::from_json::<v1::Event>(&v.to_string())
                .with_context(|| format!("event {} is not a hazchem.v1.Event", i + 1))
        })
        .collect()
}

/// `hazchem tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub connection: Connection,
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
    /// Start at this sequence.
    #[arg(long, group = "start")]
    pub from_sequence: Option<u64>,
    /// Start at the first event stored at or after this instant (RFC 3339).
    #[arg(long, group = "start")]
    pub from_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Resume the durable subscription with this name, acknowledging each event once printed.
    #[arg(long, group = "start")]
    pub durable: Option<String>,
    /// Only events stored from now on.
    #[arg(long, group = "start")]
    pub new: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
}

pub async fn tail(args: TailArgs) -> Result<()> {
    use v1::start_position::Position;
    let departments = args
        .departments
        .iter()
        .map(|d| {
            let d: hazchem_domain::Department = d.parse()?;
            Ok(v1::Department::from(d) as i32)
        })
        .collect::<Result<Vec<_>>>()?;
    let position = if let Some(n) = args.from_sequence {
        Some(Position::Sequence(n))
    } else if let Some(t) = args.from_time {
        Some(Position::Time(hazchem_proto::time::timestamp(t)))
    } else if let Some(name) = &args.durable {
        Some(Position::DurableName(name.clone()))
    } else if args.new {
        Some(Position::NewOnly(v1::NewOnly {}))
    } else {
        None
    };
    let request = v1::SubscribeRequest {
        filter: Some(v1::EventFilter {
            departments,
            event_types: args.event_types.clone(),
            enterprises: args.enterprises.clone(),
            chemicals: args.chemicals.clone(),
            batch_codes: args.batch_codes.clone(),
            time_from: None,
            time_until: None,
        }),
        start: position.map(|p| v1::StartPosition { position: Some(p) }),
    };
    let mut client = SubscriptionServiceClient::new(args.connection.channel().await?);
    let mut stream = client.subscribe(request).await?.into_inner();
    let mut out = std::io::stdout().lock();
    let mut seen = 0u64;
    while let Some(item) = stream.next().await {
        let item = item?;
        writeln!(out, "{}", delivery_json(&item)?)?;
        out.flush()?;
        if let Some(name) = &args.durable {
            client
                .acknowledge_cursor(v1::AcknowledgeCursorRequest {
                    durable_name: name.clone(),
                    sequence: item.sequence,
                })
                .await?;
        }
        seen += 1;
        if args.limit.is_some_and(|limit| seen >= limit) {
            break;
        }
    }
    Ok(())
}

/// One delivered record as a JSON line: position, publisher, signature and the event itself.
pub fn delivery_json(item: &v1::SubscribeResponse) -> Result<Value> {
    let record = item.record.clone().unwrap_or_default();
    let event =
        v1::Event::decode(record.event.as_slice()).context("stored event does not decode")?;
    let mut record_json = hazchem_proto::to_json(&v1::Record {
        event: vec![],
        ..record
    })?;
    if let Value::Object(map) = &mut record_json {
        map.remove("event");
    }
    Ok(json!({
        "sequence": item.sequence,
        "storedAt": item.stored_at.as_ref().map(|t| t.to_string()),
        "subject": item.subject,
        "record": record_json,
        "event": hazchem_proto::to_json(&event)?,
    }))
}
