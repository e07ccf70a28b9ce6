//! How the `hazchem` binary runs the ledger ([`hazchem_kit::Launch`]).

use hazchem_kit::{Dev, LaunchError, Opened, Serve, Shared};

use crate::{Ledger, LedgerConfig, SERVICE_NAME};

/// The audit ledger, as the binary runs it.
#[derive(Debug)]
pub struct Launch;

impl hazchem_kit::Launch for Launch {
    const NAME: &'static str = SERVICE_NAME;
    type Config = LedgerConfig;

    /// The development PKI's ledger key; `hazchem dev` adds the departments' witnesses it starts.
    fn dev(dev: &Dev<'_>) -> LedgerConfig {
        LedgerConfig {
            listen: dev.listen,
            store: dev.state.clone(),
            tls: Some(dev.tls.clone()),
            signing_key: Some(dev.pki.ledger_signing_key_path()),
            ..LedgerConfig::default()
        }
    }

    fn listen(config: &LedgerConfig) -> std::net::SocketAddr {
        config.listen
    }

    /// The ledger checks the stream against its own key, whatever `shared.checkpoints` says.
    async fn open(config: LedgerConfig, shared: &Shared) -> Result<Opened, LaunchError> {
        let ledger = Ledger::from_config(&config)?.with_clock(shared.clock.clone());
        let tls = config.server_tls()?;
        let bus = shared.bus.clone();
        Ok(Opened::new(move |serve: Serve| {
            crate::run_service(
                ledger,
                bus,
                Some(serve.sink),
                serve.listener,
                tls,
                serve.shutdown,
            )
        }))
    }
}
