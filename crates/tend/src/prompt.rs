//! Asking the person at the terminal for a secret (`-K/--ask-become-pass`).

use std::io::{BufRead, BufReader, Write};

use rustix::termios::{self, LocalModes, OptionalActions};
use tend_proto::Secret;

/// Asks for the become password on the controlling terminal (`/dev/tty`, not stdin), without
/// echo, once per run, as ansible-playbook's `BECOME password: `.
pub fn become_password() -> std::io::Result<Secret> {
    ask("BECOME password: ")
}

/// Asks for a vault password (`-J`, `--vault-id LABEL@prompt`), as ansible's
/// `Vault password: ` / `Vault password (LABEL): `.
pub fn vault_password(label: &str) -> std::io::Result<Secret> {
    if label == tend_lang::vault::DEFAULT_ID {
        ask("Vault password: ")
    } else {
        ask(&format!("Vault password ({label}): "))
    }
}

fn ask(prompt: &str) -> std::io::Result<Secret> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let saved = termios::tcgetattr(&tty)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    // Echo goes off before the prompt shows, so nothing typed after it is ever echoed.
    termios::tcsetattr(&tty, OptionalActions::Flush, &quiet)?;
    let shown = (&tty)
        .write_all(prompt.as_bytes())
        .and_then(|()| (&tty).flush());
    if let Err(e) = shown {
        let _ = termios::tcsetattr(&tty, OptionalActions::Now, &saved);
        return Err(e);
    }
    let mut line = String::new();
    let read = BufReader::new(&tty).read_line(&mut line);
    // Echo comes back whatever happened.
    let restored = termios::tcsetattr(&tty, OptionalActions::Now, &saved);
    read?;
    restored?;
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(Secret::new(line))
}
