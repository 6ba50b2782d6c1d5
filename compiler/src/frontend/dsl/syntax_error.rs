//! Syntax errors: pest's error turned into a one-line message that says what was expected and
//! what was found.

use super::ast::Rule;
use super::source::{floor_char_boundary, shorten, Src};
use crate::error::CompileError;

/// The reserved words (see `keyword` in dsl.pest).
const KEYWORDS: [&str; 8] = [
    "model", "config", "input", "weight", "repeat", "in", "output", "init",
];

/// What a rule is called in "expected …" messages.
fn rule_label(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::tensor_type => "a tensor type like `[width]`",
        Rule::dtype => "an element type (f32 or i64)",
        Rule::expr | Rule::product | Rule::unary => "an expression",
        Rule::add_op | Rule::mul_op => "an operator",
        Rule::neg => "`-`",
        Rule::ident => "a name",
        Rule::number => "a number",
        Rule::string => "a string",
        Rule::EOI => "end of file",
        _ => return None,
    })
}

pub(super) fn syntax_error(src: &Src, e: &pest::error::Error<Rule>) -> CompileError {
    use pest::error::{ErrorVariant, InputLocation};
    let mut pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !expected.contains(&s) {
            expected.push(s);
        }
    };
    let message = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            // pest places the error at the furthest *rule* attempt; its detailed attempts also
            // know literal tokens (`=`, `}`), which may have been tried further on.
            let attempts = e.parse_attempts().filter(|a| a.max_position >= pos);
            match &attempts {
                Some(a) if a.max_position > pos => pos = a.max_position,
                _ => {
                    for r in positives {
                        if let Some(l) = rule_label(*r) {
                            push(l.to_string());
                        }
                    }
                }
            }
            if let Some(a) = attempts {
                for t in a.expected_tokens() {
                    // pest does not export the token type; its Debug form names the variant.
                    if format!("{t:?}").starts_with("Sensitive") {
                        push(format!("`{t}`"));
                    }
                }
            }
            let expected = tidy_expected(expected);
            // A keyword where a name was expected: pest's furthest attempt is just after it.
            let word_start = src.text[..floor_char_boundary(src.text, pos)]
                .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
                .len();
            let word = &src.text[word_start..floor_char_boundary(src.text, pos)];
            let found = if KEYWORDS.contains(&word)
                && expected
                    .iter()
                    .any(|e| e == "a name" || e == "an expression")
            {
                pos = word_start;
                format!(", found the keyword `{word}`")
            } else {
                String::new()
            };
            if expected.is_empty() {
                "syntax error".to_string()
            } else {
                format!("expected {}{found}", or_list(&expected))
            }
        }
        ErrorVariant::CustomError { message } => format!("syntax error: {message}"),
    };
    src.at(pos, message, text_at(src.text, pos))
}

/// Make pest's list of what was expected readable: drop whitespace, comment starts and the
/// letters inside names, fold the arithmetic operators into one entry, and drop keywords that
/// only appear because a name may not be a keyword.
fn tidy_expected(raw: Vec<String>) -> Vec<String> {
    const OPS: [&str; 4] = ["`+`", "`-`", "`*`", "`/`"];
    let has = |s: &str| raw.iter().any(|r| r == s);
    let name_expected = has("a name")
        || raw.iter().any(|r| {
            r == "`_`"
                || (r.len() == 3 && r.chars().nth(1).is_some_and(|c| c.is_ascii_alphabetic()))
        });
    let expr_expected = has("an expression");
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    for r in &raw {
        let token = r.strip_prefix('`').and_then(|t| t.strip_suffix('`'));
        match token {
            None => add(r),
            Some(t) if t.trim().is_empty() || t == "#" => {}
            Some("_") => add("a name"),
            Some(t) if t.chars().count() == 1 && t.chars().all(|c| c.is_ascii_alphabetic()) => {
                add("a name")
            }
            Some(t) if t.chars().count() == 1 && t.chars().all(|c| c.is_ascii_digit()) => {
                add("a number")
            }
            Some("f32" | "i64") => add("an element type (f32 or i64)"),
            Some("model" | "config" | "in" | "init") if name_expected => {}
            Some("(" | "-") if expr_expected => {}
            Some(_) if OPS.contains(&r.as_str()) => {
                if !(expr_expected && r == "`-`") {
                    add("an operator");
                }
            }
            Some("(") => add("`(`"),
            Some(_) => add(r),
        }
    }
    if out.iter().any(|o| o == "an expression") {
        out.retain(|o| o != "a name" && o != "a number");
    }
    // Names and expressions first, punctuation last.
    out.sort_by_key(|s| s.starts_with('`'));
    out
}

/// The text at a syntax error: the rest of the line, shortened.
fn text_at(text: &str, pos: usize) -> String {
    let pos = floor_char_boundary(text, pos);
    let rest = &text[pos..];
    if rest.is_empty() {
        return "end of file".into();
    }
    let line = rest.lines().next().unwrap_or("").trim_end();
    if line.is_empty() {
        return "end of line".into();
    }
    shorten(line, 30)
}

fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_lists_are_tidied() {
        let raw = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            tidy_expected(raw(&["`+`", "`*`", "` `", "`#`", "`,`", "`)`"])),
            ["an operator", "`,`", "`)`"]
        );
        assert_eq!(
            tidy_expected(raw(&["`a`", "`_`", "`config`", "`=`"])),
            ["a name", "`=`"]
        );
        assert_eq!(
            tidy_expected(raw(&["an expression", "`(`", "`-`", "`x`"])),
            ["an expression"]
        );
    }
}
