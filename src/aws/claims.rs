//! Start ids claimed in a DynamoDB table, so that two Lambda instances given the same change
//! never both start it: the persistence layer of AWS Lambda Powertools' idempotency utility,
//! with its item layout and its conditions, for one start id at a time.
//!
//! An item per start id (the table's string partition key `id`):
//!
//! | attribute | what it holds |
//! |---|---|
//! | `id` | the start id |
//! | `status` | `INPROGRESS` while an instance attempts the start, `COMPLETED` once it succeeded |
//! | `in_progress_expiration` | Unix milliseconds: when an `INPROGRESS` claim lapses (the lease) |
//! | `expiration` | Unix seconds: when the item no longer counts; the table's TTL attribute |
//! | `claim` | a random token of the instance that wrote the claim |
//!
//! [`Claims::claim`] is one conditional PutItem, which succeeds when the start id has no item,
//! when its item has expired, or when its item is an `INPROGRESS` claim whose lease lapsed (its
//! instance died or ran out of time). Otherwise the item that stood in the way says why:
//! `COMPLETED` (the start happened: [`Claim::Done`]) or `INPROGRESS` (another instance is at
//! it: [`Claim::Busy`]). After a success the holder marks the item `COMPLETED`
//! ([`Claims::complete`]); after a failure it deletes it ([`Claims::release`]), so that a
//! redelivery may try again. Both are conditional on the holder's token: a claim whose lease
//! lapsed and that another instance took over is not touched.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use tokio::sync::OnceCell;

/// The partition key: the start id.
pub const KEY: &str = "id";
/// `INPROGRESS` or `COMPLETED`.
pub const STATUS: &str = "status";
/// When an `INPROGRESS` claim lapses, Unix milliseconds.
pub const IN_PROGRESS_EXPIRY: &str = "in_progress_expiration";
/// When the item stops counting, Unix seconds: the table's TTL attribute.
pub const EXPIRY: &str = "expiration";
/// The token of the instance that claimed.
pub const TOKEN: &str = "claim";

const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";

/// How long an item counts when `SWITCHYARD_DYNAMODB_TTL` does not say: 14 days, the longest a
/// message can live in SQS (a dead-letter queue counts its retention from the first enqueue),
/// so that a record redriven from the dead-letter queue still finds its completed starts.
pub const DEFAULT_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// The longest lease of a claim: an instance that dies while it holds one keeps the start from
/// others no longer than this.
pub const LEASE_MAX: Duration = Duration::from_secs(300);

/// Kept between the end of a claim's attempts and the end of its lease, for the clocks of two
/// instances to differ by.
pub const CLOCK_SLACK: Duration = Duration::from_secs(1);

/// The claim a start id has in the table.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This instance holds it: attempt the start before `until`, then
    /// [`complete`](Claims::complete) or [`release`](Claims::release) with the token.
    Ours { token: String, until: Instant },
    /// The start succeeded before: do not repeat it.
    Done,
    /// Another instance attempts it, its lease ending at `until_ms` (Unix milliseconds).
    Busy { until_ms: i64 },
}

/// Why the table could not be asked or answered something unexpected.
#[derive(Debug, thiserror::Error)]
#[error("DynamoDB table {table}: {message}")]
pub struct ClaimError {
    pub table: String,
    pub message: String,
}

/// The claims of one table.
#[derive(Debug)]
pub struct Claims {
    table: String,
    ttl: Duration,
    region: Option<String>,
    endpoint_url: Option<String>,
    client: OnceCell<aws_sdk_dynamodb::Client>,
}

/// The lease of a claim made now, for attempts that must end by `deadline`: up to the
/// deadline, at most [`LEASE_MAX`]. The attempts end when the lease does; the item says
/// [`CLOCK_SLACK`] later.
pub fn lease(now: Instant, deadline: Instant) -> Duration {
    deadline.saturating_duration_since(now).min(LEASE_MAX)
}

/// What an item that stood in a claim's way means, at `now_ms`.
fn verdict(item: &HashMap<String, AttributeValue>, now_ms: i64) -> Result<Claim, String> {
    let number = |name: &str| -> Option<i64> {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
    };
    let status = item.get(STATUS).and_then(|v| v.as_s().ok());
    match status.map(String::as_str) {
        Some(COMPLETED) => Ok(Claim::Done),
        Some(IN_PROGRESS) => Ok(Claim::Busy {
            until_ms: number(IN_PROGRESS_EXPIRY).unwrap_or(now_ms),
        }),
        Some(other) => Err(format!(
            "the item has {STATUS} {other:?}, which switchyard does not write"
        )),
        None => Err(format!("the item has no {STATUS}")),
    }
}

/// Unix milliseconds now.
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

