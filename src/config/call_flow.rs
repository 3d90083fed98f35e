//! The call flow as a graph of nodes, for the checks that follow paths: which nodes a call can
//! reach, and which nodes lead on to a person or a hang-up.
//!
//! The graph includes the edges the engine adds on its own, so the checks judge the flow a
//! caller actually gets: `0` at a menu that does not map it goes to `ivr.operator`, and a menu,
//! collect or password reset without `on_failure` falls back to the operator.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::model::{Config, Node};

/// The node graph with the edges the engine adds on its own: `0` to the operator from a menu
/// that does not use it, and a missing `on_failure` falling back to the operator.
pub struct CallFlow<'c> {
    config: &'c Config,
    /// node → (key that names the edge, target), targets that exist only.
    edges: BTreeMap<&'c str, Vec<(String, &'c str)>>,
}

impl<'c> CallFlow<'c> {
    pub fn new(config: &'c Config) -> CallFlow<'c> {
        let operator = config.ivr.operator.as_str();
        let mut edges = BTreeMap::new();
        for (name, node) in &config.nodes {
            let mut out = node.successors();
            let defaults_to_operator = match node {
                Node::Menu(menu) => {
                    if !menu.options.contains_key("0") {
                        out.push(("options.\"0\"".to_owned(), operator));
                    }
                    menu.on_failure.is_none()
                }
                Node::Collect(collect) => collect.on_failure.is_none(),
                Node::PasswordReset(reset) => reset.on_failure.is_none(),
                _ => false,
            };
            if defaults_to_operator {
                out.push(("on_failure".to_owned(), operator));
            }
            out.retain(|(_, target)| config.nodes.contains_key(*target));
            edges.insert(name.as_str(), out);
        }
        CallFlow { config, edges }
    }

    /// Nodes reachable from `roots` over the edges `follow` accepts.
    pub fn reachable_from(
        &self,
        roots: &[&'c str],
        follow: impl Fn(&Node, &str) -> bool,
    ) -> BTreeSet<&'c str> {
        let mut seen = BTreeSet::new();
        let mut pending: Vec<&str> = roots
            .iter()
            .copied()
            .filter(|root| self.config.nodes.contains_key(*root))
            .collect();
        while let Some(name) = pending.pop() {
            if !seen.insert(name) {
                continue;
            }
            let Some(node) = self.config.nodes.get(name) else {
                continue;
            };
            for (key, target) in self.edges.get(name).into_iter().flatten() {
                if follow(node, key) && !seen.contains(target) {
                    pending.push(target);
                }
            }
        }
        seen
    }

    /// Nodes from which some path reaches a node that satisfies `goal`.
    ///
    /// One backwards walk from the goals over reversed edges: linear in nodes plus edges. (A
    /// fixed point over all nodes took one pass per step of the longest chain, which made a
    /// 10,000-node chain take seconds.)
    pub fn can_reach(&self, goal: impl Fn(&Node) -> bool) -> BTreeSet<&'c str> {
        let mut leads_to: HashMap<&str, Vec<&'c str>> = HashMap::new();
        for (name, out) in &self.edges {
            for (_, target) in out {
                leads_to.entry(target).or_default().push(name);
            }
        }
        let mut pending: Vec<&'c str> = self
            .config
            .nodes
            .iter()
            .filter(|(_, node)| goal(node))
            .map(|(name, _)| name.as_str())
            .collect();
        let mut done: BTreeSet<&'c str> = BTreeSet::new();
        while let Some(name) = pending.pop() {
            if !done.insert(name) {
                continue;
            }
            for &earlier in leads_to.get(name).into_iter().flatten() {
                if !done.contains(earlier) {
                    pending.push(earlier);
                }
            }
        }
        done
    }
}
