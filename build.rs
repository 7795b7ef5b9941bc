//! Rebuilds the library when a migration is added or changed: `refinery::embed_migrations!`
//! reads `migrations/` at compile time, and cargo does not otherwise know it depends on them.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
