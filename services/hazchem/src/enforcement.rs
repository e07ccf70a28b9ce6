//! `hazchem enforcement`: follow and drive joint tasks (联动执法) on the enforcement service — `list`,
//! `show` (state and full history), `redraw` (re-runs a recorded 双随机 draw locally and exits non-zero if
//! it differs), and one thin command per task command (`open`, `draw`, `advance`, `findings`, `rectify`,
//! `recheck`, `penalty`, `transfer`, `answer`, `close`). Text for people, canonical protobuf JSON with
//! `--json`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use hazchem_domain::Department;
use hazchem_enforcement::{draw, wire};
use hazchem_proto::time::timestamp;
use hazchem_proto::v1;
use hazchem_proto::v1::enforcement_service_client::EnforcementServiceClient;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

use crate::client::Connection;

/// `hazchem enforcement`.
#[derive(Debug, Args)]
pub struct EnforcementArgs {
    #[command(subcommand)]
    pub command: EnforcementCommand,
}

#[derive(Debug, Subcommand)]
pub enum EnforcementCommand {
    /// Tasks by department, state, target, overdue.
    List(ListArgs),
    /// A task: its state and full history.
    Show(TaskArgs),
    /// Re-run a task's recorded draw locally and compare; exits non-zero if it differs.
    Redraw(RedrawArgs),
    /// Open a joint task (you become its lead).
    Open(OpenArgs),
    /// Draw targets and inspectors (双随机).
    Draw(DrawArgs),
    /// Move a task to NOTIFIED or ON_SITE.
    Advance(AdvanceArgs),
    /// Record the findings on site.
    Findings(FindingsArgs),
    /// Order rectification.
    Rectify(RectifyArgs),
    /// Record the recheck of a rectification.
    Recheck(RecheckArgs),
    /// Record a penalty decision (行政处罚决定).
    Penalty(PenaltyArgs),
    /// Transfer a suspected crime to public security (两法衔接).
    Transfer(TransferArgs),
    /// Public security accepts or rejects a transfer.
    Answer(AnswerArgs),
    /// Close a task.
    Close(CloseArgs),
}

/// Where the enforcement service is and who we are.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("endpoint", |a| a
    .env("HAZCHEM_ENFORCEMENT_ENDPOINT")
    .default_value(hazchem_pki::services::default_endpoint(hazchem_enforcement::SERVICE_NAME))
    .help("The enforcement service's address")))]
pub struct EnforcementConnection {
    #[command(flatten)]
    pub connection: Connection,
    /// Print responses as canonical protobuf JSON.
    #[arg(long)]
    pub json: bool,
}

impl EnforcementConnection {
    async fn client(&self) -> Result<EnforcementServiceClient<Channel>> {
        Ok(
            EnforcementServiceClient::new(self.connection.channel().await?)
                .max_decoding_message_size(64 << 20),
        )
    }
}

/// A command's connection, task and command id.
#[derive(Debug, Args)]
pub struct CommandArgs {
    #[command(flatten)]
    pub connection: EnforcementConnection,
    /// The task.
    pub task: String,
    /// The command id (retry with the same id to be safe); a fresh one by default.
    #[arg(long)]
    pub command_id: Option<String>,
}

impl CommandArgs {
    fn command_id(&self) -> String {
        self.command_id.clone().unwrap_or_else(|| {
            format!(
                "cli-{}-{}",
                std::process::id(),
                now().timestamp_nanos_opt().unwrap_or_default()
            )
        })
    }
}

#[derive(Debug, Args)]
pub struct TaskArgs {
    #[command(flatten)]
    pub connection: EnforcementConnection,
    /// The task.
    pub task: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connection: EnforcementConnection,
    /// Tasks this department leads, takes part in, or (psb) has a case transferred in.
    #[arg(long)]
    pub department: Option<Department>,
    /// Only tasks in this state (planned, drawn, notified, on_site, findings_recorded, ...).
    #[arg(long, value_parser = parse_state)]
    pub state: Option<v1::TaskState>,
    /// Only tasks with this target (USCC).
    #[arg(long)]
    pub target: Option<String>,
    /// Only tasks past their deadline and not closed.
    #[arg(long)]
    pub overdue: bool,
}

