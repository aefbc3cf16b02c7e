//! `gitlab`: the pipeline trigger API, `POST /api/v4/projects/:id/trigger/pipeline` with the
//! trigger token, the ref and the variables as a form. GitLab answers 201 with the pipeline
//! (`id`, `web_url`).

use super::exchange::{self, Answer, Hints, Request, credential, form, render_all, segment};
use super::read::{ENV_NAME, branch_or_tag, required, slug, template_or, templates, token, url};
use super::{Attempt, Exchange, Failure, Kind, Run};
use crate::diag::{Diagnostics, MapReader};
use crate::secret::SecretRef;
use crate::template::Template;
use crate::yaml::Node;

/// `gitlab: {url, project, token, ref, variables}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gitlab {
    /// The instance, e.g. `https://gitlab.com`.
    pub url: String,
    /// The project's numeric id or its path (`group/project`).
    pub project: String,
    /// A pipeline trigger token.
    pub token: SecretRef,
    pub git_ref: Template,
    pub variables: Vec<(String, Template)>,
}

fn path_of_slugs(text: &str) -> bool {
    !text.starts_with('/') && !text.ends_with('/') && text.split('/').all(slug)
}

impl Kind for Gitlab {
    type Via = Exchange;

    fn read(value: &Node, what: &str, d: &mut Diagnostics) -> Option<Gitlab> {
        let m = MapReader::new(value, what, d)?;
        m.deny_unknown(&["url", "project", "token", "ref", "variables"], what, d);
        let url = required(&m, "url", what, url, "https://gitlab.com", d);
        let project = required(&m, "project", what, path_of_slugs, "acme/api", d);
        let token = token(&m, "token", what, "env:GITLAB_TRIGGER_TOKEN", d);
        let git_ref = template_or(&m, "ref", what, branch_or_tag(), d);
        let variables = templates(&m, "variables", what, ENV_NAME, d);
        Some(Gitlab {
            url: url?.trim_end_matches('/').to_owned(),
            project: project?,
            token: token?,
            git_ref: git_ref?,
            variables: variables?,
        })
    }

    fn request(&self, a: &Attempt<'_>) -> Result<Request, Failure> {
        let token = credential(&self.token, "start.gitlab.token")?;
        let ctx = a.context();
        let url = format!(
            "{}/api/v4/projects/{}/trigger/pipeline",
            self.url,
            segment(&self.project)
        );
        let mut pairs = vec![
            ("token".to_owned(), token.clone()),
            ("ref".to_owned(), self.git_ref.render(&ctx)),
        ];
        for (name, value) in render_all(&self.variables, &ctx) {
            pairs.push((format!("variables[{name}]"), value));
        }
        let req = Request::post(&url, "application/x-www-form-urlencoded", a.traceparent)
            .header(http::header::ACCEPT, "application/json");
        Request::new(req, form(&pairs), url, vec![token])
    }

    fn judge(&self, answer: Answer) -> Result<Run, Failure> {
        let hints = Hints {
            runner: "GitLab",
            permission: format!(
                "is a pipeline trigger token of {} (Settings > CI/CD > Pipeline trigger tokens) whose owner may run pipelines on the ref",
                self.project
            ),
            not_found: format!(
                "check that project {} exists on {} and that the ref exists there; GitLab also answers 404 to a token of another project",
                self.project, crate::secret::shown_url(&self.url)
            ),
        };
        let answer = exchange::judge(answer, &hints)?;
        Ok(Run {
            id: answer.field(&["web_url", "id"]),
        })
    }

    fn secrets(&self) -> Vec<&SecretRef> {
        vec![&self.token]
    }
}
