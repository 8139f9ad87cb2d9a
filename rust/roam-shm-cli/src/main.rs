//! roam-shm command-line tool.
fn main() {
    println!("roam-shm");
}
