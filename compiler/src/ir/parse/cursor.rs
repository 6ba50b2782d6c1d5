//! A cursor over one line of IR text, and the pieces every line is made of: value names,
//! strings, words, numbers, dimensions and types.

use super::ParseError;
use crate::ir::{Dim, TensorType};
use crate::tensor::DType;

/// Position in one line of text. Columns count characters from 1.
pub(super) struct Cursor {
    line: usize,
    /// Column of `chars[0]`, minus one (non-zero for a cursor over part of a line).
    offset: usize,
    chars: Vec<char>,
    pos: usize,
}

impl Cursor {
    pub fn new(line: usize, text: &str) -> Self {
        Self::within(line, 0, text)
    }

    /// A cursor over `text`, which starts at column `offset + 1` of `line`.
    pub fn within(line: usize, offset: usize, text: &str) -> Self {
        Cursor {
            line,
            offset,
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    /// The current column.
    pub fn col(&self) -> usize {
        self.offset + self.pos + 1
    }

    pub fn line(&self) -> usize {
        self.line
    }

    pub fn error_at(&self, col: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            col,
            message: message.into(),
        }
    }

    /// An error at the current place: `expected WHAT, found …`.
    pub fn expected(&self, what: &str) -> ParseError {
        self.error_at(
            self.col(),
            format!("expected {what}, found {}", self.found()),
        )
    }

    /// What is at the cursor, for messages.
    pub fn found(&self) -> String {
        match self.peek() {
            None => "end of line".into(),
            Some(c) => format!("`{c}`"),
        }
    }

    pub fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    pub fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    pub fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.peek().is_none()
    }

    /// Skip white space; consume `c` if it is next.
    pub fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skip white space and require `c`; `what` says what it would have been.
    pub fn expect(&mut self, c: char, what: &str) -> Result<(), ParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.expected(&format!("`{c}` {what}")))
        }
    }

    /// Take characters while `f` holds.
    pub fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// An identifier: letters, digits and `_`, not starting with a digit. Empty if none.
    pub fn word(&mut self) -> String {
        self.skip_ws();
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return String::new();
        }
        self.take_while(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// The rest of the line from the cursor.
    pub fn rest(&self) -> String {
        self.chars[self.pos.min(self.chars.len())..]
            .iter()
            .collect()
    }

    /// A value name `%N`; returns N and the column of `%`.
    pub fn value(&mut self) -> Result<(u64, usize), ParseError> {
        self.skip_ws();
        let col = self.col();
        if !self.eat('%') {
            return Err(self.expected("a value name such as `%3`"));
        }
        let digits = self.take_while(|c| c.is_ascii_digit());
        let n = digits
            .parse::<u64>()
            .map_err(|_| self.error_at(col, "expected digits after `%` in a value name"))?;
        Ok((n, col))
    }

    /// A number-like token: the characters a float, an integer or `inf`/`NaN` can hold.
    pub fn number(&mut self) -> (String, usize) {
        self.skip_ws();
        let col = self.col();
        let s = self.take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
        (s, col)
    }

    /// A double-quoted string with Rust escapes (`\"`, `\\`, `\n`, `\t`, `\r`, `\0`, `\'`,
    /// `\u{…}`), as `{:?}` prints it.
    pub fn string(&mut self) -> Result<String, ParseError> {
        self.skip_ws();
        if !self.eat('"') {
            return Err(self.expected("a quoted name"));
        }
        let mut out = String::new();
        loop {
            let col = self.col();
            match self.bump() {
                None => return Err(self.expected("`\"` to close the name")),
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape(col)?),
                Some(c) => out.push(c),
            }
        }
    }

    fn escape(&mut self, col: usize) -> Result<char, ParseError> {
        let c = match self.bump() {
            Some('"') => '"',
            Some('\\') => '\\',
            Some('\'') => '\'',
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('0') => '\0',
            Some('u') => {
                self.expect('{', "after `\\u`")?;
                let hex = self.take_while(|c| c.is_ascii_hexdigit());
                self.expect('}', "to close `\\u{…}`")?;
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        self.error_at(col, "expected a Unicode scalar value in `\\u{…}`")
                    })?
            }
            _ => return Err(self.error_at(col, "unknown escape in a quoted name")),
        };
        Ok(c)
    }

    /// An element type: `f32`, `i64` or `bool`.
    pub fn dtype(&mut self) -> Result<DType, ParseError> {
        self.skip_ws();
        let col = self.col();
        match self.word().as_str() {
            "f32" => Ok(DType::F32),
            "i64" => Ok(DType::I64),
            "bool" => Ok(DType::Bool),
            "" => Err(self.expected("an element type (f32, i64, bool)")),
            w => Err(self.error_at(
                col,
                format!("expected an element type (f32, i64, bool), found `{w}`"),
            )),
        }
    }

    /// A type `f32[1,T,64]`, or `?` for a value not yet typed.
    pub fn ty(&mut self) -> Result<Option<TensorType>, ParseError> {
        if self.eat('?') {
            return Ok(None);
        }
        let dtype = self.dtype()?;
        self.expect('[', "to open the shape")?;
        let shape = self.dims(']')?;
        Ok(Some(TensorType::new(dtype, shape)))
    }

    /// Dimensions separated by commas, up to and including `close`.
    pub fn dims(&mut self, close: char) -> Result<Vec<Dim>, ParseError> {
        let mut out = Vec::new();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(self.dim()?);
            if self.eat(close) {
                return Ok(out);
            }
            if !self.eat(',') {
                return Err(self.expected(&format!("`,` or `{close}` in a shape")));
            }
        }
    }

    /// One dimension `c`, `T`, `kT`, `T+c`, `kT-c` (as [`Dim`] prints it).
    pub fn dim(&mut self) -> Result<Dim, ParseError> {
        self.skip_ws();
        let col = self.col();
        let bad = |s: &Cursor| s.error_at(col, "expected a dimension such as `64`, `T` or `2T+1`");
        let lead = self.signed_int(col)?;
        if !self.eat('T') {
            return lead.map(Dim::known).ok_or_else(|| bad(self));
        }
        let t = lead.unwrap_or(1);
        let c = match self.peek() {
            Some('+') | Some('-') => self.signed_int(col)?.ok_or_else(|| bad(self))?,
            _ => 0,
        };
        Ok(Dim { t, c })
    }

    /// An optional `[+-]digits`; `None` when there are no digits (and then nothing is taken).
    fn signed_int(&mut self, col: usize) -> Result<Option<i64>, ParseError> {
        let start = self.pos;
        let neg = match self.peek() {
            Some('-') => {
                self.pos += 1;
                true
            }
            Some('+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let digits = self.take_while(|c| c.is_ascii_digit());
        if digits.is_empty() {
            self.pos = start;
            return Ok(None);
        }
        let text = if neg { format!("-{digits}") } else { digits };
        text.parse::<i64>()
            .map(Some)
            .map_err(|_| self.error_at(col, format!("dimension `{text}` is out of range")))
    }
}