#[derive(Debug, Args)]
pub struct RedrawArgs {
    #[command(flatten)]
    pub connection: EnforcementConnection,
    /// The task whose recorded draw to re-run.
    #[arg(required_unless_present = "file")]
    pub task: Option<String>,
    /// Re-run a `TaskDrawn` (canonical protobuf JSON, for example from `hazchem tail`) without asking
    /// the service.
    #[arg(long, conflicts_with = "task")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    #[arg(long)]
    pub title: String,
    /// A participating department (repeat).
    #[arg(long = "participant")]
    pub participants: Vec<Department>,
    /// A target named up front: USCC, or USCC=name (repeat).
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// The legal instrument, e.g. 《危险化学品安全管理条例》.
    #[arg(long)]
    pub instrument: String,
    #[arg(long, default_value = "")]
    pub article: String,
    #[arg(long = "instrument-version", default_value = "")]
    pub instrument_version: String,
    /// Why: a free text.
    #[arg(long, group = "why", required = true)]
    pub reason: Option<String>,
    /// Why: the warning the task answers.
    #[arg(long, group = "why")]
    pub warning: Option<String>,
    /// Why: the event the task answers.
    #[arg(long, group = "why")]
    pub event: Option<String>,
    /// The deadline (RFC 3339).
    #[arg(long)]
    pub deadline: DateTime<Utc>,
}

#[derive(Debug, Args)]
pub struct DrawArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    /// How many targets to draw.
    #[arg(long = "targets", default_value_t = 3)]
    pub target_count: u32,
    /// How many inspectors to draw from each department (at least 2).
    #[arg(long = "inspectors", default_value_t = 2)]
    pub inspectors_per_department: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdvanceTo {
    Notified,
    OnSite,
}

#[derive(Debug, Args)]
pub struct AdvanceArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    #[arg(long)]
    pub to: AdvanceTo,
    #[arg(long, default_value = "")]
    pub note: String,
}

#[derive(Debug, Args)]
pub struct FindingsArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    /// A finding: USCC:SEVERITY:DESCRIPTION, severity minor, major or major_hazard (repeat). A target
    /// without findings: USCC alone.
    #[arg(long = "finding", required = true)]
    pub findings: Vec<String>,
    /// The findings ground a suspicion of crime, decided at this instant (RFC 3339; `now` for now).
    #[arg(long, value_parser = parse_instant)]
    pub crime_suspected_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct RectifyArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    #[arg(long)]
    pub requirements: String,
    /// RFC 3339.
    #[arg(long)]
    pub deadline: DateTime<Utc>,
}

#[derive(Debug, Args)]
pub struct RecheckArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    #[arg(long, group = "outcome", required = true)]
    pub passed: bool,
    #[arg(long, group = "outcome")]
    pub failed: bool,
    #[arg(long, default_value = "")]
    pub note: String,
}

#[derive(Debug, Args)]
pub struct PenaltyArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    #[arg(long)]
    pub decision_number: String,
    /// The penalised enterprise (USCC), a target of the task.
    #[arg(long)]
    pub enterprise: String,
    #[arg(long)]
    pub reason: String,
    /// Fine in yuan.
    #[arg(long, default_value_t = 0.0)]
    pub fine: f64,
    /// When it was decided (RFC 3339; default now).
    #[arg(long, value_parser = parse_instant)]
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    #[arg(long)]
    pub case_number: String,
    /// When the crime was suspected (RFC 3339; default: as the findings recorded it, else now). The
    /// transfer is due within 24 hours of it.
    #[arg(long, value_parser = parse_instant)]
    pub decided_at: Option<DateTime<Utc>>,
    #[arg(long, default_value = "")]
    pub summary: String,
}

#[derive(Debug, Args)]
pub struct AnswerArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    #[arg(long, group = "answer", required = true)]
    pub accept: bool,
    #[arg(long, group = "answer")]
    pub reject: bool,
    #[arg(long, default_value = "")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct CloseArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    #[arg(long, default_value = "")]
    pub summary: String,
}

