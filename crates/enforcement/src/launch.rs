//! How the `hazchem` binary runs the enforcement service ([`hazchem_kit::Launch`]).

use hazchem_kit::{Dev, LaunchError, Opened, Serve, Shared};

use crate::{Enforcement, EnforcementConfig, SERVICE_NAME};

/// Joint enforcement, as the binary runs it.
#[derive(Debug)]
pub struct Launch;

impl hazchem_kit::Launch for Launch {
    const NAME: &'static str = SERVICE_NAME;
    type Config = EnforcementConfig;

    fn dev(dev: &Dev<'_>) -> EnforcementConfig {
        EnforcementConfig {
            listen: dev.listen,
            store: dev.state.clone(),
            tls: Some(dev.tls.clone()),
            ..EnforcementConfig::default()
        }
    }

    fn listen(config: &EnforcementConfig) -> std::net::SocketAddr {
        config.listen
    }

    /// The service publishes its task events while it answers commands, so it is opened (its store
    /// checked against the stream) when it is run, with its sink.
    async fn open(config: EnforcementConfig, shared: &Shared) -> Result<Opened, LaunchError> {
        let tls = config.server_tls()?;
        let shared = shared.clone();
        Ok(Opened::new(move |serve: Serve| async move {
            let service = Enforcement::from_config(&config, shared.bus, serve.sink)
                .await?
                .with_clock(shared.clock)
                .with_checkpoints(shared.checkpoints);
            crate::run_service(service, serve.listener, tls, serve.shutdown).await
        }))
    }
}
