//! Layer bytes: compression codecs and the tar entry stream. The two stages that read
//! layers — [`crate::scan`] and [`crate::rewrite`] — are built on these.
pub mod codec;
pub mod tar;
