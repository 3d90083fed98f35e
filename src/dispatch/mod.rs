//! Queue dispatch: which agents may take each queue's calls ([`eligibility`]), the configured
//! roster ([`roster`]), and this node's router ([`router`]), which matches the calls it carries
//! with free agents through the store's atomic reservations and hands each one to its call.

pub mod eligibility;
pub mod roster;
pub mod router;

pub use roster::Roster;
pub use router::Router;
