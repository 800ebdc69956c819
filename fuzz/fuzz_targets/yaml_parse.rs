//! The YAML parser must never panic, and its errors must carry a line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(d) = tend_lang::yaml::parse("fuzz.yml", &text) {
        assert!(d.loc.line > 0, "error without a line: {d}");
    }
});
