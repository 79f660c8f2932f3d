//! The `filter` mini-language of the list queries, parsed into an AST.
//!
//! Grammar (the original's `models/minilang/queryfilter.py`, a Lark LALR grammar):
//! ```text
//! expr  := "!" expr | NAME OP value | expr ("&" | "|") expr | "(" expr ")"
//! OP    := == != > >= < <= contains in isnot is like ilike
//! value := "string" | number | [value, ...] | null | true | false
//! ```
//! Lark resolves the grammar's shift/reduce conflicts by shifting, so `&` and `|` have the same
//! precedence and group to the right (`a & b | c` is `a & (b | c)`), and `!` negates everything
//! after it (`!a & b` is `!(a & b)`). We parse exactly that way so a filter selects the same rows
//! as on the original.

use super::MinilangError;

/// A comparison operator of a `NAME OP value` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
    In,
    IsNot,
    Is,
    Like,
    ILike,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Contains => "contains",
            CompareOp::In => "in",
            CompareOp::IsNot => "isnot",
            CompareOp::Is => "is",
            CompareOp::Like => "like",
            CompareOp::ILike => "ilike",
        }
    }
}

/// How two expressions are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    And,
    Or,
}

/// A literal on the right side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Array(Vec<Literal>),
}

impl Literal {
    /// A short name of the literal's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Literal::String(_) => "a string",
            Literal::Int(_) => "an integer",
            Literal::Float(_) => "a number",
            Literal::Bool(_) => "a boolean",
            Literal::Null => "null",
            Literal::Array(_) => "an array",
        }
    }
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterExpr {
    Compare {
        field: String,
        op: CompareOp,
        value: Literal,
    },
    Not(Box<FilterExpr>),
    Combine(Box<FilterExpr>, Combine, Box<FilterExpr>),
}

/// The deepest nesting of parentheses and `!` accepted, so a hostile filter cannot exhaust the
/// stack of the recursive-descent parser. Real filters nest two or three levels.
pub const MAX_FILTER_NESTING: usize = 64;

/// The longest filter expression accepted, in bytes; the CLI sends a few dozen.
pub const MAX_FILTER_LENGTH: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Op(CompareOp),
    Str(String),
    Number(Literal),
    Atom(Literal),
    Not,
    And,
    Or,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

/// Parses a filter expression.
pub fn parse_filter(text: &str) -> Result<FilterExpr, MinilangError> {
    if text.len() > MAX_FILTER_LENGTH {
        return Err(MinilangError::filter(format!(
            "the expression is longer than {MAX_FILTER_LENGTH} bytes"
        )));
    }
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        position: 0,
        depth: 0,
    };
    let expr = parser.expr()?;
    if let Some((token, _)) = parser.tokens.get(parser.position) {
        return Err(MinilangError::filter(format!(
            "unexpected {} after a complete expression",
            describe(token)
        )));
    }
    Ok(expr)
}

fn describe(token: &Token) -> String {
    match token {
        Token::Name(name) => format!("name {name:?}"),
        Token::Op(op) => format!("operator {:?}", op.as_str()),
        Token::Str(s) => format!("string {s:?}"),
        Token::Number(_) => "number".to_owned(),
        Token::Atom(Literal::Null) => "null".to_owned(),
        Token::Atom(_) => "boolean".to_owned(),
        Token::Not => "\"!\"".to_owned(),
        Token::And => "\"&\"".to_owned(),
        Token::Or => "\"|\"".to_owned(),
        Token::LParen => "\"(\"".to_owned(),
        Token::RParen => "\")\"".to_owned(),
        Token::LBracket => "\"[\"".to_owned(),
        Token::RBracket => "\"]\"".to_owned(),
        Token::Comma => "\",\"".to_owned(),
    }
}

