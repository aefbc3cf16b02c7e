//! `github_actions`: a `workflow_dispatch` (asking for the run's details, so the run comes
//! back: GitHub answers 200 with `workflow_run_id`, `run_url` and `html_url`; a server that does
//! not know `return_run_details` yet answers 204) or a `repository_dispatch` (GitHub answers 204
//! and tells no run), with a token as a Bearer credential.

use super::exchange::{self, Answer, Hints, Request, credential, object, segment};
use super::read::{
    ANY_NAME, NameRule, read_template, required, slug, template_or, templates, token, url,
};
use super::{Attempt, Exchange, Failure, Kind, Run};
use crate::diag::{Diagnostics, MapReader};
use crate::secret::SecretRef;
use crate::template::{Template, Var};
use crate::yaml::Node;

/// `github_actions: {repository, token, api_url, workflow + ref + inputs | event_type +
/// client_payload}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GithubActions {
    /// The REST API's root: `https://api.github.com`, or a GitHub Enterprise Server's `/api/v3`.
    pub api_url: String,
    /// `OWNER/NAME`.
    pub repository: String,
    pub token: SecretRef,
    pub dispatch: Dispatch,
}

/// Which dispatch a `github_actions` target sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// `POST /repos/{repository}/actions/workflows/{workflow}/dispatches`.
    Workflow {
        /// The workflow file name (`deploy.yml`) or its id.
        workflow: String,
        git_ref: Template,
        inputs: Vec<(String, Template)>,
    },
    /// `POST /repos/{repository}/dispatches`.
    Repository {
        event_type: Template,
        client_payload: Vec<(String, Template)>,
    },
}

fn owner_name(text: &str) -> bool {
    text.split_once('/')
        .is_some_and(|(owner, name)| slug(owner) && slug(name))
}

impl GithubActions {
    /// The URL and the body of this dispatch.
    fn call(&self, a: &Attempt<'_>) -> (String, serde_json::Value) {
        let ctx = a.context();
        match &self.dispatch {
            Dispatch::Workflow {
                workflow,
                git_ref,
                inputs,
            } => (
                format!(
                    "{}/repos/{}/actions/workflows/{}/dispatches",
                    self.api_url,
                    self.repository,
                    segment(workflow)
                ),
                serde_json::json!({
                    "ref": git_ref.render(&ctx),
                    "inputs": object(inputs, &ctx),
                    "return_run_details": true,
                }),
            ),
            Dispatch::Repository {
                event_type,
                client_payload,
            } => (
                format!("{}/repos/{}/dispatches", self.api_url, self.repository),
                serde_json::json!({
                    "event_type": event_type.render(&ctx),
                    "client_payload": object(client_payload, &ctx),
                }),
            ),
        }
    }

    /// What a refusal of this dispatch means.
    fn hints(&self) -> Hints {
        match &self.dispatch {
            Dispatch::Workflow { workflow, .. } => Hints {
                runner: "GitHub",
                permission: format!(
                    "needs \"Actions: write\" on {} (a fine-grained token; a classic one needs the `repo` scope)",
                    self.repository
                ),
                not_found: format!(
                    "check that {} exists and has .github/workflows/{workflow}; GitHub also answers 404 to a token that cannot see the repository",
                    self.repository
                ),
            },
            Dispatch::Repository { .. } => Hints {
                runner: "GitHub",
                permission: format!(
                    "needs \"Contents: write\" on {} (a fine-grained token; a classic one needs the `repo` scope)",
                    self.repository
                ),
                not_found: format!(
                    "check that {} exists; GitHub also answers 404 to a token that cannot see the repository",
                    self.repository
                ),
            },
        }
    }
}

impl Kind for GithubActions {
    type Via = Exchange;

    fn read(value: &Node, what: &str, d: &mut Diagnostics) -> Option<GithubActions> {
        let m = MapReader::new(value, what, d)?;
        let keys = [
            "repository",
            "workflow",
            "ref",
            "inputs",
            "event_type",
            "client_payload",
            "token",
            "api_url",
        ];
        m.deny_unknown(&keys, what, d);
        let repository = required(&m, "repository", what, owner_name, "acme/api", d);
        let token = token(&m, "token", what, "env:GITHUB_TOKEN", d);
        let api_url = match m.get("api_url") {
            Some(_) => required(
                &m,
                "api_url",
                what,
                url,
                "https://github.example.com/api/v3",
                d,
            ),
            None => Some("https://api.github.com".to_owned()),
        };
        let workflow_keys = ["workflow", "ref", "inputs"];
        let dispatch_keys = ["event_type", "client_payload"];
        let has = |keys: &[&str]| keys.iter().find_map(|k| m.entry(k));
        let dispatch = match (has(&workflow_keys), has(&dispatch_keys)) {
            (Some(_), Some((key, _))) => {
                d.error(
                    key.pos,
                    format!("{what} mixes a workflow_dispatch (`workflow`) and a repository_dispatch (`event_type`)"),
                    "keep `workflow` (with `ref`, `inputs`) or `event_type` (with `client_payload`)",
                );
                None
            }
            (None, Some(_)) => {
                let event_type = match m.get("event_type") {
                    Some(n) => read_template(n, &format!("{what}.event_type"), d),
                    None => {
                        d.error(
                            m.node().pos,
                            format!("{what} has `client_payload` but no `event_type`"),
                            "add `event_type: deploy`, the type the workflow's `on: repository_dispatch` lists",
                        );
                        None
                    }
                };
                let client_payload = templates(
                    &m,
                    "client_payload",
                    what,
                    NameRule {
                        max_entries: 10,
                        ..ANY_NAME
                    },
                    d,
                );
                Some(Dispatch::Repository {
                    event_type: event_type?,
                    client_payload: client_payload?,
                })
            }
            (_, None) => {
                let workflow = required(
                    &m,
                    "workflow",
                    what,
                    |w| slug(w) && !w.contains(".."),
                    "deploy.yml",
                    d,
                );
                let git_ref = template_or(&m, "ref", what, Template::var(Var::Ref), d);
                let inputs = templates(
                    &m,
                    "inputs",
                    what,
                    NameRule {
                        max_entries: 25,
                        ..ANY_NAME
                    },
                    d,
                );
                Some(Dispatch::Workflow {
                    workflow: workflow?,
                    git_ref: git_ref?,
                    inputs: inputs?,
                })
            }
        };
        Some(GithubActions {
            api_url: api_url?.trim_end_matches('/').to_owned(),
            repository: repository?,
            token: token?,
            dispatch: dispatch?,
        })
    }

    fn request(&self, a: &Attempt<'_>) -> Result<Request, Failure> {
        let token = credential(&self.token, "start.github_actions.token")?;
        let (url, body) = self.call(a);
        let req = Request::post(&url, "application/json", a.traceparent)
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        Request::new(req, body.to_string(), url, vec![token])
    }

    fn judge(&self, answer: Answer) -> Result<Run, Failure> {
        let answer = exchange::judge(answer, &self.hints())?;
        Ok(Run {
            id: answer.field(&["html_url", "run_url", "workflow_run_id"]),
        })
    }

    fn secrets(&self) -> Vec<&SecretRef> {
        vec![&self.token]
    }
}
