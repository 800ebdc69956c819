//! Ansible's `key=value` argument strings (`copy: src=a dest=/b mode=0644`).

use tend_proto::{Value, Vars};

/// Splits an argument string the way ansible-core does before it looks for `k=v` pairs:
/// lines on `\n`, words on single spaces, with quoted strings and `{{ … }}` / `{% … %}` /
/// `{# … #}` put back together. Nothing is lost: runs of spaces stay on the word before them
/// and every line break stays on the last word of its line, so [`join_args`] gives back the
/// text of a free-form command exactly (a multi-line `shell: |` keeps its lines).
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut quote: Option<char> = None;
    // Open `{{`, `{%` and `{#` blocks.
    let mut depth = [0usize; 3];
    let lines: Vec<&str> = s.split('\n').collect();
    for (li, line) in lines.iter().enumerate() {
        let mut continued = false;
        for (wi, word) in line.split(' ').enumerate() {
            if word.is_empty() && wi != 0 {
                // A second space in a row belongs to the previous word.
                match out.last_mut() {
                    Some(last) => last.push(' '),
                    None => out.push(" ".into()),
                }
                continue;
            }
            if word == "\\" && quote.is_none() {
                continued = true;
                continue;
            }
            let was_quoted = quote.is_some();
            quote = quote_state(word, quote);
            let in_block = depth.iter().any(|d| *d > 0);
            let mut placed = false;
            if quote.is_some() && !was_quoted && !in_block {
                out.push(word.to_string());
                placed = true;
            } else if in_block || quote.is_some() || was_quoted {
                match out.last_mut() {
                    Some(last) => {
                        if wi > 0 {
                            last.push(' ');
                        }
                        last.push_str(word);
                    }
                    None => out.push(word.to_string()),
                }
                placed = true;
            }
            for (d, (open, close)) in
                depth
                    .iter_mut()
                    .zip([("{{", "}}"), ("{%", "%}"), ("{#", "#}")])
            {
                let before = *d;
                let opened = word.matches(open).count();
                let closed = word.matches(close).count();
                if opened != closed {
                    *d = (*d + opened).saturating_sub(closed);
                }
                if *d != before && !placed {
                    out.push(word.to_string());
                    placed = true;
                }
            }
            if !placed && quote.is_none() && depth.iter().all(|d| *d == 0) && !word.is_empty() {
                out.push(word.to_string());
            }
        }
        if lines.len() > 1 && li != lines.len() - 1 && !continued {
            match out.last_mut() {
                Some(last) => last.push('\n'),
                None => out.push("\n".into()),
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unbalanced quotes in: {s}"));
    }
    if depth.iter().any(|d| *d > 0) {
        return Err(format!("unbalanced template braces in: {s}"));
    }
    Ok(out)
}

/// Whether a quoted string is still open after `word` (an unescaped quote opens one; only the
/// same quote closes it).
fn quote_state(word: &str, mut quote: Option<char>) -> Option<char> {
    let mut prev = None;
    for c in word.chars() {
        if (c == '"' || c == '\'') && prev != Some('\\') {
            match quote {
                Some(q) if q == c => quote = None,
                Some(_) => {}
                None => quote = Some(c),
            }
        }
        prev = Some(c);
    }
    quote
}

/// Puts words from [`split_args`] back together: one space between words, none after a line
/// break.
pub fn join_args(words: &[String]) -> String {
    let mut out = String::new();
    for w in words {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if s.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[s.len() - 1] == b[0] {
        let q = b[0] as char;
        s[1..s.len() - 1].replace(&format!("\\{q}"), &q.to_string())
    } else {
        s.to_string()
    }
}

/// Parses `k=v k2="v 2"`. For modules that take a free-form command (`command`, `shell`…),
/// words that are not `k=v` go to `_raw_params`; for others, such words are an error.
pub fn parse_kv(s: &str, free_form: bool) -> Result<Vars, String> {
    let mut vars = Vars::new();
    let mut raw: Vec<String> = Vec::new();
    for word in split_args(s)? {
        let is_kv = match word.find('=') {
            Some(i) => {
                let k = &word[..i];
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            None => false,
        };
        if is_kv {
            let i = word.find('=').unwrap_or(0);
            let k = &word[..i];
            let v = unquote(word[i + 1..].trim());
            if free_form && !FREE_FORM_OPTIONS.contains(&k) {
                raw.push(word);
                continue;
            }
            vars.insert(k.to_string(), Value::String(v));
        } else if free_form {
            raw.push(word);
        } else {
            return Err(format!(
                "'{word}' is not in key=value form; write the arguments as key=value pairs or \
                 as a YAML mapping"
            ));
        }
    }
    if free_form && !raw.is_empty() {
        vars.insert("_raw_params".into(), Value::String(join_args(&raw)));
    }
    Ok(vars)
}

/// The `k=v` options a free-form module understands; everything else is part of the command.
const FREE_FORM_OPTIONS: &[&str] = &[
    "chdir",
    "creates",
    "removes",
    "executable",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
    "warn",
    "cmd",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_pairs_and_quotes() {
        let v = parse_kv("src=a.txt dest='/tmp/x y' mode=0644", false).unwrap();
        assert_eq!(v["src"], "a.txt");
        assert_eq!(v["dest"], "/tmp/x y");
        assert_eq!(v["mode"], "0644");
    }

    #[test]
    fn templates_stay_whole() {
        let v = parse_kv("msg={{ a ~ ' b' }} x=1", false).unwrap();
        assert_eq!(v["msg"], "{{ a ~ ' b' }}");
    }

    #[test]
    fn free_form_commands_keep_their_words() {
        let v = parse_kv("echo a=b hello chdir=/tmp", true).unwrap();
        assert_eq!(v["_raw_params"], "echo a=b hello");
        assert_eq!(v["chdir"], "/tmp");
    }

    #[test]
    fn free_form_commands_keep_lines_and_spaces_as_ansible_does() {
        // Expected values are what ansible-core 2.19's parse_kv(check_raw=True) returns.
        for (input, raw) in [
            (
                "set -e\necho one\necho two > /tmp/out\n",
                "set -e\necho one\necho two > /tmp/out\n",
            ),
            ("a\n\nb", "a\n\nb"),
            ("echo \"x\ny\" z\nw", "echo \"x\ny\" z\nw"),
            ("echo a    b\tc", "echo a    b\tc"),
            ("\necho", "\necho"),
            ("echo {{ a\n }} b\nc", "echo {{ a\n }} b\nc"),
        ] {
            let v = parse_kv(input, true).unwrap();
            assert_eq!(v["_raw_params"], raw, "{input:?}");
        }
        let v = parse_kv("creates=/x\necho hi", true).unwrap();
        assert_eq!(v["creates"], "/x");
        assert_eq!(v["_raw_params"], "echo hi");
        assert_eq!(
            split_args("set -e\necho one\n").unwrap(),
            ["set", "-e\n", "echo", "one\n"]
        );
    }

    #[test]
    fn non_kv_word_is_an_error_for_normal_modules() {
        assert!(parse_kv("hello", false).is_err());
    }
}
