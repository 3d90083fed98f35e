//! Callbacks careline places itself: each due callback request waits for an agent in its queue
//! at its place, and once one is reserved for it, careline asks Twilio's REST API to call the
//! patient; the TwiML and status routes ([`super::callback_routes`]) take it from there.
//!
//! Every node runs [`run`]: once a second it reads the callback requests and *claims* (by
//! compare-and-set, with a lease renewed while it holds it) each one that is due and held by
//! nobody. For a claimed request it joins the request's queue through the router as a
//! [`QueuedCall`] named by the request (`callback:<id>`, enqueued at the request's place), so
//! the router's exactly-once reservation decides who takes it, as for a caller on the line; the
//! reservation comes back to the task waiting on it here instead of a media session. It then
//! starts an attempt on the request and posts `Calls.json`. A REST error (a refusal, a timeout)
//! ends the attempt at once: the agent is freed, the request due again `retry_after_secs`
//! later — logged without the number, counted, never lost.
//!
//! A node that dies holding a request lets its lease run out; another node claims it and joins
//! again, which keeps the request's place (and takes over a reservation made for it). An attempt
//! whose webhooks never came is ended as `lost` after [`ATTEMPT_DEADLINE`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::CallServices;
use crate::config::CallbacksConfig;
use crate::dispatch::router::{JoinRefusal, LeaveReason};
use crate::store::callback::queue_call_sid;
use crate::store::stats::QueueStatEvent;
use crate::store::{
    AttemptEnd, AttemptOutcome, CallbackRequest, CallbackStatus, QueuedCall, RecordWrite, Store,
    StoreError,
};
use crate::telemetry::{Change, ChangeEvent, EventKind};
use crate::twilio::rest::{OutboundCall, TwilioAccount, created_call_sid, error_code};

/// How often a node looks for callbacks that are due.
pub const SCAN_EVERY: Duration = Duration::from_secs(1);
/// How long a node's hold on a request lasts unless renewed ...
pub const CLAIM_LEASE: Duration = Duration::from_secs(15);
/// ... which it is this often while it waits for an agent.
pub const CLAIM_RENEW_EVERY: Duration = Duration::from_secs(5);
/// An attempt no webhook ended by then is over: ringing the patient, two prompts and ringing
/// the agent take minutes, not half an hour.
pub const ATTEMPT_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// How long the patient's phone rings (`Timeout`).
pub const PATIENT_RING_SECS: u32 = 30;
/// How long `Calls.json` may take to answer.
pub const REST_TIMEOUT: Duration = Duration::from_secs(10);
/// A queue that is closed (or has nobody on shift) is asked again this much later, unless its
/// schedule says when it opens.
pub const CLOSED_RETRY: Duration = Duration::from_secs(60);
/// Compare-and-set attempts before giving up on a write (another node keeps winning).
const CAS_ATTEMPTS: usize = 16;

/// Why Twilio did not take a call. Carries a status and Twilio's error code, never the body
/// (it may quote the number).
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("Twilio's REST API answered HTTP {status}{}", twilio_code(*.code))]
    Refused { status: u16, code: Option<u64> },
    #[error("Twilio's REST API did not answer within {} s", REST_TIMEOUT.as_secs())]
    Timeout,
    #[error("Twilio's REST API could not be reached: {0}")]
    Unreachable(String),
    #[error("Twilio's REST API answered 2xx without the new call's sid")]
    NoSid,
}

fn twilio_code(code: Option<u64>) -> String {
    code.map(|code| format!(" (Twilio error {code})"))
        .unwrap_or_default()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Read, change and write back a callback request until the write wins. `change` returns `None`
/// to write nothing. Returns what `change` returned and the request as written.
pub async fn update_callback<T>(
    store: &dyn Store,
    id: &str,
    mut change: impl FnMut(&mut CallbackRequest) -> Option<T>,
) -> Result<Option<(T, CallbackRequest)>, StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(mut request) = store.callback(id).await? else {
            return Ok(None);
        };
        let read = request.version;
        let Some(outcome) = change(&mut request) else {
            return Ok(None);
        };
        if let RecordWrite::Written { version } = store.replace_callback(&request, read).await? {
            request.version = version;
            return Ok(Some((outcome, request)));
        }
    }
    Err(StoreError::Unavailable(format!(
        "the callback request {id} kept changing under {CAS_ATTEMPTS} attempts"
    )))
}

/// The settings an attempt ends by: the running `[callbacks]`, or the defaults after a reload
/// took it out.
fn retry_rules(node: &CallServices) -> (i64, u32) {
    match &node.running.current().callbacks {
        Some(settings) => (
            millis(
                crate::config::limits::CALLBACK_RETRY_AFTER_SECS.secs(settings.retry_after_secs),
            ),
            crate::config::limits::CALLBACK_MAX_ATTEMPTS.clamp_u32(settings.max_attempts),
        ),
        None => (900_000, 3),
    }
}

