//! Rough throughput of `admit` (run with `cargo test --release -p hazchem-admission --test throughput
//! -- --ignored --nocapture`).

mod common;

use std::time::Instant;

use common::*;
use hazchem_domain::Department;

#[test]
#[ignore = "a measurement, not a check"]
fn admissions_per_second() {
    let admission = admission();
    for (token, d, signed) in [
        ("waybill_issued", Department::Transport, false),
        ("sensor_readings_recorded", Department::Emergency, false),
        ("highly_toxic_purchase_permit_issued", Department::Psb, true),
    ] {
        let event = make_event(token, Some(d));
        let request = if signed {
            signed_by(&event, d)
        } else {
            unsigned(&event)
        };
        let principal = hazchem_pki::Principal::Department(d);
        let n = 20_000;
        let start = Instant::now();
        for _ in 0..n {
            admission.admit(&principal, &request, now()).unwrap();
        }
        let elapsed = start.elapsed();
        println!(
            "{token}: {} bytes, {:.1} µs per event, {:.0} events/s per core",
            request.event.len(),
            elapsed.as_secs_f64() * 1e6 / f64::from(n),
            f64::from(n) / elapsed.as_secs_f64()
        );
    }
}
