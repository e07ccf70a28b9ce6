//! How the `hazchem` binary runs the warning service ([`hazchem_kit::Launch`]).

use hazchem_kit::{Dev, LaunchError, Opened, Serve, Shared};

use crate::{SERVICE_NAME, WarningConfig, Warnings};

/// Early warning, as the binary runs it.
#[derive(Debug)]
pub struct Launch;

impl hazchem_kit::Launch for Launch {
    const NAME: &'static str = SERVICE_NAME;
    type Config = WarningConfig;

    fn dev(dev: &Dev<'_>) -> WarningConfig {
        WarningConfig {
            listen: dev.listen,
            store: dev.state.clone(),
            tls: Some(dev.tls.clone()),
            ..WarningConfig::default()
        }
    }

    fn listen(config: &WarningConfig) -> std::net::SocketAddr {
        config.listen
    }

    /// The service publishes the warnings its rules decide, so it is opened with its sink, when run.
    async fn open(config: WarningConfig, shared: &Shared) -> Result<Opened, LaunchError> {
        let tls = config.server_tls()?;
        let shared = shared.clone();
        Ok(Opened::new(move |serve: Serve| async move {
            let warnings = Warnings::from_config(&config, shared.policy, shared.bus, serve.sink)?
                .with_clock(shared.clock)
                .with_checkpoints(shared.checkpoints);
            crate::run_service(warnings, serve.listener, tls, serve.shutdown).await
        }))
    }
}
