//! `http`: POST `{"pipeline", "start_id", "event"}` to a runner, signed with Standard Webhooks
//! headers when a secret is set. The start id is the `webhook-id` on every attempt, so a runner
//! can drop a repeat; `traceparent` ties the request to the change's trace. 2xx is success;
//! the other statuses are judged by the rules every HTTP target shares.

use super::exchange::{Answer, Request};
use super::read::required_url;
use super::{Attempt, Exchange, Failure, Kind, Run};
use crate::diag::{Diagnostics, MapReader};
use crate::secret::{self, SecretRef};
use crate::signature::{Key, sign};
use crate::yaml::Node;

/// `http: {url, secret}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http {
    pub url: String,
    /// The Standard Webhooks secret the request is signed with.
    pub secret: Option<SecretRef>,
}

impl Kind for Http {
    type Via = Exchange;

    fn read(value: &Node, what: &str, d: &mut Diagnostics) -> Option<Http> {
        let m = MapReader::new(value, what, d)?;
        m.deny_unknown(&["url", "secret"], what, d);
        let url = required_url(&m, "url", what, &["http", "https"], d);
        let secret = m
            .get("secret")
            .and_then(|s| secret::read_ref(s, &format!("{what}.secret"), d));
        if m.get("secret").is_some() && secret.is_none() {
            return None;
        }
        Some(Http { url: url?, secret })
    }

    fn request(&self, a: &Attempt<'_>) -> Result<Request, Failure> {
        // Read at every attempt: a rotated secret applies without a restart, and a missing
        // one fails this start (to be retried), not the server.
        let key = match &self.secret {
            Some(secret) => {
                let value = secret
                    .resolve()
                    .map_err(|e| Failure::retry(e.to_string()))?;
                Some(
                    Key::from_secret(&value)
                        .map_err(|e| Failure::retry(format!("{secret}: {e}")))?,
                )
            }
            None => None,
        };
        let body = a.body()?.into_bytes();
        let ts = jiff::Timestamp::now().as_second();
        let mut req = Request::post(&self.url, "application/json", a.traceparent)
            .header("webhook-id", a.start_id)
            .header("webhook-timestamp", ts.to_string());
        if let Some(key) = key {
            req = req.header("webhook-signature", sign(&key, a.start_id, ts, &body));
        }
        Request::new(req, body, self.url.clone(), Vec::new())
    }

    fn judge(&self, answer: Answer) -> Result<Run, Failure> {
        answer.success()?;
        Ok(Run::unnamed())
    }

    fn secrets(&self) -> Vec<&SecretRef> {
        self.secret.iter().collect()
    }
}
