//! What the job writes for people to read: logs, text from outside escaped for a terminal, and
//! every secret masked on its way out.

pub mod logs;
pub mod secrets;
pub mod terminal;
