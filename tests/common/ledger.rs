//! A ledger of the calls and agents handed out by reservations, for exactly-once tests: a call or
//! an agent is taken when its reservation is received and given back before the store is told the
//! offer was missed or the call ended, so a call offered twice or an agent given a second call
//! fails the test where it happens.

use std::collections::{HashMap, HashSet};

use careline::store::Reservation;

#[derive(Default)]
pub struct Ledger {
    /// Call → the agent it is offered to or talking with.
    calls_in_hand: HashMap<String, String>,
    /// Agent → the call they hold.
    agents_in_hand: HashMap<String, String>,
    pub served: HashSet<String>,
    pub offers: usize,
    pub misses: usize,
}

impl Ledger {
    pub fn take(&mut self, reservation: &Reservation) {
        let call = &reservation.call.call_sid;
        let agent = &reservation.agent_id;
        assert!(
            !self.served.contains(call),
            "{call} was offered again after it was served"
        );
        if let Some(holder) = self.calls_in_hand.insert(call.clone(), agent.clone()) {
            panic!("{call} offered to {agent} while still with {holder}");
        }
        if let Some(held) = self.agents_in_hand.insert(agent.clone(), call.clone()) {
            panic!("{agent} given {call} while still holding {held}");
        }
        self.offers += 1;
    }

    pub fn give_back(&mut self, call: &str, agent: &str) {
        assert_eq!(self.calls_in_hand.remove(call).as_deref(), Some(agent));
        assert_eq!(self.agents_in_hand.remove(agent).as_deref(), Some(call));
    }

    /// The offer rang out: the call goes back to its place, the agent is free again.
    pub fn missed(&mut self, call: &str, agent: &str) {
        self.give_back(call, agent);
        self.misses += 1;
    }

    pub fn served(&mut self, call: &str, agent: &str) {
        self.give_back(call, agent);
        assert!(self.served.insert(call.to_owned()), "{call} served twice");
    }

    /// Nothing is left in anyone's hands.
    pub fn all_given_back(&self) -> bool {
        self.calls_in_hand.is_empty() && self.agents_in_hand.is_empty()
    }
}
