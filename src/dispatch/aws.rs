//! The AWS targets: `eventbridge` (PutEvents, detail-type as configured, the start as detail)
//! and `sqs` (SendMessage; on a FIFO queue the group id is the pipeline and the deduplication
//! id the start id, so SQS itself drops a repeat within its 5-minute window). The SDK clients
//! are made at the first AWS start, with credentials from the standard chain.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use tokio::sync::OnceCell;

use super::{Failure, Started};
use crate::target::{CodeBuild, CodePipeline};
use crate::template::Context;

/// The `source` of the events switchyard puts.
pub const EVENT_SOURCE: &str = "switchyard";

/// Where the AWS targets' clients point: the region and endpoint of the `eventbridge` section
/// when there is one, else the SDK's own chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, profile).
#[derive(Debug, Default)]
pub struct Targets {
    region: Option<String>,
    endpoint_url: Option<String>,
    clients: OnceCell<(aws_sdk_eventbridge::Client, aws_sdk_sqs::Client)>,
}

impl Targets {
    /// Targets in `region` through `endpoint_url` (each `None` for the SDK's chain).
    pub fn new(region: Option<String>, endpoint_url: Option<String>) -> Targets {
        Targets {
            region,
            endpoint_url,
            clients: OnceCell::new(),
        }
    }

    /// Targets with clients made from `sdk` now (for tests and tools that hold a config).
    pub fn from_config(sdk: &aws_config::SdkConfig) -> Targets {
        Targets {
            region: None,
            endpoint_url: None,
            clients: OnceCell::new_with(Some((
                aws_sdk_eventbridge::Client::new(sdk),
                aws_sdk_sqs::Client::new(sdk),
            ))),
        }
    }

    async fn clients(&self) -> &(aws_sdk_eventbridge::Client, aws_sdk_sqs::Client) {
        self.clients
            .get_or_init(|| async {
                let sdk =
                    crate::aws::sdk_config(self.region.as_deref(), self.endpoint_url.as_deref())
                        .await;
                (
                    aws_sdk_eventbridge::Client::new(&sdk),
                    aws_sdk_sqs::Client::new(&sdk),
                )
            })
            .await
    }

    /// PutEvents of one start to `bus`. A failed entry or request is retried.
    pub async fn put_event(
        &self,
        bus: &str,
        detail_type: &str,
        detail: &str,
    ) -> Result<Started, Failure> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .detail(detail)
            .build();
        let out = self
            .clients()
            .await
            .0
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                Failure::retry(format!(
                    "PutEvents to bus {bus:?}: {}",
                    crate::aws::describe(&e)
                ))
            })?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| {
                    Some(format!(
                        "{}: {}",
                        e.error_code()?,
                        e.error_message().unwrap_or_default()
                    ))
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Failure::retry(format!(
                "PutEvents to bus {bus:?} refused the entry: {why}"
            )));
        }
        Ok(Started::unnamed())
    }

    /// SendMessage of one start to `queue_url`.
    pub async fn send_message(
        &self,
        queue_url: &str,
        body: &str,
        pipeline: &str,
        start_id: &str,
    ) -> Result<Started, Failure> {
        let mut send = self
            .clients()
            .await
            .1
            .send_message()
            .queue_url(queue_url)
            .message_body(body);
        if queue_url.ends_with(".fifo") {
            send = send
                .message_group_id(pipeline)
                .message_deduplication_id(start_id);
        }
        send.send().await.map(|_| Started::unnamed()).map_err(|e| {
            Failure::retry(format!(
                "SendMessage to {queue_url}: {}",
                crate::aws::describe(&e)
            ))
        })
    }
}

impl Targets {
    /// StartPipelineExecution of `target` on the change's commit (being built).
    pub async fn start_pipeline(
        &self,
        target: &CodePipeline,
        _ctx: &Context<'_>,
    ) -> Result<Started, Failure> {
        Err(Failure::dead(format!(
            "the codepipeline target ({}) is not built yet",
            target.name
        )))
    }

    /// StartBuild of `target` on the change's commit (being built).
    pub async fn start_build(
        &self,
        target: &CodeBuild,
        _ctx: &Context<'_>,
    ) -> Result<Started, Failure> {
        Err(Failure::dead(format!(
            "the codebuild target ({}) is not built yet",
            target.project
        )))
    }
}
