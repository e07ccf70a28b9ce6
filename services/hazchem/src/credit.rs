//! `hazchem credit`: ask the credit service which sanctions bind an enterprise (`check`), how its listings
//! went (`history`), and which listings a department decided (`list`). Every query can be asked as of a
//! past instant. Output is text for people, or canonical protobuf JSON with `--json`.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use hazchem_pki::Principal;
use hazchem_proto::v1;
use hazchem_proto::v1::credit_service_client::CreditServiceClient;

use crate::client::{Connection, parse_principal};

/// `hazchem credit`.
#[derive(Debug, Args)]
pub struct CreditArgs {
    #[command(subcommand)]
    pub command: CreditCommand,
}

#[derive(Debug, Subcommand)]
pub enum CreditCommand {
    /// Which credit listings are active for an enterprise, and which measures bind a department.
    Check(CheckArgs),
    /// Every listing of an enterprise with its changes (listed, repaired, restored, expired).
    History(HistoryArgs),
    /// Listings by department, list type and status.
    List(ListArgs),
}

/// Where the credit service is and who we are.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("endpoint", |a| a
    .env("HAZCHEM_CREDIT_ENDPOINT")
    .default_value(hazchem_pki::services::default_endpoint(hazchem_credit::SERVICE_NAME))
    .help("The credit service's address")))]
pub struct CreditConnection {
    #[command(flatten)]
    pub connection: Connection,
    /// Print the response as canonical protobuf JSON.
    #[arg(long)]
    pub json: bool,
}

impl CreditConnection {
    async fn client(&self) -> Result<CreditServiceClient<tonic::transport::Channel>> {
        Ok(CreditServiceClient::new(self.connection.channel().await?))
    }

    /// The department we act as, if --as names one.
    fn department(&self) -> Option<hazchem_domain::Department> {
        match self.connection.principal.as_deref().map(parse_principal) {
            Some(Ok(Principal::Department(d))) => Some(d),
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub connection: CreditConnection,
    /// The enterprise's unified social credit code.
    pub uscc: String,
    /// The department whose measures to show (default: the --as department).
    #[arg(long, value_name = "CODE")]
    pub department: Option<String>,
    /// The instant (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub connection: CreditConnection,
    /// The enterprise's unified social credit code.
    pub uscc: String,
    /// What the registry said at this instant (RFC 3339); default now.
    #[arg(long)]
    pub as_of: Option<DateTime<Utc>>,
}

/// A list type, as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListTypeArg {
    SeriousDishonest,
    KeySupervision,
    PublicExposure,
    JointPunishment,
}

/// A listing status, as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Active,
    Expired,
    Repaired,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connection: CreditConnection,
    /// Only listings decided by this department (code).
    #[arg(long, value_name = "CODE")]
    pub department: Option<String>,
    /// Only listings of this type.
    #[arg(long = "type", value_enum)]
    pub list_type: Option<ListTypeArg>,
    /// Only listings in this status at the instant.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// What the registry said at this instant (RFC 3339); default now.
    #[arg(long)]
    pub as_of: Option<DateTime<Utc>>,
    /// Stop after this many listings.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
}

pub async fn run(args: CreditArgs) -> Result<()> {
    match args.command {
        CreditCommand::Check(a) => check(a).await,
        CreditCommand::History(a) => history(a).await,
        CreditCommand::List(a) => list(a).await,
    }
}

fn department_arg(code: Option<&str>) -> Result<Option<v1::Department>> {
    code.map(|c| {
        let d: hazchem_domain::Department = c.parse()?;
        Ok(v1::Department::from(d))
    })
    .transpose()
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let mut message = format!("{:?}: {}", status.code(), status.message());
    let details = status.get_error_details();
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            let _ = write!(message, "\n  {}: {}", v.field, v.description);
        }
    }
    anyhow::anyhow!(message)
}

