//! Transports: how a target's request travels — a program run, an HTTP exchange, an AWS API
//! call — and the answer it brings back ([`target::Carry`](crate::target::Carry)). The targets
//! themselves (`switchyard-core`'s `target`) build the requests and judge the answers; this is
//! their only I/O. The dispatcher and the Lambda handler attempt starts through
//! [`Transports`]: the same targets, with or without the store's bookkeeping.

pub mod aws;
pub mod exec;
pub mod http;

use std::path::{Path, PathBuf};

use crate::target::{
    Api, Attempt, Carry, Exchange, Failure, Program, Run, Target, aws as call, exchange,
    exec as program,
};

/// What carries out attempts: the HTTP client, the AWS clients and the directory of `exec`
/// event files, shared by every attempt.
#[derive(Debug)]
pub struct Transports {
    http: http::Client,
    aws: aws::Aws,
    events_dir: PathBuf,
}

impl Transports {
    /// Transports whose `exec` attempts write their event files under `events_dir`.
    pub fn new(aws: aws::Aws, events_dir: PathBuf) -> Transports {
        Transports {
            http: http::client(),
            aws,
            events_dir,
        }
    }

    /// Where `exec` attempts write their event files.
    pub fn events_dir(&self) -> &Path {
        &self.events_dir
    }

    /// One attempt of `target`: its request carried, its answer judged.
    pub async fn attempt(&self, target: &Target, attempt: &Attempt<'_>) -> Result<Run, Failure> {
        target.attempt(self, attempt).await
    }
}

impl Carry<Program> for Transports {
    async fn carry(
        &self,
        command: program::Command,
        attempt: &Attempt<'_>,
    ) -> Result<program::Exit, Failure> {
        exec::run(&self.events_dir, command, attempt.timeout).await
    }
}

impl Carry<Exchange> for Transports {
    async fn carry(
        &self,
        request: exchange::Request,
        attempt: &Attempt<'_>,
    ) -> Result<exchange::Answer, Failure> {
        http::exchange(&self.http, request, attempt.timeout).await
    }
}

impl Carry<Api> for Transports {
    async fn carry(&self, call: call::Call, _: &Attempt<'_>) -> Result<call::Answer, Failure> {
        Ok(self.aws.call(call).await)
    }
}