/// End attempt `number` of request `id` with `outcome` (idempotent: an attempt ends once).
/// Unless it connected, what it held is released: its place in the queue and the agent
/// reserved for it. Counts the request connected or given up, and announces the change.
pub async fn finish_attempt(
    node: &CallServices,
    id: &str,
    number: u32,
    outcome: AttemptOutcome,
) -> Option<AttemptEnd> {
    let (retry_after_ms, max_attempts) = retry_rules(node);
    let now_ms = node.router.now().as_millisecond();
    let finished = update_callback(node.store.as_ref(), id, |request| {
        request.finish_attempt(number, outcome, now_ms, retry_after_ms, max_attempts)
    })
    .await;
    let (end, request) = match finished {
        Ok(Some(finished)) => finished,
        Ok(None) => return None,
        Err(error) => {
            node.metrics.store_error();
            tracing::warn!(callback = %id, attempt = number, %error, "the end of a callback attempt could not be recorded; its deadline will");
            return None;
        }
    };
    if outcome != AttemptOutcome::Connected {
        node.router
            .leave(&queue_call_sid(id), LeaveReason::Callback)
            .await;
    }
    match end {
        AttemptEnd::Done if outcome == AttemptOutcome::Connected => {
            node.router
                .record(&request.queue, QueueStatEvent::CallbackConnected);
        }
        AttemptEnd::GaveUp => {
            node.router
                .record(&request.queue, QueueStatEvent::CallbackFailed);
        }
        AttemptEnd::Done | AttemptEnd::Retry { .. } => {}
    }
    tracing::info!(callback = %id, attempt = number, outcome = outcome.as_str(), ?end, "callback attempt ended");
    announce(node, &request);
    Some(end)
}

/// Tell dashboards and workspaces that a callback request changed.
fn announce(node: &CallServices, request: &CallbackRequest) {
    node.events.publish(
        ChangeEvent::new(
            EventKind::Queue,
            Change::Callback,
            node.router.now().as_millisecond(),
        )
        .queue(&request.queue)
        .call(&queue_call_sid(&request.id)),
    );
}

/// The requests this node holds a task for.
type Held = Arc<Mutex<HashSet<String>>>;

