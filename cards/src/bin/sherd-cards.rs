//! Host command: list CCID readers and the OpenPGP cards in them (filled in below).
fn main() {
    eprintln!("sherd-cards: not implemented yet");
    std::process::exit(2);
}
