//! `jenkins`: `POST /job/A/job/B/buildWithParameters` (or `/build` without parameters) with the
//! user's API token by Basic auth, which needs no crumb. Jenkins answers 201 with the queue item
//! in `Location`: that is the run's reference (the build number comes only once it leaves the
//! queue).

use base64::Engine as _;

use super::exchange::{self, Answer, Hints, Request, credential, form, render_all, segment};
use super::read::{ANY_NAME, required, templates, token, url};
use super::{Attempt, Exchange, Failure, Kind, Run};
use crate::diag::{Diagnostics, MapReader};
use crate::secret::SecretRef;
use crate::template::Template;
use crate::yaml::Node;

/// `jenkins: {url, job, user, token, parameters}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jenkins {
    pub url: String,
    /// The job's full name, folders separated by `/`.
    pub job: String,
    pub user: String,
    pub token: SecretRef,
    pub parameters: Vec<(String, Template)>,
}

/// A Jenkins job's full name: folders and the job separated by `/`; a name may hold spaces (each
/// part is percent-encoded in the URL).
fn job_path(text: &str) -> bool {
    text.split('/').all(|part| {
        !part.trim().is_empty()
            && part != "."
            && part != ".."
            && !part.chars().any(char::is_control)
    })
}

fn nonempty(text: &str) -> bool {
    !text.trim().is_empty() && !text.chars().any(char::is_control)
}

impl Kind for Jenkins {
    type Via = Exchange;

    fn read(value: &Node, what: &str, d: &mut Diagnostics) -> Option<Jenkins> {
        let m = MapReader::new(value, what, d)?;
        m.deny_unknown(&["url", "job", "user", "token", "parameters"], what, d);
        let url = required(&m, "url", what, url, "https://jenkins.example.com", d);
        let job = required(&m, "job", what, job_path, "folder/api", d);
        let user = required(&m, "user", what, nonempty, "ci-bot", d);
        let token = token(&m, "token", what, "env:JENKINS_API_TOKEN", d);
        let parameters = templates(&m, "parameters", what, ANY_NAME, d);
        Some(Jenkins {
            url: url?.trim_end_matches('/').to_owned(),
            job: job?,
            user: user?,
            token: token?,
            parameters: parameters?,
        })
    }

    fn request(&self, a: &Attempt<'_>) -> Result<Request, Failure> {
        let token = credential(&self.token, "start.jenkins.token")?;
        let mut url = self.url.clone();
        for part in self.job.split('/') {
            url.push_str("/job/");
            url.push_str(&segment(part));
        }
        url.push_str(if self.parameters.is_empty() {
            "/build"
        } else {
            "/buildWithParameters"
        });
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{token}", self.user));
        let req = Request::post(&url, "application/x-www-form-urlencoded", a.traceparent)
            .header(http::header::AUTHORIZATION, format!("Basic {basic}"));
        let body = form(&render_all(&self.parameters, &a.context()));
        // Jenkins may quote either: the header as sent, or the user and token it decoded.
        Request::new(req, body, url, vec![basic, token])
    }

    fn judge(&self, answer: Answer) -> Result<Run, Failure> {
        let hints = Hints {
            runner: "Jenkins",
            permission: format!(
                "belongs to user {} (an API token, not a password) with the Job/Build permission on {}",
                self.user, self.job
            ),
            not_found: format!(
                "check that job {} exists on {} (folders as `folder/job`); Jenkins also answers 404 to a user without Job/Read",
                self.job, crate::secret::shown_url(&self.url)
            ),
        };
        let answer = exchange::judge(answer, &hints)?;
        let location = answer
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Run { id: location })
    }

    fn secrets(&self) -> Vec<&SecretRef> {
        vec![&self.token]
    }
}
