//! Ansible's `key=value` argument strings (`copy: src=a dest=/b mode=0644`).

use tend_proto::{Value, Vars};

/// Splits like a shell would for the purpose of `k=v` parsing: whitespace separates, quotes
/// group, and `{{ … }}` / `{% … %}` are kept whole.
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut chars = s.chars().peekable();
    let mut started = false;
    while let Some(c) = chars.next() {
        if depth > 0 {
            cur.push(c);
            if (c == '}' || c == '%') && chars.peek() == Some(&'}') {
                cur.push(chars.next().unwrap_or('}'));
                depth -= 1;
            }
            continue;
        }
        if c == '{' && matches!(chars.peek(), Some('{') | Some('%') | Some('#')) {
            cur.push(c);
            cur.push(chars.next().unwrap_or('{'));
            depth += 1;
            started = true;
            continue;
        }
        match quote {
            Some(q) => {
                if c == '\\' && chars.peek() == Some(&q) {
                    cur.push(c);
                    cur.push(chars.next().unwrap_or(q));
                } else {
                    cur.push(c);
                    if c == q {
                        quote = None;
                    }
                }
            }
            None => {
                if c.is_whitespace() {
                    if started {
                        out.push(std::mem::take(&mut cur));
                        started = false;
                    }
                } else {
                    if c == '"' || c == '\'' {
                        quote = Some(c);
                    }
                    cur.push(c);
                    started = true;
                }
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unbalanced quotes in: {s}"));
    }
    if depth > 0 {
        return Err(format!("unbalanced template braces in: {s}"));
    }
    if started {
        out.push(cur);
    }
    Ok(out)
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
            let v = unquote(&word[i + 1..]);
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
        vars.insert("_raw_params".into(), Value::String(raw.join(" ")));
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
    fn non_kv_word_is_an_error_for_normal_modules() {
        assert!(parse_kv("hello", false).is_err());
    }
}