fn parse_state(text: &str) -> Result<v1::TaskState, String> {
    let name = format!(
        "TASK_STATE_{}",
        text.trim_start_matches("TASK_STATE_")
            .replace('-', "_")
            .to_uppercase()
    );
    v1::TaskState::from_str_name(&name)
        .filter(|s| *s != v1::TaskState::Unspecified)
        .ok_or_else(|| {
            format!("{text:?} is not a task state (planned, drawn, notified, on_site, ...)")
        })
}

/// Now, for the person at the command line: `now` and the default instants of the commands (the
/// service checks them against its own clock).
#[allow(clippy::disallowed_methods)] // CLI: a person's "now" is the wall clock
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now()
}

pub(crate) fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    if text == "now" {
        return Ok(now());
    }
    text.parse::<DateTime<Utc>>().map_err(|e| {
        format!("{text:?}: an RFC 3339 instant such as 2026-11-30T16:00:00Z, or now ({e})")
    })
}

fn dept(d: Department) -> i32 {
    v1::Department::from(d) as i32
}

/// A refusal as an error: the code, the message (it names the state and the departments) and the
/// standard details.
pub(crate) fn refused(status: tonic::Status) -> anyhow::Error {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let details = status.get_error_details();
    if let Some(info) = details.error_info() {
        let mut metadata: Vec<_> = info.metadata.iter().collect();
        metadata.sort();
        let _ = write!(text, "\n  {}", info.reason);
        for (k, v) in metadata {
            let _ = write!(text, "\n    {k}: {v}");
        }
    }
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            let _ = write!(text, "\n  {} ({}): {}", v.field, v.reason, v.description);
        }
    }
    if let Some(failure) = details.precondition_failure() {
        for v in &failure.violations {
            let _ = write!(text, "\n  {} {}: {}", v.r#type, v.subject, v.description);
        }
    }
    anyhow::anyhow!(text)
}

pub async fn run(args: EnforcementArgs) -> Result<()> {
    use EnforcementCommand as C;
    match args.command {
        C::List(a) => list(a).await,
        C::Show(a) => show(a).await,
        C::Redraw(a) => redraw(a).await,
        C::Open(a) => open(a).await,
        C::Draw(a) => {
            let request = v1::DrawTaskRequest {
                command_id: a.command.command_id(),
                task_id: a.command.task.clone(),
                target_count: a.target_count,
                inspectors_per_department: a.inspectors_per_department,
            };
            let mut client = a.command.connection.client().await?;
            let task = client
                .draw_task(request)
                .await
                .map_err(refused)?
                .into_inner()
                .task;
            print_task(&a.command.connection, task)
        }
        C::Advance(a) => {
            let request = v1::AdvanceTaskRequest {
                command_id: a.command.command_id(),
                task_id: a.command.task.clone(),
                to_state: match a.to {
                    AdvanceTo::Notified => v1::TaskState::Notified,
                    AdvanceTo::OnSite => v1::TaskState::OnSite,
                } as i32,
                note: a.note,
            };
            let mut client = a.command.connection.client().await?;
            let task = client
                .advance_task(request)
                .await
                .map_err(refused)?
                .into_inner()
                .task;
            print_task(&a.command.connection, task)
        }
        C::Findings(a) => findings(a).await,
        C::Rectify(a) => {
            let request = v1::OrderRectificationRequest {
                command_id: a.command.command_id(),
                task_id: a.command.task.clone(),
                requirements: a.requirements,
                deadline: Some(timestamp(a.deadline)),
            };
            let mut client = a.command.connection.client().await?;
            let task = client
                .order_rectification(request)
                .await
                .map_err(refused)?
                .into_inner()
                .task;
            print_task(&a.command.connection, task)
        }
        C::Recheck(a) => {
            let request = v1::RecordRecheckRequest {
                command_id: a.command.command_id(),
                task_id: a.command.task.clone(),
                passed: a.passed && !a.failed,
                note: a.note,
            };
            let mut client = a.command.connection.client().await?;
            let task = client
                .record_recheck(request)
                .await
                .map_err(refused)?
                .into_inner()
                .task;
            print_task(&a.command.connection, task)
        }
        C::Penalty(a) => {
            let request = v1::DecidePenaltyRequest {
                command_id: a.command.command_id(),
                task_id: a.command.task.clone(),
                penalty: Some(v1::PenaltyDecided {
                    decision_number: a.decision_number,
                    enterprise: Some(v1::EnterpriseRef {
                        uscc: a.enterprise,
                        name: String::new(),
                    }),
                    reason: a.reason,
                    fine_yuan: a.fine,
                    task_id: a.command.task.clone(),
                    decided_at: Some(timestamp(a.decided_at.unwrap_or_else(now))),
                }),
            };
            let mut client = a.command.connection.client().await?;
            let task = client
                .decide_penalty(request)
                .await
                .map_err(refused)?
                .into_inner()
                .task;
            print_task(&a.command.connection, task)
        }
        C::Transfer(a) => {
            // By default the decision is the one the findings recorded, else now.
            let decided_at = match a.decided_at {
                Some(t) => timestamp(t),
                None => get(&a.command.connection, &a.command.task)
                    .await?
                    .crime_suspected_at
                    .unwrap_or_else(|| timestamp(now())),
            };
            let request = v1::TransferCaseRequest {
                command_id: a.command.command_id(),
                task_id: a.command.task.clone(),
                case_number: a.case_number,
                decided_at: Some(decided_at),
                summary: a.summary,
            };
            let mut client = a.command.connection.client().await?;
            let task = client
                .transfer_case(request)
                .await
                .map_err(refused)?
                .into_inner()
                .task;
            print_task(&a.command.connection, task)
        }
        C::Answer(a) => {
            let request = v1::AnswerTransferRequest {
                command_id: a.command.command_id(),
                task_id: a.command.task.clone(),
                accepted: a.accept && !a.reject,
                reason: a.reason,
            };
            let mut client = a.command.connection.client().await?;
            let task = client
                .answer_transfer(request)
                .await
                .map_err(refused)?
                .into_inner()
                .task;
            print_task(&a.command.connection, task)
        }
        C::Close(a) => {
            let request = v1::CloseTaskRequest {
                command_id: a.command.command_id(),
                task_id: a.command.task.clone(),
                summary: a.summary,
            };
            let mut client = a.command.connection.client().await?;
            let task = client
                .close_task(request)
                .await
                .map_err(refused)?
                .into_inner()
                .task;
            print_task(&a.command.connection, task)
        }
    }
}

