//! `hazchem warnings`: follow and answer early warnings (预警响应) on the warning service — `list` (by
//! level, state, department addressed, enterprise, rule, raised time), `show` (a warning with its
//! history), `ack` and `close` (as the `--as` department, which must be addressed). Text for people,
//! canonical protobuf JSON with `--json`. Refusals print the code, the message and the standard details
//! and exit non-zero.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use hazchem_domain::Department;
use hazchem_proto::v1;
use hazchem_proto::v1::warning_service_client::WarningServiceClient;
use tonic::transport::Channel;

use crate::client::Connection;
use crate::enforcement::{department_name, instant_text, parse_instant, refused};

/// `hazchem warnings`.
#[derive(Debug, Args)]
pub struct WarningsArgs {
    #[command(subcommand)]
    pub command: WarningsCommand,
}

#[derive(Debug, Subcommand)]
pub enum WarningsCommand {
    /// Warnings by level, state, department addressed, enterprise, rule and raised time.
    List(ListArgs),
    /// A warning: its state, who is awaited, who may act, and its history.
    Show(WarningArgs),
    /// Acknowledge a warning addressed to you (the --as department).
    Ack(AckArgs),
    /// Close a warning addressed to you (the --as department).
    Close(CloseArgs),
}

/// Where the warning service is and who we are.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("endpoint", |a| a
    .env("HAZCHEM_WARNING_ENDPOINT")
    .default_value(hazchem_pki::services::default_endpoint(hazchem_warning::SERVICE_NAME))
    .help("The warning service's address")))]
pub struct WarningConnection {
    #[command(flatten)]
    pub connection: Connection,
    /// Print responses as canonical protobuf JSON.
    #[arg(long)]
    pub json: bool,
}

impl WarningConnection {
    async fn client(&self) -> Result<WarningServiceClient<Channel>> {
        Ok(WarningServiceClient::new(self.connection.channel().await?)
            .max_decoding_message_size(64 << 20))
    }
}

#[derive(Debug, Args)]
pub struct WarningArgs {
    #[command(flatten)]
    pub connection: WarningConnection,
    /// The warning (wrn-...).
    pub warning: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connection: WarningConnection,
    /// Only warnings at this level: red (一级), orange (二级), yellow (三级) or blue (四级).
    #[arg(long, value_parser = parse_level)]
    pub level: Option<v1::WarningLevel>,
    /// Only warnings in this state: open, escalated, acknowledged or closed.
    #[arg(long, value_parser = parse_state)]
    pub state: Option<v1::WarningState>,
    /// Only warnings addressed to this department.
    #[arg(long)]
    pub department: Option<Department>,
    /// Only warnings about this enterprise (USCC).
    #[arg(long)]
    pub enterprise: Option<String>,
    /// Only warnings raised by this rule (e.g. alarm.storm, credit.conflict).
    #[arg(long)]
    pub rule: Option<String>,
    /// Only warnings raised at or after this instant (RFC 3339, or now).
    #[arg(long, value_parser = parse_instant)]
    pub from: Option<DateTime<Utc>>,
    /// Only warnings raised before this instant (RFC 3339, or now).
    #[arg(long, value_parser = parse_instant)]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    #[command(flatten)]
    pub warning: WarningArgs,
    /// A note recorded with the acknowledgement.
    #[arg(long, default_value = "")]
    pub note: String,
}

/// What `close` records when no reason is given (the contract requires one).
pub const DEFAULT_CLOSE_REASON: &str =
    "closed by the addressed department (hazchem warnings close)";

#[derive(Debug, Args)]
pub struct CloseArgs {
    #[command(flatten)]
    pub warning: WarningArgs,
    /// Why it is closed.
    #[arg(long, default_value = DEFAULT_CLOSE_REASON)]
    pub reason: String,
}