/// Words that are operators rather than names, longest first so `isnot` wins over `is`.
const WORD_OPERATORS: [(&str, CompareOp); 6] = [
    ("contains", CompareOp::Contains),
    ("isnot", CompareOp::IsNot),
    ("ilike", CompareOp::ILike),
    ("like", CompareOp::Like),
    ("in", CompareOp::In),
    ("is", CompareOp::Is),
];

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, MinilangError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    // Lark's contextual lexer reads a word as an operator only where an operator may follow a
    // field name; we track that by whether the previous token was a name.
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let after_name = matches!(tokens.last(), Some((Token::Name(_), _)));
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                i += 1;
                continue;
            }
            b'(' => tokens.push((Token::LParen, start)),
            b')' => tokens.push((Token::RParen, start)),
            b'[' => tokens.push((Token::LBracket, start)),
            b']' => tokens.push((Token::RBracket, start)),
            b',' => tokens.push((Token::Comma, start)),
            b'&' => tokens.push((Token::And, start)),
            b'|' => tokens.push((Token::Or, start)),
            b'=' if bytes.get(i + 1) == Some(&b'=') => {
                tokens.push((Token::Op(CompareOp::Eq), start));
                i += 1;
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                tokens.push((Token::Op(CompareOp::Ne), start));
                i += 1;
            }
            b'!' => tokens.push((Token::Not, start)),
            b'>' | b'<' => {
                let or_equal = bytes.get(i + 1) == Some(&b'=');
                let op = match (c, or_equal) {
                    (b'>', false) => CompareOp::Gt,
                    (b'>', true) => CompareOp::Ge,
                    (_, false) => CompareOp::Lt,
                    (_, true) => CompareOp::Le,
                };
                tokens.push((Token::Op(op), start));
                if or_equal {
                    i += 1;
                }
            }
            b'"' => {
                let (value, end) = read_string(text, i)?;
                tokens.push((Token::Str(value), start));
                i = end;
                continue;
            }
            b'+' | b'-' | b'0'..=b'9' | b'.' => {
                let (value, end) = read_number(text, i)?;
                tokens.push((Token::Number(value), start));
                i = end;
                continue;
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                let mut end = i + 1;
                while end < bytes.len()
                    && (bytes[end] == b'_' || bytes[end].is_ascii_alphanumeric())
                {
                    end += 1;
                }
                let word = &text[i..end];
                let token = if after_name {
                    match WORD_OPERATORS.iter().find(|(w, _)| *w == word) {
                        Some((_, op)) => Token::Op(*op),
                        None => Token::Name(word.to_owned()),
                    }
                } else {
                    match word {
                        "null" => Token::Atom(Literal::Null),
                        "true" => Token::Atom(Literal::Bool(true)),
                        "false" => Token::Atom(Literal::Bool(false)),
                        _ => Token::Name(word.to_owned()),
                    }
                };
                tokens.push((token, start));
                i = end;
                continue;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(MinilangError::filter(format!(
                    "unexpected character {ch:?} at position {i}"
                )));
            }
        }
        i += 1;
    }
    Ok(tokens)
}

/// Reads a double-quoted string starting at `start`; returns its value and the end position.
/// As the original, only `\"` is unescaped; other backslashes stay as written.
fn read_string(text: &str, start: usize) -> Result<(String, usize), MinilangError> {
    let bytes = text.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => {
                let inner = &text[start + 1..i];
                return Ok((inner.replace("\\\"", "\""), i + 1));
            }
            _ => i += 1,
        }
    }
    Err(MinilangError::filter(format!(
        "unterminated string starting at position {start}"
    )))
}