async fn open(a: OpenArgs) -> Result<()> {
    use v1::task_reason::Reason;
    let targets = a
        .targets
        .iter()
        .map(|t| {
            let (uscc, name) = t.split_once('=').unwrap_or((t.as_str(), ""));
            v1::EnterpriseRef {
                uscc: uscc.to_owned(),
                name: name.to_owned(),
            }
        })
        .collect();
    let reason = match (a.reason, a.warning, a.event) {
        (Some(text), _, _) => Reason::Text(text),
        (_, Some(w), _) => Reason::WarningId(w),
        (_, _, Some(e)) => Reason::EventId(e),
        _ => bail!("say why: --reason, --warning or --event"),
    };
    let request = v1::OpenTaskRequest {
        command_id: a.command.command_id(),
        task_id: a.command.task.clone(),
        title: a.title,
        participants: a.participants.into_iter().map(dept).collect(),
        targets,
        legal_basis: Some(v1::LegalBasis {
            instrument: a.instrument,
            article: a.article,
            version: a.instrument_version,
        }),
        reason: Some(v1::TaskReason {
            reason: Some(reason),
        }),
        deadline: Some(timestamp(a.deadline)),
    };
    let mut client = a.command.connection.client().await?;
    let task = client
        .open_task(request)
        .await
        .map_err(refused)?
        .into_inner()
        .task;
    print_task(&a.command.connection, task)
}

