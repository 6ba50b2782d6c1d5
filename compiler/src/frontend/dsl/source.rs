//! Source text and located errors: byte spans, line/column and snippets for messages, and the
//! bracket-nesting check run before parsing.

use super::MAX_NESTING;
use crate::error::{CompileError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Span {
    pub(super) fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(s: pest::Span<'_>) -> Self {
        Span {
            start: s.start(),
            end: s.end(),
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct Src<'a> {
    pub(super) path: &'a str,
    pub(super) text: &'a str,
}

impl Src<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn line_col(&self, pos: usize) -> (usize, usize) {
        let pos = floor_char_boundary(self.text, pos);
        let before = &self.text[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// The text of a span on one line: comments dropped, whitespace collapsed, shortened.
    pub(super) fn snippet(&self, span: Span) -> String {
        let start = floor_char_boundary(self.text, span.start);
        let end = floor_char_boundary(self.text, span.end.max(start));
        let mut words = Vec::new();
        for line in self.text[start..end].lines() {
            let code = line.split('#').next().unwrap_or("");
            words.extend(code.split_whitespace());
        }
        shorten(&words.join(" "), 60)
    }

    pub(super) fn err(&self, span: Span, message: impl Into<String>) -> CompileError {
        let (line, col) = self.line_col(span.start);
        CompileError::Dsl {
            path: self.path.to_string(),
            line,
            col,
            message: one_line(message.into()),
            snippet: self.snippet(span),
        }
    }

    pub(super) fn at(
        &self,
        pos: usize,
        message: impl Into<String>,
        snippet: String,
    ) -> CompileError {
        let (line, col) = self.line_col(pos);
        CompileError::Dsl {
            path: self.path.to_string(),
            line,
            col,
            message: one_line(message.into()),
            snippet,
        }
    }
}

pub(super) fn floor_char_boundary(s: &str, mut pos: usize) -> usize {
    pos = pos.min(s.len());
    while !s.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}

pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

fn one_line(s: String) -> String {
    if s.contains('\n') {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s
    }
}

/// Refuse absurdly deep bracket nesting before pest and the evaluator recurse on it.
pub(super) fn check_nesting(src: &Src) -> Result<()> {
    let mut depth = 0usize;
    let mut in_comment = false;
    let mut string_start: Option<usize> = None;
    let unterminated = |start: usize| {
        let rest = &src.text[start..];
        src.at(
            start,
            "string not closed on its line",
            shorten(rest.lines().next().unwrap_or(rest), 30),
        )
    };
    for (i, c) in src.text.char_indices() {
        let in_string = string_start.is_some();
        match c {
            '\n' if in_string => return Err(unterminated(string_start.unwrap_or(i))),
            '\n' => in_comment = false,
            _ if in_comment => {}
            '"' if in_string => string_start = None,
            '"' => string_start = Some(i),
            _ if in_string => {}
            '#' => in_comment = true,
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(src.at(
                        i,
                        format!("brackets nested more than {MAX_NESTING} deep"),
                        c.to_string(),
                    ));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    match string_start {
        Some(start) => Err(unterminated(start)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Src<'_> {
        Src {
            path: "t.cgpt",
            text,
        }
    }

    #[test]
    fn line_col_counts_characters() {
        let s = src("ab\ncé d\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(3), (2, 1));
        // `é` is two bytes, one column.
        assert_eq!(s.line_col(6), (2, 3));
        assert_eq!(s.line_col(100), (3, 1));
    }

    #[test]
    fn snippet_is_one_line_without_comments() {
        let s = src("f(a, # first\n   b)");
        assert_eq!(s.snippet(Span { start: 0, end: 19 }), "f(a, b)");
        let long = "x".repeat(100);
        let s = src(&long);
        assert_eq!(s.snippet(Span { start: 0, end: 100 }).chars().count(), 60);
    }

    #[test]
    fn nesting_and_strings_are_checked_before_parsing() {
        assert!(check_nesting(&src("model m { x = f((1)) }")).is_ok());
        // Brackets inside strings and comments do not count.
        let many = "(".repeat(100);
        assert!(check_nesting(&src(&format!("# {many}\n\"{many}\""))).is_ok());
        let e = check_nesting(&src(&many)).unwrap_err().to_string();
        assert!(
            e.starts_with("t.cgpt:1:65: brackets nested more than 64 deep"),
            "{e}"
        );
        let e = check_nesting(&src("x = \"abc\ny")).unwrap_err().to_string();
        assert_eq!(e, "t.cgpt:1:5: string not closed on its line (at `\"abc`)");
    }
}
