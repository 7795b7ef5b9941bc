//! Every message Switchboard puts on or takes off the wire, in one place: what a channel
//! integration publishes, what the stages hand each other, what downstream systems receive.

pub mod action;
pub mod events;
pub mod intake;
pub mod outgoing;
pub mod stage;
pub mod timer;
pub mod work;

pub use outgoing::{Body, Exchange, Outgoing};
pub use stage::StageName;
