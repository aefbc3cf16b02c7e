//! A real moto server (PyPI's `moto[server]`) on a free loopback port, for the EventBridge and
//! SQS tests.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{Credentials, Region};

/// The region every test uses.
pub const REGION: &str = "us-east-1";

/// A running `moto_server`; killed on drop.
#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    child: Child,
}

/// Where moto_server is: `SWITCHYARD_MOTO_SERVER` (set by `.ci/test`), the venv `.ci/test`
/// makes, or PATH.
fn moto_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHYARD_MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/moto-venv/bin/moto_server");
    if venv.exists() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("moto_server"))
            .find(|p| p.exists())
    })
}

impl Moto {
    /// Starts moto on a free port. `None` when moto is not installed, which only a plain
    /// `cargo test` tolerates (under `.ci/test`, `SWITCHYARD_TEST_STRICT=1`, it fails).
    pub fn start() -> Option<Moto> {
        Moto::start_with(&[])
    }

    /// Starts moto that checks credentials (IAM authentication on from the first request):
    /// unknown access keys are refused.
    pub fn start_checking_credentials() -> Option<Moto> {
        Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    fn start_with(env: &[(&str, &str)]) -> Option<Moto> {
        let Some(server) = moto_server() else {
            assert!(
                std::env::var_os("SWITCHYARD_TEST_STRICT").is_none(),
                "moto_server is missing: .ci/test installs moto[server]"
            );
            eprintln!(
                "skipped: moto_server is missing (run .ci/test, which installs moto[server])"
            );
            return None;
        };
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut child = Command::new(&server)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("spawn moto_server");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Moto {
                        endpoint: format!("http://127.0.0.1:{port}"),
                        child,
                    });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start");
    }

    /// SDK configuration for the tests' own calls: moto's endpoint, fixed test credentials.
    pub fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
                Credentials::new("testing", "testing", None, None, "tests"),
            ))
            .http_client(switchyard::aws::http_client())
            .build()
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk())
    }

    pub fn events(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.sdk())
    }

    /// Creates queue `name` (and its dead-letter queue `name-dlq` after `max_receives`
    /// receives) with this visibility timeout; (queue URL, queue ARN, DLQ URL).
    pub async fn queue(
        &self,
        name: &str,
        visibility_secs: u32,
        max_receives: u32,
    ) -> (String, String, String) {
        let sqs = self.sqs();
        let dlq = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .expect("create the DLQ");
        let dlq_url = dlq.queue_url().expect("DLQ URL").to_owned();
        let dlq_arn = self.arn(&dlq_url).await;
        let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()});
        let queue = sqs
            .create_queue()
            .queue_name(name)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                visibility_secs.to_string(),
            )
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                redrive.to_string(),
            )
            .send()
            .await
            .expect("create the queue");
        let url = queue.queue_url().expect("queue URL").to_owned();
        let arn = self.arn(&url).await;
        (url, arn, dlq_url)
    }

    /// The ARN of a queue.
    pub async fn arn(&self, url: &str) -> String {
        self.sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .expect("an ARN")
            .clone()
    }

    /// A rule on the default bus sending events of `source` to the queue.
    pub async fn rule_to_queue(&self, source: &str, queue_arn: &str) {
        let events = self.events();
        events
            .put_rule()
            .name(format!(
                "to-{}",
                queue_arn.rsplit(':').next().unwrap_or("q")
            ))
            .event_pattern(serde_json::json!({"source": [source]}).to_string())
            .send()
            .await
            .expect("put rule");
        events
            .put_targets()
            .rule(format!(
                "to-{}",
                queue_arn.rsplit(':').next().unwrap_or("q")
            ))
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("put targets");
    }

    /// How many messages a queue holds (visible and in flight).
    pub async fn depth(&self, url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let get = |k: &A| {
            out.attributes()
                .and_then(|a| a.get(k))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        get(&A::ApproximateNumberOfMessages) + get(&A::ApproximateNumberOfMessagesNotVisible)
    }

    /// The environment a child `switchyard` needs to reach moto.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
