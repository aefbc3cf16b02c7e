//! `buildkite`: create a build, `POST /v2/organizations/{org}/pipelines/{pipeline}/builds` with
//! commit, branch, message, env and meta-data, and an API token as a Bearer credential.
//! Buildkite answers 201 with the build (`web_url`, `number`).

use super::exchange::{self, Answer, Hints, Request, credential, object};
use super::read::{
    ANY_NAME, ENV_NAME, branch_or_tag, required, slug, template_or, templates, token, url,
};
use super::{Attempt, Exchange, Failure, Kind, Run};
use crate::diag::{Diagnostics, MapReader};
use crate::secret::SecretRef;
use crate::template::{Template, Var};
use crate::yaml::Node;

/// `buildkite: {organization, pipeline, token, api_url, commit, branch, message, env,
/// meta_data}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buildkite {
    pub api_url: String,
    pub organization: String,
    pub pipeline: String,
    pub token: SecretRef,
    pub commit: Template,
    pub branch: Template,
    pub message: Template,
    pub env: Vec<(String, Template)>,
    pub meta_data: Vec<(String, Template)>,
}

impl Kind for Buildkite {
    type Via = Exchange;

    fn read(value: &Node, what: &str, d: &mut Diagnostics) -> Option<Buildkite> {
        let m = MapReader::new(value, what, d)?;
        let keys = [
            "organization",
            "pipeline",
            "token",
            "commit",
            "branch",
            "message",
            "env",
            "meta_data",
            "api_url",
        ];
        m.deny_unknown(&keys, what, d);
        let organization = required(&m, "organization", what, slug, "acme", d);
        let pipeline = required(&m, "pipeline", what, slug, "api", d);
        let token = token(&m, "token", what, "env:BUILDKITE_API_TOKEN", d);
        let api_url = match m.get("api_url") {
            Some(_) => required(&m, "api_url", what, url, "https://api.buildkite.com", d),
            None => Some("https://api.buildkite.com".to_owned()),
        };
        let commit = template_or(&m, "commit", what, Template::var(Var::Sha), d);
        let branch = template_or(&m, "branch", what, branch_or_tag(), d);
        let message = template_or(
            &m,
            "message",
            what,
            Template::parse("${repository} ${ref} (switchyard ${start_id})")
                .expect("a valid template"),
            d,
        );
        let env = templates(&m, "env", what, ENV_NAME, d);
        let meta_data = templates(&m, "meta_data", what, ANY_NAME, d);
        Some(Buildkite {
            api_url: api_url?.trim_end_matches('/').to_owned(),
            organization: organization?,
            pipeline: pipeline?,
            token: token?,
            commit: commit?,
            branch: branch?,
            message: message?,
            env: env?,
            meta_data: meta_data?,
        })
    }

    fn request(&self, a: &Attempt<'_>) -> Result<Request, Failure> {
        let token = credential(&self.token, "start.buildkite.token")?;
        let ctx = a.context();
        let url = format!(
            "{}/v2/organizations/{}/pipelines/{}/builds",
            self.api_url, self.organization, self.pipeline
        );
        let body = serde_json::json!({
            "commit": self.commit.render(&ctx),
            "branch": self.branch.render(&ctx),
            "message": self.message.render(&ctx),
            "env": object(&self.env, &ctx),
            "meta_data": object(&self.meta_data, &ctx),
        });
        let req = Request::post(&url, "application/json", a.traceparent)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        Request::new(req, body.to_string(), url, vec![token])
    }

    fn judge(&self, answer: Answer) -> Result<Run, Failure> {
        let hints = Hints {
            runner: "Buildkite",
            permission: format!(
                "needs the `write_builds` scope and access to organization {}",
                self.organization
            ),
            not_found: format!(
                "check that pipeline {}/{} exists; Buildkite also answers 404 to a token without access to it",
                self.organization, self.pipeline
            ),
        };
        let answer = exchange::judge(answer, &hints)?;
        Ok(Run {
            id: answer.field(&["web_url", "url", "id"]),
        })
    }

    fn secrets(&self) -> Vec<&SecretRef> {
        vec![&self.token]
    }
}
