mod digest;
mod fs;
mod layer;
mod plan;
mod profile;
mod rewrite;
mod scan;
fn main() {}