async fn check(args: CheckArgs) -> Result<()> {
    let department = match department_arg(args.department.as_deref())? {
        Some(d) => d,
        None => match args.connection.department() {
            Some(d) => v1::Department::from(d),
            None => bail!(
                "say which department's measures to show: --department <code> (or --as <department>)"
            ),
        },
    };
    let response = args
        .connection
        .client()
        .await?
        .check(v1::CheckRequest {
            uscc: args.uscc.clone(),
            department: department as i32,
            at: args.at.map(hazchem_proto::time::timestamp),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if args.connection.json {
        println!("{}", hazchem_proto::to_json(&response)?);
    } else {
        print!(
            "{}",
            render_check(&args.uscc, department, args.at, &response)
        );
    }
    Ok(())
}

async fn history(args: HistoryArgs) -> Result<()> {
    let response = args
        .connection
        .client()
        .await?
        .get_history(v1::GetHistoryRequest {
            uscc: args.uscc.clone(),
            as_of: args.as_of.map(hazchem_proto::time::timestamp),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if args.connection.json {
        println!("{}", hazchem_proto::to_json(&response)?);
    } else {
        print!(
            "{}",
            render_history(&args.uscc, args.as_of, &response.listings)
        );
    }
    Ok(())
}

async fn list(args: ListArgs) -> Result<()> {
    let mut client = args.connection.client().await?;
    let mut request = v1::ListListingsRequest {
        department: department_arg(args.department.as_deref())?.map_or(0, |d| d as i32),
        list_type: args.list_type.map_or(0, |t| match t {
            ListTypeArg::SeriousDishonest => v1::ListType::SeriousDishonest as i32,
            ListTypeArg::KeySupervision => v1::ListType::KeySupervision as i32,
            ListTypeArg::PublicExposure => v1::ListType::PublicExposure as i32,
            ListTypeArg::JointPunishment => v1::ListType::JointPunishment as i32,
        }),
        status: args.status.map_or(0, |s| match s {
            StatusArg::Active => v1::ListingStatus::Active as i32,
            StatusArg::Expired => v1::ListingStatus::Expired as i32,
            StatusArg::Repaired => v1::ListingStatus::Repaired as i32,
        }),
        as_of: args.as_of.map(hazchem_proto::time::timestamp),
        page_size: 1000.min(u32::try_from(args.limit).unwrap_or(1000)),
        page_token: String::new(),
    };
    let mut listings = Vec::new();
    loop {
        let page = client
            .list_listings(request.clone())
            .await
            .map_err(status_error)?
            .into_inner();
        listings.extend(page.listings);
        if page.next_page_token.is_empty() || listings.len() >= args.limit {
            break;
        }
        request.page_token = page.next_page_token;
    }
    listings.truncate(args.limit);
    if args.connection.json {
        let response = v1::ListListingsResponse {
            listings,
            next_page_token: String::new(),
        };
        println!("{}", hazchem_proto::to_json(&response)?);
    } else {
        let mut out = String::new();
        for l in &listings {
            out.push_str(&listing_line(l));
        }
        if listings.is_empty() {
            out.push_str("no listings\n");
        }
        print!("{out}");
    }
    Ok(())
}

fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(hazchem_proto::time::datetime).map_or_else(
        || "-".to_owned(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

fn department_code(value: i32) -> String {
    hazchem_proto::department_from_i32(value)
        .map_or_else(|_| "-".to_owned(), |d| d.code().to_owned())
}

fn list_type_name(value: i32) -> &'static str {
    match v1::ListType::try_from(value) {
        Ok(v1::ListType::SeriousDishonest) => "严重失信主体名单 serious-dishonest",
        Ok(v1::ListType::KeySupervision) => "重点监管 key supervision",
        Ok(v1::ListType::PublicExposure) => "公开曝光 public exposure",
        Ok(v1::ListType::JointPunishment) => "联合惩戒 joint punishment",
        _ => "unknown list",
    }
}

fn status_name(value: i32) -> &'static str {
    match v1::ListingStatus::try_from(value) {
        Ok(v1::ListingStatus::Active) => "ACTIVE",
        Ok(v1::ListingStatus::Expired) => "EXPIRED",
        Ok(v1::ListingStatus::Repaired) => "REPAIRED",
        _ => "?",
    }
}

fn listing_line(l: &v1::CreditListing) -> String {
    format!(
        "{:<8} {}  {}  by {}  listed {}  until {}\n",
        status_name(l.status),
        l.listing_id,
        list_type_name(l.list_type),
        department_code(l.department),
        time(l.listed_at.as_ref()),
        time(l.expires_at.as_ref()),
    )
}

fn measure_line(m: &v1::Measure) -> String {
    let to = if m.applies_to.is_empty() {
        "every department".to_owned()
    } else {
        m.applies_to
            .iter()
            .map(|d| department_code(*d))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let description = if m.description.is_empty() {
        String::new()
    } else {
        format!(": {}", m.description)
    };
    format!("    {} ({to}){description}\n", m.code)
}

/// The answer of `check`, for people.
pub fn render_check(
    uscc: &str,
    department: v1::Department,
    at: Option<DateTime<Utc>>,
    response: &v1::CheckResponse,
) -> String {
    let code = department_code(department as i32);
    let at = at.map_or_else(|| "now".to_owned(), |t| t.to_rfc3339());
    let mut out = String::new();
    if response.active.is_empty() {
        let _ = writeln!(out, "{uscc}: no active credit listing ({at})");
        return out;
    }
    let _ = writeln!(
        out,
        "{uscc}: {} active credit listing(s) ({at})",
        response.active.len()
    );
    for l in &response.active {
        out.push_str("  ");
        out.push_str(&listing_line(l));
        if !l.reason.is_empty() {
            let _ = writeln!(out, "    reason: {}", l.reason);
        }
    }
    if response.measures.is_empty() {
        let _ = writeln!(out, "measures binding {code}: none");
    } else {
        let _ = writeln!(out, "measures binding {code}:");
        for m in &response.measures {
            out.push_str(&measure_line(m));
        }
    }
    out
}

/// The answer of `history`, for people.
pub fn render_history(
    uscc: &str,
    as_of: Option<DateTime<Utc>>,
    listings: &[v1::CreditListing],
) -> String {
    let as_of = as_of.map_or_else(|| "now".to_owned(), |t| t.to_rfc3339());
    let mut out = String::new();
    if listings.is_empty() {
        let _ = writeln!(
            out,
            "{uscc}: no credit listing on the record (as of {as_of})"
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{uscc}: {} credit listing(s) (as of {as_of})",
        listings.len()
    );
    for l in listings {
        out.push_str("  ");
        out.push_str(&listing_line(l));
        if let Some(b) = &l.legal_basis {
            let _ = writeln!(out, "    legal basis: {} {}", b.instrument, b.article);
        }
        for c in &l.history {
            let _ = writeln!(
                out,
                "    {}  {:<8} by {}  {}  [{}]",
                time(c.at.as_ref()),
                status_name(c.status),
                department_code(c.department),
                c.reason,
                c.event_id
            );
        }
        if !l.measures.is_empty() {
            out.push_str("    measures:\n");
            for m in &l.measures {
                out.push_str("  ");
                out.push_str(&measure_line(m));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> v1::CreditListing {
        v1::CreditListing {
            listing_id: "CL-1".into(),
            list_type: v1::ListType::SeriousDishonest as i32,
            department: v1::Department::Emergency as i32,
            status: v1::ListingStatus::Active as i32,
            listed_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            measures: vec![v1::Measure {
                code: "licence_restriction".into(),
                applies_to: vec![v1::Department::Emergency as i32],
                description: String::new(),
            }],
            history: vec![v1::ListingChange {
                status: v1::ListingStatus::Active as i32,
                at: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
                department: v1::Department::Emergency as i32,
                reason: "违法".into(),
                event_id: "ev-1".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn check_and_history_read_well() {
        let response = v1::CheckResponse {
            active: vec![listing()],
            measures: listing().measures,
        };
        let text = render_check(
            "91320613MA1T6GHK0C",
            v1::Department::Emergency,
            None,
            &response,
        );
        assert!(text.contains("1 active credit listing"), "{text}");
        assert!(text.contains("ACTIVE   CL-1  严重失信主体名单"), "{text}");
        assert!(
            text.contains("measures binding emergency:\n    licence_restriction (emergency)"),
            "{text}"
        );
        let none = render_check(
            "X",
            v1::Department::Fire,
            None,
            &v1::CheckResponse::default(),
        );
        assert!(none.contains("no active credit listing"));
        let text = render_history("X", None, &[listing()]);
        assert!(
            text.contains("2023-11-14T22:13:20Z  ACTIVE   by emergency  违法  [ev-1]"),
            "{text}"
        );
    }
}
