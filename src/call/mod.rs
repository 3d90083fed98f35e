//! One call on this node: the Twilio routes (voice webhook, media upgrade, what to do after a
//! stream, status callbacks), the session task that drives the call engine with a media stream,
//! its audio out ([`player`]) and keys in ([`keypad`]), and every call's record in the store
//! ([`registry`], written by its session through [`record_notes`]), so any node serves any
//! request of any call.
//!
//! [`CallServices`] is what a call reaches on this node: the running configuration, the store,
//! the dispatcher, identity services, the change events and counters.
//!
//! The calls careline places itself to return callback requests are here too: [`callback`]
//! waits for an agent for each due request and asks Twilio's REST API to place the call, and
//! [`callback_routes`] answers that call's webhooks.

pub mod callback;
pub mod callback_routes;
pub mod keypad;
pub mod player;
pub mod record_notes;
pub mod registry;
pub mod routes;
pub mod running;
pub mod session;

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dispatch::{Roster, Router};
use crate::identity::IdentityService;
use crate::ivr::Flow;
use crate::media::prompt::PromptLibrary;
use crate::store::Store;
use crate::telemetry::{EventBus, Metrics};
use registry::CallRegistry;
use running::RunningConfig;

/// Everything a call's routes and session can reach on this node. Cheap to clone.
#[derive(Clone)]
pub struct CallServices {
    /// The flow, prompts, roster and settings new calls use; replaced by a reload.
    pub running: Arc<RunningConfig>,
    pub calls: Arc<CallRegistry>,
    /// `public_url` without a trailing slash: the base Twilio signs webhook URLs with.
    pub public_base: Arc<str>,
    /// `ws(s)://` form of `public_base`, for the stream URL and the upgrade's signature.
    pub websocket_base: Arc<str>,
    /// `CARELINE_TWILIO_AUTH_TOKEN`; when set, every `/twilio/*` request must be signed.
    pub twilio_auth_token: Option<Arc<str>>,
    pub tracker: TaskTracker,
    /// Cancelled when calls in progress must close (after the shutdown grace period).
    pub force_close: CancellationToken,
    /// Cancelled when this node drains: `/healthz` says `draining`, no new stream is taken,
    /// and every stream closes so Twilio resumes its call on another node.
    pub drain: CancellationToken,
    /// Queues, agents, lockout counters, reset codes: memory (one node) or Redis (shared).
    pub store: Arc<dyn Store>,
    /// Verification and reset; `None` when the configuration has no `[identity]` or its
    /// secrets are missing (verify nodes then send callers to a person).
    pub identity: Option<Arc<IdentityService>>,
    /// This node's queue dispatcher; the server runs its loop.
    pub router: Arc<Router>,
    /// Queue, agent and call changes for `/api/v1/events`; shared across nodes through Redis.
    pub events: Arc<EventBus>,
    /// This node's Prometheus counters (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// The Twilio account callbacks are placed from (`TWILIO_ACCOUNT_SID` and its secret);
    /// `None`: callback requests wait for agents to return them by hand.
    pub twilio_account: Option<Arc<crate::twilio::rest::TwilioAccount>>,
}

impl CallServices {
    /// The running call flow (new calls start on it).
    pub fn flow(&self) -> Arc<Flow> {
        self.running.current().flow.clone()
    }

    pub fn prompts(&self) -> Arc<PromptLibrary> {
        self.running.current().prompts.clone()
    }

    /// The configured agents and queues.
    pub fn roster(&self) -> Arc<Roster> {
        self.running.current().roster.clone()
    }

    /// Where voicemails are written and listed from: `[recordings] dir`, resolved.
    pub fn recordings_dir(&self) -> Arc<Path> {
        self.running.current().recordings_dir.clone()
    }
}

#[cfg(test)]
mod handoff_tests;
#[cfg(test)]
mod tests;