fn held(held: &Held) -> std::sync::MutexGuard<'_, HashSet<String>> {
    // Each change is one insert or remove: a poisoned set is still whole.
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Place due callbacks until `stop`: see the module documentation. Idle while the running
/// configuration has no `[callbacks]` or the node has no Twilio account.
pub async fn run(node: CallServices, stop: CancellationToken) {
    if node.running.current().callbacks.is_some() && node.twilio_account.is_none() {
        tracing::warn!(
            "[callbacks] is set but TWILIO_ACCOUNT_SID (with CARELINE_TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and TWILIO_API_SECRET) is not: callback requests wait for agents to return them by hand"
        );
    }
    let http = match reqwest::Client::builder().timeout(REST_TIMEOUT).build() {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "no HTTP client for Twilio's REST API: callbacks are not placed");
            return;
        }
    };
    let holding: Held = Arc::default();
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(SCAN_EVERY) => {}
        }
        let (Some(settings), Some(account)) = (
            node.running.current().callbacks.clone(),
            node.twilio_account.clone(),
        ) else {
            continue;
        };
        if let Err(error) = scan(&node, &holding, &tasks, &http, &settings, &account, &stop).await {
            node.metrics.store_error();
            tracing::debug!(%error, "callbacks: the store could not be read this round");
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// One look at the requests: stale attempts ended, due ones claimed and handed to a task.
async fn scan(
    node: &CallServices,
    holding: &Held,
    tasks: &tokio_util::task::TaskTracker,
    http: &reqwest::Client,
    settings: &CallbacksConfig,
    account: &Arc<TwilioAccount>,
    stop: &CancellationToken,
) -> Result<(), StoreError> {
    let now_ms = node.router.now().as_millisecond();
    let node_id = node.router.node_id().to_owned();
    for request in node.store.callbacks().await? {
        if request.status != CallbackStatus::Pending {
            // Listed after every pending one.
            break;
        }
        if let Some(number) = request.stale_attempt(now_ms - millis(ATTEMPT_DEADLINE)) {
            tracing::warn!(callback = %request.id, attempt = number, "no webhook ended a callback attempt; it is released and retried");
            finish_attempt(node, &request.id, number, AttemptOutcome::Lost).await;
            continue;
        }
        if held(holding).contains(&request.id) || !request.claimable_by(&node_id, now_ms) {
            continue;
        }
        let until_ms = now_ms.saturating_add(millis(CLAIM_LEASE));
        let claimed = update_callback(node.store.as_ref(), &request.id, |request| {
            request
                .claimable_by(&node_id, now_ms)
                .then(|| request.claim(&node_id, until_ms))
        })
        .await?;
        let Some(((), request)) = claimed else {
            continue;
        };
        held(holding).insert(request.id.clone());
        let task = Dialer {
            node: node.clone(),
            http: http.clone(),
            account: account.clone(),
            settings: settings.clone(),
            stop: stop.clone(),
        };
        let holding = holding.clone();
        tasks.spawn(async move {
            let id = request.id.clone();
            task.hold(request).await;
            held(&holding).remove(&id);
        });
    }
    Ok(())
}

/// What one claimed request's task needs.
struct Dialer {
    node: CallServices,
    http: reqwest::Client,
    account: Arc<TwilioAccount>,
    settings: CallbacksConfig,
    stop: CancellationToken,
}

/// How a renewal of the hold went.
enum Hold {
    Kept,
    /// Someone marked the request done (or another node holds it now).
    Lost {
        still_pending: bool,
    },
}

impl Dialer {
    fn now_ms(&self) -> i64 {
        self.node.router.now().as_millisecond()
    }

    /// Wait in the request's queue for an agent, keeping the hold; then place the call.
    async fn hold(self, request: CallbackRequest) {
        let id = request.id.clone();
        let call_sid = queue_call_sid(&id);
        let call = QueuedCall {
            call_sid: call_sid.clone(),
            queue: request.queue.clone(),
            node: self.node.router.node_id().to_owned(),
            enqueued_at_ms: request.place_ms,
            priority: 0,
            verification_failed: request.verification_failed,
            callback_id: Some(id.clone()),
        };
        let mut reservations = match self.node.router.join(call, self.node.router.now()).await {
            Ok(reservations) => reservations,
            Err(refusal) => {
                self.not_now(&request, &refusal).await;
                return;
            }
        };
        tracing::info!(callback = %id, queue = %request.queue, "callback due: waiting for an agent");
        announce(&self.node, &request);
        let mut renew = tokio::time::interval(CLAIM_RENEW_EVERY);
        renew.tick().await;
        loop {
            tokio::select! {
                reservation = reservations.recv() => {
                    // `None`: a later join of the same request took its reservations over.
                    if let Some(reservation) = reservation {
                        self.dial(&id, &reservation.agent_id).await;
                    }
                    return;
                }
                _ = renew.tick() => match self.renew(&id).await {
                    Hold::Kept => {}
                    Hold::Lost { still_pending } => {
                        if still_pending {
                            // Another node holds it now: its join keeps the place.
                            self.node.router.forget(&call_sid);
                        } else {
                            self.node.router.leave(&call_sid, LeaveReason::Callback).await;
                        }
                        return;
                    }
                },
                () = self.stop.cancelled() => {
                    // Give it back: another node takes it at its place.
                    self.node.router.leave(&call_sid, LeaveReason::Callback).await;
                    let released = update_callback(self.node.store.as_ref(), &id, |request| {
                        (request.claimed_by == self.node.router.node_id()).then(|| request.release_claim())
                    })
                    .await;
                    if let Err(error) = released {
                        tracing::debug!(callback = %id, %error, "a held callback could not be released at shutdown; its lease runs out");
                    }
                    return;
                }
            }
        }
    }

    /// The queue would not take the request now: due again when it opens.
    async fn not_now(&self, request: &CallbackRequest, refusal: &JoinRefusal) {
        let now = self.node.router.now();
        let flow = self.node.flow();
        let opens = flow
            .queues
            .get(&request.queue)
            .and_then(|queue| queue.schedule.as_ref())
            .and_then(|schedule| flow.schedules.get(schedule))
            .and_then(|schedule| schedule.next_open(now))
            .map(|at| at.as_millisecond());
        let retry_ms = now.as_millisecond().saturating_add(millis(CLOSED_RETRY));
        let due_ms = match (refusal, opens) {
            (JoinRefusal::Closed, Some(opens)) => opens.max(retry_ms),
            _ => retry_ms,
        };
        tracing::info!(callback = %request.id, queue = %request.queue, error = %refusal, "a due callback cannot wait for an agent now; it is tried again later");
        if let JoinRefusal::Unavailable(_) = refusal {
            self.node
                .router
                .withdraw(&queue_call_sid(&request.id))
                .await;
        }
        let node_id = self.node.router.node_id().to_owned();
        let written = update_callback(self.node.store.as_ref(), &request.id, |request| {
            (request.claimed_by == node_id).then(|| {
                request.release_claim();
                request.due_at_ms = request.due_at_ms.max(due_ms);
            })
        })
        .await;
        if let Err(error) = written {
            tracing::debug!(callback = %request.id, %error, "a callback's next try could not be written; its lease runs out");
        }
    }

    /// Renew this node's hold, unless the request is no longer pending or held here.
    async fn renew(&self, id: &str) -> Hold {
        let node_id = self.node.router.node_id().to_owned();
        let now_ms = self.now_ms();
        let until_ms = now_ms.saturating_add(millis(CLAIM_LEASE));
        let mut still_pending = false;
        let renewed = update_callback(self.node.store.as_ref(), id, |request| {
            still_pending = request.status == CallbackStatus::Pending;
            let ours = still_pending
                && request.attempt_in_progress().is_none()
                && (request.claimed_by == node_id || request.claimed_until_ms <= now_ms);
            ours.then(|| request.claim(&node_id, until_ms))
        })
        .await;
        match renewed {
            Ok(Some(_)) => Hold::Kept,
            Ok(None) => Hold::Lost { still_pending },
            // The store is away: keep waiting; the hold runs out if it stays away.
            Err(error) => {
                self.node.metrics.store_error();
                tracing::debug!(callback = %id, %error, "a callback's hold could not be renewed now");
                Hold::Kept
            }
        }
    }

    /// An agent is reserved: start an attempt and ask Twilio to place the call.
    async fn dial(&self, id: &str, agent_id: &str) {
        let now_ms = self.now_ms();
        let started = update_callback(self.node.store.as_ref(), id, |request| {
            (request.status == CallbackStatus::Pending && request.attempt_in_progress().is_none())
                .then(|| request.start_attempt(agent_id, now_ms))
        })
        .await;
        let (number, request) = match started {
            Ok(Some(started)) => started,
            Ok(None) => {
                // Marked done meanwhile: the agent is not needed.
                self.node
                    .router
                    .leave(&queue_call_sid(id), LeaveReason::Callback)
                    .await;
                return;
            }
            Err(error) => {
                self.node.metrics.store_error();
                tracing::warn!(callback = %id, %error, "a callback attempt could not be started; it is tried again");
                self.node
                    .router
                    .leave(&queue_call_sid(id), LeaveReason::Callback)
                    .await;
                return;
            }
        };
        announce(&self.node, &request);
        let query = format!(
            "id={}&attempt={number}",
            form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        );
        let base = &self.node.public_base;
        let answer_url = format!("{base}/twilio/callback/answer?{query}");
        let status_url = format!("{base}/twilio/callback/status?{query}");
        let call = OutboundCall {
            to: &request.number,
            from: &self.settings.caller_id,
            url: &answer_url,
            status_callback: &status_url,
            timeout_secs: PATIENT_RING_SECS,
        };
        match self.place(&call).await {
            Ok(twilio_sid) => {
                self.node.metrics.callback_placed();
                self.node
                    .router
                    .record(&request.queue, QueueStatEvent::CallbackAttempt);
                tracing::info!(callback = %id, attempt = number, agent = %agent_id, %twilio_sid, "callback call placed");
                let noted = update_callback(self.node.store.as_ref(), id, |request| {
                    request.attempt_placed(number, &twilio_sid).then_some(())
                })
                .await;
                if let Err(error) = noted {
                    tracing::debug!(callback = %id, %error, "the callback call's sid could not be noted");
                }
            }
            Err(error) => {
                self.node.metrics.callback_rest_error();
                tracing::warn!(callback = %id, attempt = number, %error, "Twilio did not take the callback call; it is tried again later");
                finish_attempt(&self.node, id, number, AttemptOutcome::RestError).await;
            }
        }
    }

    /// `POST Calls.json`; the new call's sid.
    async fn place(&self, call: &OutboundCall<'_>) -> Result<String, RestError> {
        let response = self
            .http
            .post(self.account.calls_url(self.settings.api_base()))
            .basic_auth(&self.account.username, Some(self.account.secret()))
            .form(&call.form())
            .send()
            .await
            .map_err(|error| {
                if error.is_timeout() {
                    RestError::Timeout
                } else {
                    RestError::Unreachable(error.without_url().to_string())
                }
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| {
            if error.is_timeout() {
                RestError::Timeout
            } else {
                RestError::Unreachable(error.without_url().to_string())
            }
        })?;
        if status.is_success() {
            created_call_sid(&body).ok_or(RestError::NoSid)
        } else {
            Err(RestError::Refused {
                status: status.as_u16(),
                code: error_code(&body),
            })
        }
    }
}