async fn findings(a: FindingsArgs) -> Result<()> {
    let mut targets: Vec<v1::TargetFindings> = Vec::new();
    for spec in &a.findings {
        let mut parts = spec.splitn(3, ':');
        let uscc = parts.next().unwrap_or_default().to_owned();
        let finding = match (parts.next(), parts.next()) {
            (None, _) => None,
            (Some(severity), Some(description)) => {
                let severity = v1::FindingSeverity::from_str_name(&format!(
                    "FINDING_SEVERITY_{}",
                    severity.to_uppercase()
                ))
                .filter(|s| *s != v1::FindingSeverity::Unspecified)
                .with_context(|| {
                    format!("{spec:?}: the severity is minor, major or major_hazard")
                })?;
                Some(v1::Finding {
                    code: String::new(),
                    description: description.to_owned(),
                    severity: severity as i32,
                })
            }
            (Some(_), None) => bail!("{spec:?}: expected USCC:SEVERITY:DESCRIPTION"),
        };
        let slot = match targets.iter().position(|t| t.uscc == uscc) {
            Some(i) => i,
            None => {
                targets.push(v1::TargetFindings {
                    uscc,
                    findings: Vec::new(),
                });
                targets.len() - 1
            }
        };
        targets[slot].findings.extend(finding);
    }
    let request = v1::RecordFindingsRequest {
        command_id: a.command.command_id(),
        task_id: a.command.task.clone(),
        targets,
        crime_suspected_at: a.crime_suspected_at.map(timestamp),
    };
    let mut client = a.command.connection.client().await?;
    let task = client
        .record_findings(request)
        .await
        .map_err(refused)?
        .into_inner()
        .task;
    print_task(&a.command.connection, task)
}

async fn get(connection: &EnforcementConnection, task_id: &str) -> Result<v1::JointTask> {
    let mut client = connection.client().await?;
    client
        .get_task(v1::GetTaskRequest {
            task_id: task_id.to_owned(),
        })
        .await
        .map_err(refused)?
        .into_inner()
        .task
        .context("the service answered without a task")
}

async fn list(a: ListArgs) -> Result<()> {
    let mut client = a.connection.client().await?;
    let mut page_token = String::new();
    let mut out = std::io::stdout().lock();
    loop {
        let response = client
            .list_tasks(v1::ListTasksRequest {
                department: a.department.map_or(0, dept),
                state: a.state.map_or(0, |s| s as i32),
                target_uscc: a.target.clone().unwrap_or_default(),
                overdue_only: a.overdue,
                page_size: 0,
                page_token: page_token.clone(),
            })
            .await
            .map_err(refused)?
            .into_inner();
        for task in &response.tasks {
            let line = if a.connection.json {
                hazchem_proto::to_json(task)?.to_string()
            } else {
                format!(
                    "{:<24} {:<22} lead {:<10} due {}{}  {}",
                    task.task_id,
                    state_name(task.state),
                    department_name(task.lead),
                    task.deadline.as_ref().map(instant_text).unwrap_or_default(),
                    if task.overdue { " OVERDUE" } else { "" },
                    task.title
                )
            };
            std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes())?;
        }
        if response.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = response.next_page_token;
    }
}

async fn show(a: TaskArgs) -> Result<()> {
    let task = get(&a.connection, &a.task).await?;
    print_task(&a.connection, Some(task))
}

fn state_name(state: i32) -> &'static str {
    v1::TaskState::try_from(state)
        .map(|s| s.as_str_name().trim_start_matches("TASK_STATE_"))
        .unwrap_or("?")
}

pub(crate) fn department_name(d: i32) -> &'static str {
    hazchem_proto::department_from_i32(d).map_or("-", |d| d.code())
}

