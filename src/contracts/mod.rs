//! Every message Switchboard puts on or takes off the wire, in one place: what a channel
//! integration publishes, what the stages hand each other, what downstream systems receive.

pub mod events;
