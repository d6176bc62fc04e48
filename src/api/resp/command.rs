//! RESP commands: a request frame (an array of bulk strings) decoded into
//! the call it asks for — the same op types every surface uses — or a
//! command about the connection itself.
//!
//! Lock commands take the lock name, then options as name-value pairs in
//! any order and case, times in milliseconds:
//! `LOCK name [TTL ms] [WAIT ms] [SIZE n] [PERMITS k] [KEY key] [MODE
//! exclusive|shared] [VALUE v]`, `UNLOCK name key`, `REFRESH name key [TTL
//! ms]`, `SETVALUE name key [value]`, `DOWNGRADE name key`, `DESCRIBE
//! name`, `VALIDATE name token`, `LIST prefix [LIMIT n] [AFTER name]`,
//! `SESSION`.
//!
//! Invariant: decoding never fails the connection; a malformed command is
//! an error reply (`INVALID_ARGUMENT …`, or `ERR unknown command` as Redis
//! answers).

use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;

use crate::error::{ApiError, ErrorCode};
use crate::lock::{LockKey, Mode, Value};
use crate::service::ops::acquire::Acquire;
use crate::service::ops::describe::Describe;
use crate::service::ops::downgrade::Downgrade;
use crate::service::ops::list::List;
use crate::service::ops::refresh::Refresh;
use crate::service::ops::release::Release;
use crate::service::ops::set_value::SetValue;
use crate::service::ops::validate_fence::ValidateFence;

/// What a request frame asks for.
#[derive(Debug)]
pub enum Request {
    Lock(Acquire),
    Unlock(Release),
    Refresh(Refresh),
    SetValue(SetValue),
    Downgrade(Downgrade),
    Describe(Describe),
    Validate(ValidateFence),
    List(List),
    /// Makes the connection a session: its grants are released when it closes.
    Session,
    Ping(Option<Bytes>),
    Echo(Bytes),
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    Hello {
        protocol: Option<Bytes>,
        token: Option<Bytes>,
    },
    Auth {
        token: Bytes,
    },
    /// `CLIENT SETNAME`, `CLIENT SETINFO`: accepted, kept nowhere.
    ClientAck,
    ClientId,
    Select(Bytes),
    /// `COMMAND` and `COMMAND DOCS`: answered empty.
    Command,
    Quit,
}

/// Why a request frame is not a command this node runs.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// The command name is not one this node knows: `ERR unknown command`.
    Unknown(String),
    /// A known command with bad arguments.
    Bad(ApiError),
}

impl Request {
    /// The call name, for metrics (a fixed set: never a client's string).
    pub fn call(&self) -> &'static str {
        match self {
            Request::Lock(_) => "LOCK",
            Request::Unlock(_) => "UNLOCK",
            Request::Refresh(_) => "REFRESH",
            Request::SetValue(_) => "SETVALUE",
            Request::Downgrade(_) => "DOWNGRADE",
            Request::Describe(_) => "DESCRIBE",
            Request::Validate(_) => "VALIDATE",
            Request::List(_) => "LIST",
            Request::Session => "SESSION",
            Request::Ping(_) => "PING",
            Request::Echo(_) => "ECHO",
            Request::Hello { .. } => "HELLO",
            Request::Auth { .. } => "AUTH",
            Request::ClientAck | Request::ClientId => "CLIENT",
            Request::Select(_) => "SELECT",
            Request::Command => "COMMAND",
            Request::Quit => "QUIT",
        }
    }

    /// Decodes one request frame.
    pub fn parse(frame: BytesFrame) -> Result<Self, Refused> {
        let BytesFrame::Array(items) = frame else {
            return Err(bad("a request is an array of bulk strings: send commands as redis clients do"));
        };
        let mut words = Vec::with_capacity(items.len());
        for item in items {
            match item {
                BytesFrame::BulkString(b) | BytesFrame::SimpleString(b) => words.push(b),
                BytesFrame::Integer(i) => words.push(Bytes::from(i.to_string())),
                _ => return Err(bad("a request is an array of bulk strings: send commands as redis clients do")),
            }
        }
        let mut args = Args { words: words.into_iter() };
        let name = args.next().ok_or_else(|| bad("empty request: send a command"))?;
        let command = String::from_utf8_lossy(&name).to_ascii_uppercase();
        match command.as_str() {
            "LOCK" => lock(&mut args).map(Request::Lock),
            "UNLOCK" => Ok(Request::Unlock(Release { name: args.name()?, key: args.key()? })),
            "REFRESH" => refresh(&mut args),
            "SETVALUE" => {
                let (name, key) = (args.name()?, args.key()?);
                let value = args.next().map(|v| Value::from(v.as_ref()));
                Ok(Request::SetValue(SetValue { name, key, value }))
            }
            "DOWNGRADE" => Ok(Request::Downgrade(Downgrade { name: args.name()?, key: args.key()? })),
            "DESCRIBE" => Ok(Request::Describe(Describe { name: args.name()? })),
            "VALIDATE" => Ok(Request::Validate(ValidateFence { name: args.name()?, token: args.number("token")? })),
            "LIST" => list(&mut args),
            "SESSION" => Ok(Request::Session),
            "PING" => Ok(Request::Ping(args.next())),
            "ECHO" => args.next().map(Request::Echo).ok_or_else(|| bad("ECHO needs a message")),
            "HELLO" => hello(&mut args),
            "AUTH" => {
                let first = args.next().ok_or_else(|| bad("AUTH needs a token (AUTH [user] token)"))?;
                Ok(Request::Auth { token: args.next().unwrap_or(first) })
            }
            "CLIENT" => client(&mut args),
            "SELECT" => args.next().map(Request::Select).ok_or_else(|| bad("SELECT needs a database number")),
            "COMMAND" => Ok(Request::Command),
            "QUIT" => Ok(Request::Quit),
            _ => Err(Refused::Unknown(String::from_utf8_lossy(&name).into_owned())),
        }
    }
}