pub(crate) fn instant_text(t: &prost_types::Timestamp) -> String {
    hazchem_proto::time::datetime(t)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn print_task(connection: &EnforcementConnection, task: Option<v1::JointTask>) -> Result<()> {
    let task = task.context("the service answered without a task")?;
    if connection.json {
        println!("{}", hazchem_proto::to_json(&task)?);
        return Ok(());
    }
    let participants: Vec<&str> = task
        .participants
        .iter()
        .map(|d| department_name(*d))
        .collect();
    println!("task {}: {}", task.task_id, task.title);
    println!(
        "  state {}{}, lead {}, participants {}",
        state_name(task.state),
        if task.overdue { " (OVERDUE)" } else { "" },
        department_name(task.lead),
        if participants.is_empty() {
            "none".to_owned()
        } else {
            participants.join(", ")
        }
    );
    println!(
        "  deadline {}",
        task.deadline.as_ref().map(instant_text).unwrap_or_default()
    );
    if let Some(basis) = &task.legal_basis {
        println!(
            "  legal basis {} {} {}",
            basis.instrument, basis.article, basis.version
        );
    }
    for t in &task.targets {
        println!("  target {} {}", t.uscc, t.name);
    }
    if let Some(drawn) = &task.draw {
        for pool in &drawn.inspectors {
            let names: Vec<String> = pool
                .drawn
                .iter()
                .map(|p| format!("{} ({})", p.name, p.certificate_number))
                .collect();
            println!(
                "  inspectors {}: {}",
                department_name(pool.department),
                names.join(", ")
            );
        }
    }
    for t in &task.findings {
        for f in &t.findings {
            println!(
                "  finding {} {}: {}",
                t.uscc,
                v1::FindingSeverity::try_from(f.severity)
                    .map(|s| s.as_str_name().trim_start_matches("FINDING_SEVERITY_"))
                    .unwrap_or("?"),
                f.description
            );
        }
    }
    if let Some(at) = &task.crime_suspected_at {
        println!("  crime suspected at {}", instant_text(at));
    }
    for p in &task.penalties {
        println!(
            "  penalty {} on {}: {} yuan",
            p.decision_number,
            p.enterprise.as_ref().map_or("", |e| e.uscc.as_str()),
            p.fine_yuan
        );
    }
    if !task.case_number.is_empty() {
        println!("  case {} transferred to public security", task.case_number);
    }
    if !task.history.is_empty() {
        println!("  history:");
    }
    for h in &task.history {
        println!(
            "    #{:<6} {} {:<22} {:<10} {}",
            h.sequence,
            h.at.as_ref().map(instant_text).unwrap_or_default(),
            state_name(h.state),
            department_name(h.actor),
            h.summary
        );
    }
    Ok(())
}

async fn redraw(a: RedrawArgs) -> Result<()> {
    let drawn = match (&a.file, &a.task) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            hazchem_proto::from_json::<v1::TaskDrawn>(&text)?
        }
        (None, Some(task_id)) => get(&a.connection, task_id)
            .await?
            .draw
            .with_context(|| format!("task {task_id} has not been drawn"))?,
        (None, None) => bail!("name a task, or give --file"),
    };
    let record = wire::draw_from_proto(&drawn).map_err(|violations| {
        let text: Vec<String> = violations
            .iter()
            .map(|v| format!("{} ({}): {}", v.field, v.rule, v.description))
            .collect();
        anyhow::anyhow!("the recorded draw is malformed: {}", text.join("; "))
    })?;
    let outcome = draw::verify(&record);
    if a.connection.json {
        let redrawn = draw::redraw(&record).ok().map(|r| wire::draw_to_proto(&r));
        println!(
            "{}",
            serde_json::json!({
                "taskId": drawn.task_id,
                "reproduced": outcome.is_ok(),
                "recorded": hazchem_proto::to_json(&drawn)?,
                "redrawn": redrawn.as_ref().map(hazchem_proto::to_json).transpose()?,
            })
        );
    } else {
        print_redraw(&drawn.task_id, &record);
    }
    match outcome {
        Ok(_) => {
            if !a.connection.json {
                println!("the redraw reproduces the recorded draw exactly");
            }
            Ok(())
        }
        Err(problems) => {
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            bail!(
                "the redraw differs from the recorded draw:\n  {}",
                text.join("\n  ")
            )
        }
    }
}