/// Reads a signed integer or decimal number starting at `start`.
fn read_number(text: &str, start: usize) -> Result<(Literal, usize), MinilangError> {
    let bytes = text.as_bytes();
    let mut end = start;
    if matches!(bytes.get(end), Some(b'+' | b'-')) {
        end += 1;
    }
    let digits_start = end;
    while end < bytes.len()
        && (bytes[end].is_ascii_digit()
            || bytes[end] == b'.'
            || bytes[end] == b'e'
            || bytes[end] == b'E'
            || ((bytes[end] == b'+' || bytes[end] == b'-')
                && matches!(bytes[end - 1], b'e' | b'E')))
    {
        end += 1;
    }
    let raw = &text[start..end];
    if end == digits_start {
        return Err(MinilangError::filter(format!(
            "expected a number at position {start}"
        )));
    }
    let is_float = raw.contains(['.', 'e', 'E']);
    let value = if is_float {
        raw.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Literal::Float)
    } else {
        raw.parse::<i64>().ok().map(Literal::Int)
    };
    value
        .map(|v| (v, end))
        .ok_or_else(|| MinilangError::filter(format!("invalid number {raw:?}")))
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    position: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position).map(|(t, _)| t)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).map(|(t, _)| t.clone());
        if token.is_some() {
            self.position += 1;
        }
        token
    }

    fn unexpected(&self, expected: &str) -> MinilangError {
        match self.tokens.get(self.position) {
            Some((token, at)) => MinilangError::filter(format!(
                "expected {expected} but found {} at position {at}",
                describe(token)
            )),
            None => MinilangError::filter(format!("expected {expected} but the expression ended")),
        }
    }

    fn enter(&mut self) -> Result<(), MinilangError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_NESTING {
            return Err(MinilangError::filter(format!(
                "the expression nests deeper than {MAX_FILTER_NESTING} levels"
            )));
        }
        Ok(())
    }

    /// `expr := term (("&" | "|") expr)?`, right-associative (see the module docs).
    fn expr(&mut self) -> Result<FilterExpr, MinilangError> {
        self.enter()?;
        let left = self.term()?;
        let combined = match self.peek() {
            Some(Token::And) | Some(Token::Or) => {
                let op = match self.next() {
                    Some(Token::And) => Combine::And,
                    _ => Combine::Or,
                };
                let right = self.expr()?;
                FilterExpr::Combine(Box::new(left), op, Box::new(right))
            }
            _ => left,
        };
        self.depth -= 1;
        Ok(combined)
    }

    /// `term := "!" expr | "(" expr ")" | NAME OP value`.
    fn term(&mut self) -> Result<FilterExpr, MinilangError> {
        match self.peek() {
            Some(Token::Not) => {
                self.next();
                Ok(FilterExpr::Not(Box::new(self.expr()?)))
            }
            Some(Token::LParen) => {
                self.next();
                let inner = self.expr()?;
                match self.next() {
                    Some(Token::RParen) => Ok(inner),
                    _ => {
                        self.position = self.position.saturating_sub(1);
                        Err(self.unexpected("\")\""))
                    }
                }
            }
            Some(Token::Name(_)) => {
                let Some(Token::Name(field)) = self.next() else {
                    return Err(self.unexpected("a field name"));
                };
                let op = match self.peek() {
                    Some(Token::Op(op)) => *op,
                    _ => return Err(self.unexpected("a comparison operator")),
                };
                self.next();
                let value = self.value()?;
                Ok(FilterExpr::Compare { field, op, value })
            }
            _ => Err(self.unexpected("a field name, \"!\" or \"(\"")),
        }
    }

    fn value(&mut self) -> Result<Literal, MinilangError> {
        match self.peek() {
            Some(Token::Str(_)) | Some(Token::Number(_)) | Some(Token::Atom(_)) => {
                match self.next() {
                    Some(Token::Str(s)) => Ok(Literal::String(s)),
                    Some(Token::Number(n)) | Some(Token::Atom(n)) => Ok(n),
                    _ => Err(self.unexpected("a value")),
                }
            }
            Some(Token::LBracket) => {
                self.next();
                self.enter()?;
                let mut items = Vec::new();
                if self.peek() == Some(&Token::RBracket) {
                    self.next();
                    self.depth -= 1;
                    return Ok(Literal::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    match self.next() {
                        Some(Token::Comma) => continue,
                        Some(Token::RBracket) => break,
                        _ => {
                            self.position = self.position.saturating_sub(1);
                            return Err(self.unexpected("\",\" or \"]\""));
                        }
                    }
                }
                self.depth -= 1;
                Ok(Literal::Array(items))
            }
            _ => Err(self.unexpected("a value (string, number, array, null, true or false)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(field: &str, op: CompareOp, value: Literal) -> FilterExpr {
        FilterExpr::Compare {
            field: field.to_owned(),
            op,
            value,
        }
    }

    fn s(text: &str) -> Literal {
        Literal::String(text.to_owned())
    }

    #[test]
    fn parses_a_simple_comparison() {
        assert_eq!(
            parse_filter(r#"status == "RUNNING""#).unwrap(),
            cmp("status", CompareOp::Eq, s("RUNNING"))
        );
        assert_eq!(
            parse_filter("cluster_size>=2").unwrap(),
            cmp("cluster_size", CompareOp::Ge, Literal::Int(2))
        );
    }

    #[test]
    fn word_operators_and_atoms() {
        assert_eq!(
            parse_filter("terminated_at isnot null").unwrap(),
            cmp("terminated_at", CompareOp::IsNot, Literal::Null)
        );
        assert_eq!(
            parse_filter("is_active is true").unwrap(),
            cmp("is_active", CompareOp::Is, Literal::Bool(true))
        );
        assert_eq!(
            parse_filter(r#"name ilike "%py%""#).unwrap(),
            cmp("name", CompareOp::ILike, s("%py%"))
        );
        assert_eq!(
            parse_filter(r#"email contains "@lablup""#).unwrap(),
            cmp("email", CompareOp::Contains, s("@lablup"))
        );
        // A field may be named like an operator word; only after a name is a word an operator.
        assert_eq!(
            parse_filter(r#"in in ["a"]"#).unwrap(),
            cmp("in", CompareOp::In, Literal::Array(vec![s("a")]))
        );
    }

    #[test]
    fn arrays_numbers_and_escapes() {
        assert_eq!(
            parse_filter(r#"status in ["RUNNING", "PENDING"]"#).unwrap(),
            cmp(
                "status",
                CompareOp::In,
                Literal::Array(vec![s("RUNNING"), s("PENDING")])
            )
        );
        assert_eq!(
            parse_filter("x in []").unwrap(),
            cmp("x", CompareOp::In, Literal::Array(vec![]))
        );
        assert_eq!(
            parse_filter("x > -1.5").unwrap(),
            cmp("x", CompareOp::Gt, Literal::Float(-1.5))
        );
        assert_eq!(
            parse_filter(r#"name == "say \"hi\"""#).unwrap(),
            cmp("name", CompareOp::Eq, s("say \"hi\""))
        );
    }

    #[test]
    fn combination_groups_to_the_right_like_the_original() {
        let parsed = parse_filter(r#"a == 1 & b == 2 | c == 3"#).unwrap();
        assert_eq!(
            parsed,
            FilterExpr::Combine(
                Box::new(cmp("a", CompareOp::Eq, Literal::Int(1))),
                Combine::And,
                Box::new(FilterExpr::Combine(
                    Box::new(cmp("b", CompareOp::Eq, Literal::Int(2))),
                    Combine::Or,
                    Box::new(cmp("c", CompareOp::Eq, Literal::Int(3))),
                )),
            )
        );
    }

    #[test]
    fn negation_covers_the_rest_and_parentheses_limit_it() {
        let parsed = parse_filter("!a == 1 & b == 2").unwrap();
        assert!(
            matches!(parsed, FilterExpr::Not(inner) if matches!(*inner, FilterExpr::Combine(..)))
        );
        let parsed = parse_filter("(!a == 1) & b == 2").unwrap();
        assert!(
            matches!(parsed, FilterExpr::Combine(left, Combine::And, _) if matches!(*left, FilterExpr::Not(_)))
        );
    }

    #[test]
    fn syntax_errors_say_what_is_wrong() {
        let err = parse_filter("status ==").unwrap_err().to_string();
        assert!(err.contains("expression ended"), "{err}");
        let err = parse_filter(r#"status == "RUNNING" status"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("after a complete expression"), "{err}");
        let err = parse_filter(r#"status = "x""#).unwrap_err().to_string();
        assert!(err.contains("unexpected character"), "{err}");
        let err = parse_filter(r#"name == "open"#).unwrap_err().to_string();
        assert!(err.contains("unterminated string"), "{err}");
        let err = parse_filter("(a == 1").unwrap_err().to_string();
        assert!(err.contains("\")\""), "{err}");
        let err = parse_filter("a == 1 &").unwrap_err().to_string();
        assert!(err.contains("expected a field name"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let text = format!("{}a == 1{}", "(".repeat(1_000), ")".repeat(1_000));
        let err = parse_filter(&text).unwrap_err().to_string();
        assert!(err.contains("nests deeper"), "{err}");
        let text = format!("{}a == 1", "!".repeat(1_000));
        assert!(parse_filter(&text).is_err());
    }
}