impl Claims {
    /// Claims in `table`, items kept `ttl`, through the SDK's chain for what `region` and
    /// `endpoint_url` leave out (each `None` for the chain: `AWS_REGION`, `AWS_ENDPOINT_URL`).
    pub fn new(
        table: String,
        ttl: Duration,
        region: Option<String>,
        endpoint_url: Option<String>,
    ) -> Claims {
        Claims {
            table,
            ttl,
            region,
            endpoint_url,
            client: OnceCell::new(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn client(&self) -> &aws_sdk_dynamodb::Client {
        self.client
            .get_or_init(|| async {
                let sdk =
                    super::sdk_config(self.region.as_deref(), self.endpoint_url.as_deref()).await;
                aws_sdk_dynamodb::Client::new(&sdk)
            })
            .await
    }

    fn error(&self, message: String) -> ClaimError {
        ClaimError {
            table: self.table.clone(),
            message,
        }
    }

    /// When an item written now stops counting, Unix seconds.
    fn expiry(&self, now_ms: i64) -> i64 {
        now_ms / 1000 + self.ttl.as_secs() as i64
    }

    /// Claims start `id` for attempts that must end by `deadline` (see [`lease`]).
    pub async fn claim(&self, id: &str, deadline: Instant) -> Result<Claim, ClaimError> {
        // An item deleted between the refused put and the read that asks why: once more.
        for _ in 0..2 {
            let now = Instant::now();
            let now_ms = unix_ms();
            let lease = lease(now, deadline);
            let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            let lease_ms = (lease + CLOCK_SLACK).as_millis() as i64;
            let put = self
                .client()
                .await
                .put_item()
                .table_name(&self.table)
                .item(KEY, s(id))
                .item(STATUS, s(IN_PROGRESS))
                .item(IN_PROGRESS_EXPIRY, n(now_ms + lease_ms))
                .item(EXPIRY, n(self.expiry(now_ms)))
                .item(TOKEN, s(&token))
                .condition_expression(
                    "attribute_not_exists(#id) OR #expiry < :now \
                     OR (#status = :inprogress AND #in_progress_expiry < :now_ms)",
                )
                .expression_attribute_names("#id", KEY)
                .expression_attribute_names("#expiry", EXPIRY)
                .expression_attribute_names("#status", STATUS)
                .expression_attribute_names("#in_progress_expiry", IN_PROGRESS_EXPIRY)
                .expression_attribute_values(":now", n(now_ms / 1000))
                .expression_attribute_values(":now_ms", n(now_ms))
                .expression_attribute_values(":inprogress", s(IN_PROGRESS))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let refused = match put {
                Ok(_) => {
                    return Ok(Claim::Ours {
                        token,
                        until: now + lease,
                    });
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    match e.into_service_error() {
                        PutItemError::ConditionalCheckFailedException(refused) => refused,
                        other => return Err(self.error(format!("PutItem: {other}"))),
                    }
                }
                Err(e) => return Err(self.error(format!("PutItem: {}", super::describe(&e)))),
            };
            // The item that stood in the way: in the refusal, or read (DynamoDB before
            // mid-2023 and some emulators do not return it).
            let item = match refused.item() {
                Some(item) => Some(item.clone()),
                None => self.read(id).await?,
            };
            if let Some(item) = item {
                return verdict(&item, now_ms).map_err(|m| self.error(format!("start {id}: {m}")));
            }
        }
        Err(self.error(format!(
            "start {id}: its claim was refused twice and then gone; another instance is at it"
        )))
    }

    /// The item of start `id`, read consistently.
    async fn read(&self, id: &str) -> Result<Option<HashMap<String, AttributeValue>>, ClaimError> {
        let out = self
            .client()
            .await
            .get_item()
            .table_name(&self.table)
            .key(KEY, s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(format!("GetItem: {}", super::describe(&e))))?;
        Ok(out.item().cloned())
    }

    /// Marks start `id`, which this instance claimed with `token`, as done. `Ok(false)` when the
    /// claim had lapsed and another instance had taken it over.
    pub async fn complete(&self, id: &str, token: &str) -> Result<bool, ClaimError> {
        let now_ms = unix_ms();
        let update = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(id))
            .update_expression("SET #status = :completed, #expiry = :expiry")
            .condition_expression("#claim = :token")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#expiry", EXPIRY)
            .expression_attribute_names("#claim", TOKEN)
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":expiry", n(self.expiry(now_ms)))
            .expression_attribute_values(":token", s(token))
            .send()
            .await;
        match update {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.error(format!("UpdateItem: {}", super::describe(&e)))),
        }
    }

    /// Gives up the claim of start `id` made with `token`, so that a redelivery may attempt
    /// it. `Ok(false)` when the claim had lapsed and another instance had taken it over.
    pub async fn release(&self, id: &str, token: &str) -> Result<bool, ClaimError> {
        let delete = self
            .client()
            .await
            .delete_item()
            .table_name(&self.table)
            .key(KEY, s(id))
            .condition_expression("#claim = :token")
            .expression_attribute_names("#claim", TOKEN)
            .expression_attribute_values(":token", s(token))
            .send()
            .await;
        match delete {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.error(format!("DeleteItem: {}", super::describe(&e)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(fields: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn the_item_in_the_way_says_why() {
        let now = 1_000_000;
        let cases = [
            (
                item(&[(STATUS, s(COMPLETED)), (EXPIRY, n(2_000))]),
                Ok(Claim::Done),
            ),
            (
                item(&[(STATUS, s(IN_PROGRESS)), (IN_PROGRESS_EXPIRY, n(1_060_000))]),
                Ok(Claim::Busy {
                    until_ms: 1_060_000,
                }),
            ),
            (
                item(&[(STATUS, s(IN_PROGRESS))]),
                Ok(Claim::Busy { until_ms: now }),
            ),
            (
                item(&[(STATUS, s("EXPIRED"))]),
                Err("the item has status \"EXPIRED\", which switchyard does not write".to_owned()),
            ),
            (
                item(&[(KEY, s("x"))]),
                Err("the item has no status".to_owned()),
            ),
        ];
        for (item, want) in cases {
            assert_eq!(verdict(&item, now), want, "{item:?}");
        }
    }

    #[test]
    fn a_lease_ends_by_the_deadline_and_is_capped() {
        let now = Instant::now();
        let cases = [
            (Duration::from_secs(30), Duration::from_secs(30)),
            (Duration::ZERO, Duration::ZERO),
            (Duration::from_secs(900), LEASE_MAX),
        ];
        for (left, want) in cases {
            assert_eq!(lease(now, now + left), want, "{left:?}");
        }
        // A deadline already past: no lease, never a panic.
        assert_eq!(lease(now + Duration::from_secs(1), now), Duration::ZERO);
    }
}