fn print_redraw(task_id: &str, record: &draw::DrawRecord) {
    let usccs = |v: &[hazchem_domain::Uscc]| {
        v.iter()
            .map(hazchem_domain::Uscc::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "task {task_id}: {}, seed {}, {} candidates (total weight {}), {} targets",
        record.algorithm,
        hex::encode(&record.seed),
        record.candidates.len(),
        record
            .candidates
            .iter()
            .map(|c| u64::from(c.weight))
            .sum::<u64>(),
        record.target_count
    );
    let redrawn = draw::redraw(record);
    println!("  recorded targets: {}", usccs(&record.drawn_targets));
    match &redrawn {
        Ok(r) => println!("  redrawn targets:  {}", usccs(&r.drawn_targets)),
        Err(e) => println!("  cannot redraw: {e}"),
    }
    for pool in &record.pools {
        let names = |v: &[hazchem_enforcement::Inspector]| {
            v.iter()
                .map(|i| i.certificate_number.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  inspectors of {} ({} in the register, {} drawn):",
            pool.department,
            pool.candidates.len(),
            pool.count
        );
        println!("    recorded {}", names(&pool.drawn));
        if let Ok(r) = &redrawn
            && let Some(again) = r.pools.iter().find(|p| p.department == pool.department)
        {
            println!("    redrawn  {}", names(&again.drawn));
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use hazchem_enforcement::draw::{Candidate, DrawInput, Inspector};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: EnforcementCommand,
    }

    fn parse(args: &[&str]) -> EnforcementCommand {
        Cli::try_parse_from(std::iter::once("enforcement").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
    }

    #[test]
    fn the_service_endpoint_is_the_default_and_states_parse() {
        let EnforcementCommand::List(list) = parse(&["list", "--state", "on_site", "--overdue"])
        else {
            panic!("not list");
        };
        assert_eq!(
            list.connection.connection.endpoint,
            "https://localhost:7446"
        );
        assert_eq!(list.state, Some(v1::TaskState::OnSite));
        assert!(list.overdue);
        assert_eq!(
            parse_state("TASK_STATE_CASE_TRANSFERRED"),
            Ok(v1::TaskState::CaseTransferred)
        );
        assert!(parse_state("unspecified").is_err());
        let EnforcementCommand::Draw(draw) = parse(&[
            "draw",
            "t-1",
            "--endpoint",
            "https://localhost:9999",
            "--targets",
            "5",
        ]) else {
            panic!("not draw");
        };
        assert_eq!(
            draw.command.connection.connection.endpoint,
            "https://localhost:9999"
        );
        assert_eq!((draw.target_count, draw.inspectors_per_department), (5, 2));
        assert!(
            Cli::try_parse_from(["enforcement", "recheck", "t-1", "--passed", "--failed"]).is_err(),
            "passed or failed, not both"
        );
    }

    fn recorded() -> v1::TaskDrawn {
        let uscc = |n: u32| hazchem_domain::Uscc::with_check(&format!("91320600MA{n:07}")).unwrap();
        let record = draw::draw(DrawInput {
            seed: vec![9; 32],
            candidates: (0..12)
                .map(|n| Candidate {
                    uscc: uscc(n),
                    weight: 1 + n % 3,
                    factors: vec![],
                })
                .collect(),
            target_count: 3,
            pools: vec![(
                Department::Emergency,
                (0..5)
                    .map(|n| Inspector {
                        certificate_number: format!("EM-{n}"),
                        name: format!("inspector {n}"),
                    })
                    .collect(),
                2,
            )],
        })
        .unwrap();
        v1::TaskDrawn {
            task_id: "t-1".into(),
            ..wire::draw_to_proto(&record)
        }
    }

    async fn redraw_file(drawn: &v1::TaskDrawn) -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("drawn.json");
        std::fs::write(&path, hazchem_proto::to_json(drawn)?.to_string())?;
        let EnforcementCommand::Redraw(mut args) = parse(&["redraw", "--file", "x"]) else {
            panic!("not redraw");
        };
        args.file = Some(path);
        redraw(args).await
    }

    #[tokio::test]
    async fn redraw_succeeds_on_a_record_and_fails_when_a_candidate_changed() {
        let drawn = recorded();
        redraw_file(&drawn).await.unwrap();
        let mut altered = drawn.clone();
        let victim = altered.drawn_targets[0].clone();
        let candidate = altered
            .candidates
            .iter_mut()
            .find(|c| c.uscc == victim)
            .unwrap();
        candidate.uscc = hazchem_domain::Uscc::with_check("91320699MA0000001")
            .unwrap()
            .to_string();
        altered.candidates.sort_by(|a, b| a.uscc.cmp(&b.uscc));
        let error = redraw_file(&altered).await.unwrap_err().to_string();
        assert!(error.contains("differs"), "{error}");
        assert!(error.contains("targets differ"), "{error}");
    }
}
