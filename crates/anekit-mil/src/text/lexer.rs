//! Tokens of MIL text, produced on demand (a large model.mil is never tokenized up front).

use std::borrow::Cow;

use crate::error::MilError;

/// A token kind. Names and numbers borrow from the text; strings with escapes are unescaped
/// into owned text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok<'a> {
    /// `[A-Za-z_][A-Za-z0-9_@]*`
    Ident(&'a str),
    /// A name in backticks (anekit's spelling for names that are not identifiers).
    Quoted(Cow<'a, str>),
    /// A string literal in double quotes, unescaped.
    Str(Cow<'a, str>),
    /// An unsigned number as written (`64`, `1.0`, `0x1.4p+3`, `1e-5`).
    Number(&'a str),
    /// `@name` — an anekit annotation (`@doc`, `@auto`, `@blob`).
    At(&'a str),
    /// `->`
    Arrow,
    /// One of `( ) [ ] { } < > , = ; - + ? *`.
    Punct(char),
    /// End of the text.
    Eof,
}

impl Tok<'_> {
    /// A description for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Quoted(s) => format!("quoted name `{s}`"),
            Tok::Str(_) => "a string literal".into(),
            Tok::Number(s) => format!("number `{s}`"),
            Tok::At(s) => format!("`@{s}`"),
            Tok::Arrow => "`->`".into(),
            Tok::Punct(c) => format!("`{c}`"),
            Tok::Eof => "the end of the text".into(),
        }
    }
}

/// A token with its 1-based position.
#[derive(Debug, Clone)]
pub(crate) struct Token<'a> {
    pub(crate) tok: Tok<'a>,
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// The lexer: a cursor over the text that tracks line and column.
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    column: usize,
    source_name: &'a str,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// Whether `c` may continue an identifier (MIL.proto: `[A-Za-z_][A-Za-z0-9_@]*`).
pub(crate) fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '@'
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str, source_name: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            line: 1,
            column: 1,
            source_name,
        }
    }

    fn peek_char(&self) -> Option<char> {
        match self.src.as_bytes().get(self.pos) {
            Some(&b) if b.is_ascii() => Some(char::from(b)),
            Some(_) => self.src.get(self.pos..)?.chars().next(),
            None => None,
        }
    }

    fn peek_char2(&self) -> Option<char> {
        let mut it = self.src.get(self.pos..)?.chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn error(&self, line: usize, column: usize, message: impl Into<String>) -> MilError {
        MilError::Parse {
            source_name: self.source_name.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    fn slice(&self, start: usize) -> &'a str {
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// The next token.
    pub(crate) fn next_token(&mut self) -> Result<Token<'a>, MilError> {
        while let Some(c) = self.peek_char() {
            if c.is_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
        let (line, column) = (self.line, self.column);
        let start = self.pos;
        let tok = match self.peek_char() {
            None => Tok::Eof,
            Some(c) if is_ident_start(c) => {
                while self.peek_char().is_some_and(is_ident_continue) {
                    self.bump();
                }
                Tok::Ident(self.slice(start))
            }
            Some(c)
                if c.is_ascii_digit()
                    || (c == '.' && self.peek_char2().is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.number();
                Tok::Number(self.slice(start))
            }
            Some('"') => Tok::Str(self.quoted('"', line, column)?),
            Some('`') => Tok::Quoted(self.quoted('`', line, column)?),
            Some('@') => {
                self.bump();
                let name_start = self.pos;
                while self.peek_char().is_some_and(is_ident_continue) {
                    self.bump();
                }
                let name = self.slice(name_start);
                if name.is_empty() {
                    return Err(self.error(line, column, "`@` must be followed by a name"));
                }
                Tok::At(name)
            }
            Some('-') if self.peek_char2() == Some('>') => {
                self.bump();
                self.bump();
                Tok::Arrow
            }
            Some(
                c @ ('(' | ')' | '[' | ']' | '{' | '}' | '<' | '>' | ',' | '=' | ';' | '-' | '+'
                | '?' | '*'),
            ) => {
                self.bump();
                Tok::Punct(c)
            }
            Some(c) => {
                return Err(self.error(line, column, format!("unexpected character {c:?}")));
            }
        };
        Ok(Token { tok, line, column })
    }

    /// Consume a number: decimal (`12`, `1.5`, `2e-3`) or hexadecimal (`0x1.8p+3`, `0x10`).
    fn number(&mut self) {
        let hex = self.peek_char() == Some('0') && matches!(self.peek_char2(), Some('x' | 'X'));
        if hex {
            self.bump();
            self.bump();
            while self
                .peek_char()
                .is_some_and(|c| c.is_ascii_hexdigit() || c == '.')
            {
                self.bump();
            }
            if matches!(self.peek_char(), Some('p' | 'P')) {
                self.bump();
                if matches!(self.peek_char(), Some('+' | '-')) {
                    self.bump();
                }
                while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            }
        } else {
            while self
                .peek_char()
                .is_some_and(|c| c.is_ascii_digit() || c == '.')
            {
                self.bump();
            }
            if matches!(self.peek_char(), Some('e' | 'E'))
                && self
                    .peek_char2()
                    .is_some_and(|c| c.is_ascii_digit() || c == '+' || c == '-')
            {
                self.bump();
                if matches!(self.peek_char(), Some('+' | '-')) {
                    self.bump();
                }
                while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            }
        }
    }

    /// Consume a quoted literal delimited by `quote`, resolving escapes:
    /// `\\ \" \' \` \n \t \r \0 \xHH` (HH ≤ 7f) and `\u{H…}`.
    fn quoted(
        &mut self,
        quote: char,
        line: usize,
        column: usize,
    ) -> Result<Cow<'a, str>, MilError> {
        self.bump();
        let start = self.pos;
        let mut owned: Option<String> = None;
        loop {
            let (l, c) = (self.line, self.column);
            let Some(ch) = self.bump() else {
                return Err(self.error(line, column, "unterminated quoted text"));
            };
            if ch == quote {
                let raw = self.src.get(start..self.pos - ch.len_utf8()).unwrap_or("");
                return Ok(match owned {
                    Some(s) => Cow::Owned(s),
                    None => Cow::Borrowed(raw),
                });
            }
            if ch != '\\' {
                if let Some(s) = owned.as_mut() {
                    s.push(ch);
                }
                continue;
            }
            let s = owned
                .get_or_insert_with(|| self.src.get(start..self.pos - 1).unwrap_or("").to_string());
            let Some(e) = self.bump() else {
                return Err(self.error(line, column, "unterminated quoted text"));
            };
            let unescaped = match e {
                '\\' | '"' | '\'' | '`' => e,
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                '0' => '\0',
                'x' => {
                    let mut v = 0u32;
                    for _ in 0..2 {
                        let d = self.bump().and_then(|d| d.to_digit(16));
                        let Some(d) = d else {
                            return Err(self.error(l, c, "`\\x` needs two hex digits"));
                        };
                        v = v * 16 + d;
                    }
                    match char::from_u32(v) {
                        Some(ch) if v <= 0x7f => ch,
                        _ => {
                            return Err(self.error(
                                l,
                                c,
                                "`\\x` escapes stand for ASCII (at most \\x7f); use \\u{…}",
                            ));
                        }
                    }
                }
                'u' => {
                    if self.bump() != Some('{') {
                        return Err(self.error(l, c, "expected `{` after `\\u`"));
                    }
                    let mut v = 0u32;
                    let mut digits = 0;
                    loop {
                        match self.bump() {
                            Some('}') if digits > 0 => break,
                            Some(d) if d.is_ascii_hexdigit() && digits < 6 => {
                                v = v * 16 + d.to_digit(16).unwrap_or(0);
                                digits += 1;
                            }
                            _ => {
                                return Err(self.error(
                                    l,
                                    c,
                                    "`\\u{…}` needs 1 to 6 hex digits and a closing `}`",
                                ));
                            }
                        }
                    }
                    char::from_u32(v).ok_or_else(|| {
                        self.error(l, c, format!("\\u{{{v:x}}} is not a Unicode scalar value"))
                    })?
                }
                other => {
                    return Err(self.error(l, c, format!("unknown escape `\\{other}`")));
                }
            };
            s.push(unescaped);
        }
    }
}

/// Append `s` in `quote`s with the escapes [`Lexer`] understands.
pub(crate) fn write_quoted(out: &mut String, s: &str, quote: char) {
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok<'_>> {
        let mut l = Lexer::new(s, "t");
        let mut out = Vec::new();
        loop {
            match l.next_token() {
                Ok(t) if t.tok == Tok::Eof => return out,
                Ok(t) => out.push(t.tok),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn tokens_of_an_apple_statement() {
        let t = toks(r#"tensor<fp16, [1, 10]> var_3 = mul(x = x)[name = string("op_3")];"#);
        assert_eq!(t.first(), Some(&Tok::Ident("tensor")));
        assert!(t.contains(&Tok::Number("10")));
        assert!(t.contains(&Tok::Str(Cow::Borrowed("op_3"))));
        assert_eq!(t.last(), Some(&Tok::Punct(';')));
    }

    #[test]
    fn numbers_arrow_and_escapes() {
        assert_eq!(
            toks("0x1.4p+3 -0x1p-5 1e-5 -> ?*"),
            vec![
                Tok::Number("0x1.4p+3"),
                Tok::Punct('-'),
                Tok::Number("0x1p-5"),
                Tok::Number("1e-5"),
                Tok::Arrow,
                Tok::Punct('?'),
                Tok::Punct('*'),
            ]
        );
        assert_eq!(
            toks(r#""a\"b\\c\n\x41\u{e9}""#),
            vec![Tok::Str(Cow::Owned("a\"b\\c\nAé".into()))]
        );
    }

    #[test]
    fn escapes_round_trip_through_write_quoted() {
        let s = "q\"`\\\n\t\r\u{1}\u{7f}é ok";
        for q in ['"', '`'] {
            let mut out = String::new();
            write_quoted(&mut out, s, q);
            let t = toks(&out);
            let got = match t.as_slice() {
                [Tok::Str(x)] | [Tok::Quoted(x)] => x.to_string(),
                other => panic!("{other:?}"),
            };
            assert_eq!(got, s);
        }
    }

    #[test]
    fn bad_input_is_an_error_with_position() {
        for (s, line, col) in [
            ("\n  \"abc", 2, 3),
            ("x \"\\q\"", 1, 4),
            ("x \"\\x8\"", 1, 4),
            ("x \"\\xff\"", 1, 4),
            ("x \"\\u{110000}\"", 1, 4),
            ("x \"\\u{}\"", 1, 4),
            ("  $", 1, 3),
            ("@ x", 1, 1),
        ] {
            let mut l = Lexer::new(s, "src");
            let err = loop {
                match l.next_token() {
                    Ok(t) if t.tok == Tok::Eof => panic!("no error for {s:?}"),
                    Ok(_) => {}
                    Err(e) => break e,
                }
            };
            match err {
                MilError::Parse {
                    line: l, column: c, ..
                } => assert_eq!((l, c), (line, col), "{s:?}: {err}"),
                other => panic!("{other}"),
            }
        }
    }
}