fn bad(message: impl Into<String>) -> Refused {
    Refused::Bad(ApiError::new(ErrorCode::InvalidArgument, message))
}

/// The words of a request after its command name.
struct Args {
    words: std::vec::IntoIter<Bytes>,
}

impl Args {
    fn next(&mut self) -> Option<Bytes> {
        self.words.next()
    }

    /// The lock name (UTF-8), which every lock command starts with.
    fn name(&mut self) -> Result<String, Refused> {
        let raw = self.next().ok_or_else(|| bad("the command needs a lock name"))?;
        String::from_utf8(raw.to_vec()).map_err(|_| {
            Refused::Bad(ApiError::new(
                ErrorCode::InvalidName,
                "lock name is not valid UTF-8: send the name as UTF-8 bytes",
            ))
        })
    }

    fn key(&mut self) -> Result<LockKey, Refused> {
        let raw = self.next().ok_or_else(|| bad("the command needs the key the grant returned"))?;
        key_of(&raw)
    }

    fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, Refused> {
        let raw = self.next().ok_or_else(|| bad(format!("the command needs {what}")))?;
        parse_number(&raw, what)
    }

    /// The remaining words as (upper-cased option name, value) pairs.
    fn options(&mut self) -> Result<Vec<(String, Bytes)>, Refused> {
        let mut out = Vec::new();
        while let Some(name) = self.next() {
            let name = String::from_utf8_lossy(&name).to_ascii_uppercase();
            let value = self.next().ok_or_else(|| bad(format!("option {name} has no value: give it one")))?;
            out.push((name, value));
        }
        Ok(out)
    }
}

fn key_of(raw: &[u8]) -> Result<LockKey, Refused> {
    LockKey::new(String::from_utf8_lossy(raw).into_owned()).map_err(|e| Refused::Bad(e.into()))
}

fn parse_number<T: std::str::FromStr>(raw: &[u8], what: &str) -> Result<T, Refused> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("{what} is not a number in range: {:?}", String::from_utf8_lossy(raw))))
}

fn unknown_option(name: &str, known: &str) -> Refused {
    bad(format!("unknown option {name}: use {known}"))
}

fn lock(args: &mut Args) -> Result<Acquire, Refused> {
    let mut asked = Acquire { name: args.name()?, ..Acquire::default() };
    for (name, value) in args.options()? {
        match name.as_str() {
            "TTL" => asked.ttl_ms = Some(parse_number(&value, "TTL")?),
            "WAIT" => asked.wait_ms = Some(parse_number(&value, "WAIT")?),
            "SIZE" => asked.size = Some(parse_number(&value, "SIZE")?),
            "PERMITS" => asked.permits = Some(parse_number(&value, "PERMITS")?),
            "KEY" => asked.key = Some(key_of(&value)?),
            "MODE" => {
                let mode = Mode::parse(&String::from_utf8_lossy(&value));
                asked.mode = Some(mode.ok_or_else(|| bad("MODE is exclusive or shared"))?);
            }
            "VALUE" => asked.value = Some(Value::from(value.as_ref())),
            other => return Err(unknown_option(other, "TTL, WAIT, SIZE, PERMITS, KEY, MODE or VALUE")),
        }
    }
    Ok(asked)
}

