//! moto: the one given, or one started; the queue and rule the events path goes through.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::*;

/// Where moto_server is: `SWITCHYARD_MOTO_SERVER`, the venv `.ci/test` makes, or PATH.
fn moto_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHYARD_MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let venv = target.join("moto-venv/bin/moto_server");
    if venv.exists() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("moto_server"))
            .find(|p| p.exists())
    })
}

/// moto: the one given, or one started on a free port.
#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    _child: Option<Killed>,
}

impl Moto {
    /// Uses `endpoint` when given, else starts moto_server.
    pub fn start(endpoint: Option<&str>) -> anyhow::Result<Moto> {
        if let Some(endpoint) = endpoint {
            return Ok(Moto {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
                _child: None,
            });
        }
        let Some(server) = moto_server() else {
            bail!(
                "moto_server is not installed: the events path runs against a local moto server\n\
                 hint: `python3 -m venv target/moto-venv && target/moto-venv/bin/pip install 'moto[server]==5.2.5'` \
                 (`.ci/test` does it), or pass --moto URL of a running one"
            );
        };
        let port = free_port()?;
        let mut child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", server.display()))?;
        wait_port(port, "moto_server", &mut child)?;
        Ok(Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            _child: Some(Killed(child)),
        })
    }

    /// SDK configuration for the lab's own calls.
    pub fn sdk(&self) -> aws_config::SdkConfig {
        use aws_sdk_sqs::config::{Credentials, Region, SharedCredentialsProvider};
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "bench",
            )))
            .http_client(crate::aws::http_client())
            .build()
    }
}

/// A queue on moto and the rule that fills it; (URL, ARN).
pub async fn queue_with_rule(
    sdk: &aws_config::SdkConfig,
    name: &str,
    pattern: Value,
) -> anyhow::Result<(String, String)> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("moto: create queue {name}: {}", crate::aws::describe(&e)))?
        .queue_url()
        .context("moto returned no queue URL")?
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("moto: queue attributes: {}", crate::aws::describe(&e)))?
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .context("moto returned no queue ARN")?
        .clone();
    events
        .put_rule()
        .name(name)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("moto: put rule: {}", crate::aws::describe(&e)))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("queue")
        .arn(&arn)
        .build()
        .map_err(|e| anyhow::anyhow!("rule target: {e}"))?;
    events
        .put_targets()
        .rule(name)
        .targets(target)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("moto: put targets: {}", crate::aws::describe(&e)))?;
    Ok((url, arn))
}
