//! The smallest Spinling function: a WASI command whose stdout is the result (a JSON string)
//! and whose stderr is the log.

fn main() {
    eprintln!("hello: saying hello");
    println!("\"Hello, Spinling!\"");
}
