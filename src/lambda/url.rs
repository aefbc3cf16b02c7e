//! A function URL request (payload format 2.0) carrying a webhook: the routes of `serve`, with
//! the same verification and answers (`webhook::Hooks`), its changes started before the answer.

use std::time::Instant;

use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine as _;
use hyper::HeaderMap;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::Handler;
use crate::event::ChangeEvent;
use crate::http::routes::{self, Route};
use crate::outcome::IntakeOutcome;
use crate::sources::webhook::{Answer, BodyError, Sink};
use crate::trace::TraceParent;

impl Handler {
    /// A function URL request (payload format 2.0): the routes of `serve`, with the same
    /// verification and answers on `POST /hooks/NAME`.
    pub(super) async fn function_url(
        &self,
        request: LambdaFunctionUrlRequest,
        deadline: Instant,
    ) -> LambdaFunctionUrlResponse {
        let method = request
            .request_context
            .http
            .method
            .clone()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let path = request
            .raw_path
            .clone()
            .or_else(|| request.request_context.http.path.clone())
            .unwrap_or_else(|| "/".to_owned());
        match routes::function_url(&method, &path) {
            Route::Health => text(200, "ok\n"),
            // No store to probe: an instance that answers can take a change.
            Route::Ready => text(200, "ready\n"),
            Route::Hook(name) => {
                let name = name.to_owned();
                self.hook(&name, request, deadline).await
            }
            Route::Refused(refusal) => answer(&refusal),
        }
    }

    async fn hook(
        &self,
        name: &str,
        request: LambdaFunctionUrlRequest,
        deadline: Instant,
    ) -> LambdaFunctionUrlResponse {
        let receiver = match self.hooks.open(name, None, &self.metrics) {
            Ok(receiver) => receiver,
            Err(refusal) => return answer(&refusal),
        };
        let body = request.body.unwrap_or_default();
        let body = if request.is_base64_encoded {
            base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|e| BodyError::Unreadable(e.to_string()))
        } else {
            Ok(body.into_bytes())
        };
        let sink = Starting {
            handler: self,
            deadline,
        };
        let (hooks, metrics) = (&self.hooks, &self.metrics);
        answer(
            &hooks
                .deliver(receiver, &request.headers, body, &sink, metrics)
                .await,
        )
    }
}

/// A webhook's changes, started before the answer.
struct Starting<'a> {
    handler: &'a Handler,
    deadline: Instant,
}

impl Sink for Starting<'_> {
    async fn submit(
        &self,
        event: ChangeEvent,
        _delivery: Option<(String, String)>,
        traceparent: Option<TraceParent>,
    ) -> Result<IntakeOutcome, String> {
        self.handler
            .start_change(&event, self.deadline, traceparent)
            .await
    }
}

fn response(status: u16, content_type: &'static str, body: String) -> LambdaFunctionUrlResponse {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The event types are non-exhaustive: set the fields of a default.
    let mut response = LambdaFunctionUrlResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(body);
    response
}

fn text(status: u16, body: &str) -> LambdaFunctionUrlResponse {
    response(status, "text/plain", body.to_owned())
}

fn answer(answer: &Answer) -> LambdaFunctionUrlResponse {
    let mut body = serde_json::to_string(&answer.body).unwrap_or_default();
    body.push('\n');
    response(answer.status, "application/json", body)
}