/// `red`, `WARNING_LEVEL_RED`, or the Chinese level (一级 .. 四级).
fn parse_level(text: &str) -> Result<v1::WarningLevel, String> {
    let name = match text {
        "一级" => "RED".to_owned(),
        "二级" => "ORANGE".to_owned(),
        "三级" => "YELLOW".to_owned(),
        "四级" => "BLUE".to_owned(),
        other => other.trim_start_matches("WARNING_LEVEL_").to_uppercase(),
    };
    v1::WarningLevel::from_str_name(&format!("WARNING_LEVEL_{name}"))
        .filter(|l| *l != v1::WarningLevel::Unspecified)
        .ok_or_else(|| format!("{text:?} is not a warning level (red, orange, yellow, blue)"))
}

fn parse_state(text: &str) -> Result<v1::WarningState, String> {
    let name = text
        .trim_start_matches("WARNING_STATE_")
        .replace('-', "_")
        .to_uppercase();
    v1::WarningState::from_str_name(&format!("WARNING_STATE_{name}"))
        .filter(|s| *s != v1::WarningState::Unspecified)
        .ok_or_else(|| {
            format!("{text:?} is not a warning state (open, escalated, acknowledged, closed)")
        })
}

fn level_name(level: i32) -> &'static str {
    v1::WarningLevel::try_from(level)
        .map(|l| l.as_str_name().trim_start_matches("WARNING_LEVEL_"))
        .unwrap_or("?")
}

fn state_name(state: i32) -> &'static str {
    v1::WarningState::try_from(state)
        .map(|s| s.as_str_name().trim_start_matches("WARNING_STATE_"))
        .unwrap_or("?")
}

fn departments(list: &[i32]) -> String {
    if list.is_empty() {
        return "-".to_owned();
    }
    list.iter()
        .map(|d| department_name(*d))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn run(args: WarningsArgs) -> Result<()> {
    use WarningsCommand as C;
    match args.command {
        C::List(a) => list(a).await,
        C::Show(a) => {
            let mut client = a.connection.client().await?;
            let warning = client
                .get_warning(v1::GetWarningRequest {
                    warning_id: a.warning.clone(),
                })
                .await
                .map_err(refused)?
                .into_inner()
                .warning;
            print_warning(&a.connection, warning)
        }
        C::Ack(a) => {
            let mut client = a.warning.connection.client().await?;
            let warning = client
                .acknowledge_warning(v1::AcknowledgeWarningRequest {
                    warning_id: a.warning.warning.clone(),
                    note: a.note,
                })
                .await
                .map_err(refused)?
                .into_inner()
                .warning;
            print_warning(&a.warning.connection, warning)
        }
        C::Close(a) => {
            let mut client = a.warning.connection.client().await?;
            let warning = client
                .close_warning(v1::CloseWarningRequest {
                    warning_id: a.warning.warning.clone(),
                    reason: a.reason,
                })
                .await
                .map_err(refused)?
                .into_inner()
                .warning;
            print_warning(&a.warning.connection, warning)
        }
    }
}

async fn list(a: ListArgs) -> Result<()> {
    let ts = hazchem_proto::time::timestamp;
    let mut client = a.connection.client().await?;
    let mut page_token = String::new();
    let mut out = std::io::stdout().lock();
    loop {
        let response = client
            .list_warnings(v1::ListWarningsRequest {
                level: a.level.map_or(0, |l| l as i32),
                state: a.state.map_or(0, |s| s as i32),
                department: a.department.map_or(0, |d| v1::Department::from(d) as i32),
                enterprise_uscc: a.enterprise.clone().unwrap_or_default(),
                rule_id: a.rule.clone().unwrap_or_default(),
                raised_from: a.from.map(ts),
                raised_until: a.until.map(ts),
                page_size: 0,
                page_token: page_token.clone(),
            })
            .await
            .map_err(refused)?
            .into_inner();
        for w in &response.warnings {
            let line = if a.connection.json {
                hazchem_proto::to_json(w)?.to_string()
            } else {
                list_line(w)
            };
            std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes())?;
        }
        if response.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = response.next_page_token;
    }
}

