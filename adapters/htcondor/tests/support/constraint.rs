//! A small ClassAd expression evaluator for `-constraint`: literals, attribute references,
//! `==`, `!=`, `=?=`, `=!=`, `<`, `<=`, `>`, `>=`, `&&`, `||`, `!`, parentheses and
//! `stringListMember`. Three-valued like ClassAds: comparisons with `undefined` are
//! undefined, and a constraint matches only when it is `true`.

use std::collections::BTreeMap;

use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Int(i64),
    Str(String),
    Bool(bool),
    Undefined,
    Attr(String),
    Not(Box<Expr>),
    Binary(Box<Expr>, String, Box<Expr>),
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Int(i64),
    Str(String),
    Bool(bool),
    Undefined,
    Error,
}

pub fn parse(text: &str) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, pos: 0 };
    let e = p.or()?;
    if p.pos != p.tokens.len() {
        return Err(format!("unexpected {:?}", p.tokens[p.pos]));
    }
    Ok(e)
}

pub fn matches(expr: &Expr, ad: &BTreeMap<String, Json>) -> bool {
    eval(expr, ad) == Val::Bool(true)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Str(String),
    Ident(String),
    Op(String),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            out.push(Tok::Int(s.parse().map_err(|e| format!("{e}"))?));
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        s.push(*chars.get(i + 1).ok_or("dangling backslash")?);
                        i += 2;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
            let op = [
                "=?=", "=!=", "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", ",",
            ]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .ok_or_else(|| format!("unexpected character {c:?}"))?;
            out.push(Tok::Op(op.to_owned()));
            i += op.chars().count();
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Tok::Op(o)) if o == op)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_op("||") {
            self.pos += 1;
            left = Expr::Binary(Box::new(left), "||".into(), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.cmp()?;
        while self.peek_op("&&") {
            self.pos += 1;
            left = Expr::Binary(Box::new(left), "&&".into(), Box::new(self.cmp()?));
        }
        Ok(left)
    }

    fn cmp(&mut self) -> Result<Expr, String> {
        let left = self.unary()?;
        for op in ["=?=", "=!=", "==", "!=", "<=", ">=", "<", ">"] {
            if self.peek_op(op) {
                self.pos += 1;
                return Ok(Expr::Binary(
                    Box::new(left),
                    op.into(),
                    Box::new(self.unary()?),
                ));
            }
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_op("!") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let tok = self.tokens.get(self.pos).cloned().ok_or("unexpected end")?;
        self.pos += 1;
        match tok {
            Tok::Int(n) => Ok(Expr::Int(n)),
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::Op(o) if o == "(" => {
                let e = self.or()?;
                if !self.peek_op(")") {
                    return Err("missing )".into());
                }
                self.pos += 1;
                Ok(e)
            }
            Tok::Ident(name) => match name.to_ascii_lowercase().as_str() {
                "true" => Ok(Expr::Bool(true)),
                "false" => Ok(Expr::Bool(false)),
                "undefined" => Ok(Expr::Undefined),
                _ if self.peek_op("(") => {
                    self.pos += 1;
                    let mut args = Vec::new();
                    if !self.peek_op(")") {
                        loop {
                            args.push(self.or()?);
                            if self.peek_op(",") {
                                self.pos += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    if !self.peek_op(")") {
                        return Err("missing ) after arguments".into());
                    }
                    self.pos += 1;
                    Ok(Expr::Call(name, args))
                }
                _ => Ok(Expr::Attr(name)),
            },
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

fn lookup(ad: &BTreeMap<String, Json>, name: &str) -> Val {
    let name = name.strip_prefix("MY.").unwrap_or(name);
    match ad
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
    {
        None | Some(Json::Null) => Val::Undefined,
        Some(Json::Bool(b)) => Val::Bool(*b),
        Some(Json::Number(n)) => n.as_i64().map_or(Val::Error, Val::Int),
        Some(Json::String(s)) => Val::Str(s.clone()),
        Some(_) => Val::Error,
    }
}

fn eval(expr: &Expr, ad: &BTreeMap<String, Json>) -> Val {
    match expr {
        Expr::Int(n) => Val::Int(*n),
        Expr::Str(s) => Val::Str(s.clone()),
        Expr::Bool(b) => Val::Bool(*b),
        Expr::Undefined => Val::Undefined,
        Expr::Attr(name) => lookup(ad, name),
        Expr::Not(e) => match eval(e, ad) {
            Val::Bool(b) => Val::Bool(!b),
            Val::Undefined => Val::Undefined,
            _ => Val::Error,
        },
        Expr::Call(name, args)
            if name.eq_ignore_ascii_case("stringListMember") && args.len() == 2 =>
        {
            match (eval(&args[0], ad), eval(&args[1], ad)) {
                (Val::Str(item), Val::Str(list)) => Val::Bool(
                    list.split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .any(|s| s == item),
                ),
                (Val::Undefined, _) | (_, Val::Undefined) => Val::Undefined,
                _ => Val::Error,
            }
        }
        Expr::Call(..) => Val::Error,
        Expr::Binary(l, op, r) => {
            let (a, b) = (eval(l, ad), eval(r, ad));
            match op.as_str() {
                "&&" => match (a, b) {
                    (Val::Bool(false), _) | (_, Val::Bool(false)) => Val::Bool(false),
                    (Val::Bool(true), Val::Bool(true)) => Val::Bool(true),
                    (Val::Error, _) | (_, Val::Error) => Val::Error,
                    _ => Val::Undefined,
                },
                "||" => match (a, b) {
                    (Val::Bool(true), _) | (_, Val::Bool(true)) => Val::Bool(true),
                    (Val::Bool(false), Val::Bool(false)) => Val::Bool(false),
                    (Val::Error, _) | (_, Val::Error) => Val::Error,
                    _ => Val::Undefined,
                },
                "=?=" => Val::Bool(a == b),
                "=!=" => Val::Bool(a != b),
                _ => match (a, b) {
                    (Val::Undefined, _) | (_, Val::Undefined) => Val::Undefined,
                    (Val::Int(x), Val::Int(y)) => Val::Bool(match op.as_str() {
                        "==" => x == y,
                        "!=" => x != y,
                        "<" => x < y,
                        "<=" => x <= y,
                        ">" => x > y,
                        _ => x >= y,
                    }),
                    (Val::Str(x), Val::Str(y)) if op == "==" || op == "!=" => {
                        Val::Bool(x.eq_ignore_ascii_case(&y) == (op == "=="))
                    }
                    _ => Val::Error,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constraints_the_adapter_writes_evaluate() {
        let ad: BTreeMap<String, Json> = serde_json::from_str(
            r#"{"ClusterId": 12, "QDate": 1700, "FarmRenderContext": "abc", "FarmTags": "show:x,conformance-run:1", "FarmName": "a %22b%22"}"#,
        )
        .unwrap();
        for (text, want) in [
            ("ClusterId == 12", true),
            ("(ClusterId == 1 || ClusterId == 12)", true),
            ("ClusterId == 13", false),
            ("FarmRenderContext =!= undefined", true),
            ("Missing =!= undefined", false),
            ("FarmRenderContext =?= \"abc\"", true),
            ("FarmRenderContext =?= \"ABC\"", false),
            ("FarmRenderContext == \"ABC\"", true),
            ("stringListMember(\"show:x\", FarmTags)", true),
            ("stringListMember(\"show\", FarmTags)", false),
            (
                "FarmRenderContext =!= undefined && FarmName =?= \"a %22b%22\" && QDate >= 1700",
                true,
            ),
            ("Missing == 3", false),
            ("!(ClusterId == 12)", false),
        ] {
            assert_eq!(matches(&parse(text).unwrap(), &ad), want, "{text}");
        }
        assert!(parse("ClusterId ==").is_err());
        assert!(parse("(ClusterId == 1").is_err());
    }
}
