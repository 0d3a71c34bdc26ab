/// Counters of one run. Conservation: `messages_sent + duplicated` equals
/// `messages_delivered + dropped_by_loss + dropped_by_partition + dropped_at_crashed_node`
/// plus the messages still in flight.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SimStats {
    /// Messages nodes handed to the network.
    pub messages_sent: u64,
    /// Message copies a node received.
    pub messages_delivered: u64,
    /// Messages lost by the loss rate.
    pub dropped_by_loss: u64,
    /// Message copies blocked by a partition, when sent or when due to arrive.
    pub dropped_by_partition: u64,
    /// Message copies that arrived at a crashed node, or at a node restarted since they were sent.
    pub dropped_at_crashed_node: u64,
    /// Extra copies made by the duplication rate.
    pub duplicated: u64,
    /// Bytes of all messages sent ([`SimulatedNode::message_bytes`](crate::SimulatedNode::message_bytes)).
    pub bytes_sent: u64,
    /// Bytes of all message copies delivered.
    pub bytes_delivered: u64,
    /// Events taken off the queue (deliveries, drops on arrival, timers, including stale ones).
    pub events_processed: u64,
    /// Timer callbacks run.
    pub timer_fires: u64,
    /// The most message copies in flight at once.
    pub peak_in_flight: u64,
    /// Crashes.
    pub crashes: u64,
    /// Restarts.
    pub restarts: u64,
    /// Per-node counters, by node index.
    pub per_node: Vec<NodeStats>,
}

/// Counters of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NodeStats {
    /// Messages this node sent.
    pub sent: u64,
    /// Message copies this node received.
    pub received: u64,
    /// Bytes this node sent.
    pub bytes_sent: u64,
    /// Bytes this node received.
    pub bytes_received: u64,
}

impl SimStats {
    /// Every message copy accounted for as delivered or dropped.
    pub fn settled(&self) -> u64 {
        self.messages_delivered
            + self.dropped_by_loss
            + self.dropped_by_partition
            + self.dropped_at_crashed_node
    }
}
