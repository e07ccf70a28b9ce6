//! Whatever bytes arrive, `admit` answers: admitted or a rejection, never a panic.

mod common;

use common::*;
use hazchem_domain::Department;
use hazchem_pki::Principal;
use hazchem_proto::v1;
use proptest::prelude::*;
use prost::Message as _;

fn principals() -> impl Strategy<Value = Principal> {
    prop_oneof![
        (0..Department::ALL.len()).prop_map(|i| Principal::Department(Department::ALL[i])),
        prop::sample::select(vec![
            "ledger",
            "credit",
            "enforcement",
            "warning",
            "console"
        ])
        .prop_map(|s| Principal::Service(s.to_owned())),
        Just(Principal::Auditor("court".to_owned())),
    ]
}

fn answer(principal: &Principal, signed: &v1::SignedEvent) {
    match admission().admit(principal, signed, now()) {
        Ok(admitted) => assert!(!admitted.token.is_empty()),
        Err(rejection) => {
            // The conversion never panics either.
            let status = tonic::Status::from(rejection);
            let _ = hazchem_admission::to_rpc_status(&status);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(
        principal in principals(),
        event in prop::collection::vec(any::<u8>(), 0..2048),
        signature in prop::option::of((".{0,12}", prop::collection::vec(any::<u8>(), 0..80))),
    ) {
        let signed = v1::SignedEvent {
            event,
            signature: signature.map(|(key_id, signature)| v1::OriginSignature { key_id, signature }),
        };
        answer(&principal, &signed);
    }

    #[test]
    fn mutated_valid_events_never_panic(
        token_index in 0usize..49,
        d in 0..Department::ALL.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let tokens = tokens();
        let token = &tokens[token_index % tokens.len()];
        let department = Department::ALL[d];
        let mut bytes = make_event(token, Some(department)).encode_to_vec();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        answer(&Principal::Department(department), &v1::SignedEvent { event: bytes, signature: None });
    }

    #[test]
    fn valid_events_with_random_text_never_panic(text in "\\PC{0,300}|[\\x00-\\x1f]{0,10}") {
        let mut event = make_event("waybill_issued", Some(Department::Transport));
        event.subject = text.clone();
        event.id = text.clone();
        if let Some(v1::event::Payload::WaybillIssued(w)) = event.payload.as_mut() {
            w.carrier.as_mut().unwrap().uscc = text.clone();
            w.tractor.as_mut().unwrap().plate = text.clone();
            w.goods[0].chemical.as_mut().unwrap().cas = text;
        }
        answer(&dept("transport"), &unsigned(&event));
    }
}
