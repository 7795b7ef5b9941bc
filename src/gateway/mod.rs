//! The intake gateway: channel formats in, intake requests out.

pub mod normalize;