/// One warning on one line: id, level, state, rule, enterprise, when, who is awaited, title.
fn list_line(w: &v1::Warning) -> String {
    format!(
        "{:<20} {:<6} {:<12} {:<34} {:<18} raised {}{}  awaiting {}  {}",
        w.warning_id,
        level_name(w.level),
        state_name(w.state),
        w.rule_id,
        w.enterprise.as_ref().map_or("-", |e| e.uscc.as_str()),
        w.raised_at.as_ref().map(instant_text).unwrap_or_default(),
        if w.overdue { " OVERDUE" } else { "" },
        departments(&w.awaiting),
        w.title
    )
}

fn print_warning(connection: &WarningConnection, warning: Option<v1::Warning>) -> Result<()> {
    let w = warning.context("the service answered without a warning")?;
    if connection.json {
        println!("{}", hazchem_proto::to_json(&w)?);
        return Ok(());
    }
    println!("warning {}: {}", w.warning_id, w.title);
    println!(
        "  level {}, state {}{}, rule {}, raised by {}{}",
        level_name(w.level),
        state_name(w.state),
        if w.overdue { " (OVERDUE)" } else { "" },
        w.rule_id,
        w.raised_by,
        match w.escalations {
            0 => String::new(),
            n => format!(", escalated {n}×"),
        }
    );
    if let Some(e) = &w.enterprise {
        println!("  enterprise {} {}", e.uscc, e.name);
    }
    println!(
        "  raised {}, acknowledge by {}{}",
        w.raised_at.as_ref().map(instant_text).unwrap_or_default(),
        w.acknowledge_by
            .as_ref()
            .map_or_else(|| "-".to_owned(), instant_text),
        w.closed_at
            .as_ref()
            .map(|t| format!(", closed {}", instant_text(t)))
            .unwrap_or_default()
    );
    println!(
        "  addressed to {}; acknowledged by {}; awaiting {}",
        departments(&w.addressed_to),
        departments(&w.acknowledged_by),
        departments(&w.awaiting)
    );
    println!(
        "  may acknowledge {}; may close {}",
        departments(&w.may_acknowledge),
        departments(&w.may_close)
    );
    if let Some(basis) = &w.legal_basis {
        println!(
            "  legal basis {} {} {}",
            basis.instrument, basis.article, basis.version
        );
    }
    if !w.description.is_empty() {
        println!("  {}", w.description);
    }
    if !w.related_event_ids.is_empty() {
        println!("  related events {}", w.related_event_ids.join(", "));
    }
    if !w.history.is_empty() {
        println!("  history:");
    }
    for h in &w.history {
        let by = match hazchem_proto::department_from_i32(h.department) {
            Ok(d) => d.code().to_owned(),
            Err(_) => h.publisher.clone(),
        };
        println!(
            "    #{:<6} {} {:<20} {:<6} {:<10} {}",
            h.sequence,
            h.at.as_ref().map(instant_text).unwrap_or_default(),
            h.event_type,
            level_name(h.level),
            by,
            h.note
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_states_parse_by_name() {
        assert_eq!(parse_level("red"), Ok(v1::WarningLevel::Red));
        assert_eq!(parse_level("二级"), Ok(v1::WarningLevel::Orange));
        assert_eq!(
            parse_level("WARNING_LEVEL_BLUE"),
            Ok(v1::WarningLevel::Blue)
        );
        assert!(parse_level("unspecified").is_err());
        assert!(parse_level("purple").is_err());
        assert_eq!(parse_state("open"), Ok(v1::WarningState::Open));
        assert_eq!(
            parse_state("Acknowledged"),
            Ok(v1::WarningState::Acknowledged)
        );
        assert!(parse_state("unspecified").is_err());
        assert!(parse_state("done").is_err());
    }
}