fn refresh(args: &mut Args) -> Result<Request, Refused> {
    let (name, key) = (args.name()?, args.key()?);
    let mut ttl_ms = None;
    for (option, value) in args.options()? {
        match option.as_str() {
            "TTL" => ttl_ms = Some(parse_number(&value, "TTL")?),
            other => return Err(unknown_option(other, "TTL")),
        }
    }
    Ok(Request::Refresh(Refresh { name, key, ttl_ms }))
}

fn list(args: &mut Args) -> Result<Request, Refused> {
    let mut list = List { prefix: args.name().unwrap_or_default(), ..List::default() };
    for (option, value) in args.options()? {
        match option.as_str() {
            "LIMIT" => list.limit = Some(parse_number(&value, "LIMIT")?),
            "AFTER" => list.after = Some(String::from_utf8_lossy(&value).into_owned()),
            other => return Err(unknown_option(other, "LIMIT or AFTER")),
        }
    }
    Ok(Request::List(list))
}

fn hello(args: &mut Args) -> Result<Request, Refused> {
    let protocol = args.next();
    let mut token = None;
    while let Some(word) = args.next() {
        match String::from_utf8_lossy(&word).to_ascii_uppercase().as_str() {
            "AUTH" => {
                let (_user, pass) = (args.next(), args.next());
                token = Some(pass.ok_or_else(|| bad("HELLO AUTH needs a user name and a password"))?);
            }
            "SETNAME" => drop(args.next()),
            other => return Err(bad(format!("HELLO takes AUTH and SETNAME, not {other}"))),
        }
    }
    Ok(Request::Hello { protocol, token })
}

fn client(args: &mut Args) -> Result<Request, Refused> {
    let sub = args.next().map(|s| String::from_utf8_lossy(&s).to_ascii_uppercase()).unwrap_or_default();
    match sub.as_str() {
        "SETNAME" | "SETINFO" => Ok(Request::ClientAck),
        "ID" => Ok(Request::ClientId),
        other => Err(Refused::Unknown(format!("CLIENT {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(parts: &[&str]) -> BytesFrame {
        BytesFrame::Array(parts.iter().map(|p| BytesFrame::BulkString(Bytes::copy_from_slice(p.as_bytes()))).collect())
    }

    #[test]
    fn lock_options_in_any_order_and_case() {
        let Ok(Request::Lock(a)) =
            Request::parse(words(&["lock", "orders/42", "wait", "500", "TTL", "3000", "Key", "k1"]))
        else {
            panic!("not a lock");
        };
        assert_eq!(
            (a.name.as_str(), a.ttl_ms, a.wait_ms, a.key.unwrap().as_str()),
            ("orders/42", Some(3000), Some(500), "k1")
        );
    }

    #[test]
    fn bad_input_is_a_reply_not_a_failure() {
        let cases: &[(&[&str], &str)] = &[
            (&["LOCK"], "lock name"),
            (&["LOCK", "a", "TTL"], "has no value"),
            (&["LOCK", "a", "TTL", "-5"], "not a number"),
            (&["LOCK", "a", "COLOR", "red"], "unknown option"),
            (&["UNLOCK", "a", "bad key"], "key"),
            (&["VALIDATE", "a", "x"], "not a number"),
            (&[], "empty request"),
        ];
        for (parts, why) in cases {
            match Request::parse(words(parts)) {
                Err(Refused::Bad(e)) => assert!(e.message.contains(why), "{parts:?}: {}", e.message),
                other => panic!("{parts:?}: {other:?}"),
            }
        }
        assert_eq!(Request::parse(words(&["FLUSHALL"])).unwrap_err(), Refused::Unknown("FLUSHALL".into()));
        assert!(matches!(Request::parse(BytesFrame::Integer(3)), Err(Refused::Bad(_))));
    }
}
