//! Trace tests of the lock table, read from `testdata/*.txt`.
//!
//! Each block is a command, a `----` line, and the lines it must print: the
//! reply (`ok …` or `err …`) then every effect, or the state for reads. Log
//! indexes count the mutating commands of a file from 1. Tokens of the form
//! `s*N` expand to `s` repeated N times; `""` is the empty string. The
//! limits are small (`test_limits`) so that every bound is reachable.
//! Commands apply under the current rules unless a `rules v1` block says
//! otherwise (logs of the [`Rules::V1`] era). `TRACE_REWRITE=1 cargo test
//! traces` rewrites each file with what the table printed: review the diff.

use std::fmt::Write;
use std::path::Path;

use super::{AcquireCmd, Command, Effect, Grant, Limits, LockKey, LockTable, Mode, Outcome, Reply, Rules, Value};

fn test_limits() -> Limits {
    Limits {
        max_name_bytes: 16,
        max_size: 10,
        min_ttl_ms: 100,
        max_ttl_ms: 100_000,
        max_wait_ms: 60_000,
        max_waiters_per_lock: 3,
        max_shared_holders: 3,
        max_value_bytes: 8,
    }
}

struct Trace {
    table: LockTable,
    index: u64,
    rules: Rules,
}

fn expand(token: &str) -> String {
    if token == "\"\"" {
        return String::new();
    }
    match token.rsplit_once('*') {
        Some((s, n)) if n.parse::<usize>().is_ok() => s.repeat(n.parse().unwrap()),
        _ => token.to_owned(),
    }
}

/// Positional arguments and `k=v` options of one command line.
struct Args {
    pos: Vec<String>,
    opts: Vec<(String, String)>,
}

impl Args {
    fn parse(words: &[&str]) -> Self {
        let (mut pos, mut opts) = (Vec::new(), Vec::new());
        for w in words {
            match w.split_once('=') {
                Some((k, v)) => opts.push((k.to_owned(), expand(v))),
                None => pos.push(expand(w)),
            }
        }
        Self { pos, opts }
    }
    fn name(&self) -> String {
        self.pos[0].clone()
    }
    fn key(&self) -> LockKey {
        LockKey::new(self.pos[1].clone()).expect("trace keys are valid")
    }
    fn num(&self, k: &str, default: u64) -> u64 {
        self.opts.iter().find(|(o, _)| o == k).map_or(default, |(_, v)| v.parse().expect("number"))
    }
    fn text(&self, k: &str) -> Option<String> {
        self.opts.iter().find(|(o, _)| o == k).map(|(_, v)| v.clone())
    }
    fn mode(&self) -> Mode {
        self.text("mode").map_or(Mode::Exclusive, |m| Mode::parse(&m).expect("exclusive or shared"))
    }
    fn value(&self) -> Option<Value> {
        self.text("value").map(|v| Value::from(v.as_str()))
    }
}

/// ` shared` for a shared hold, nothing for an exclusive one.
fn mode_suffix(mode: Mode) -> &'static str {
    match mode {
        Mode::Exclusive => "",
        Mode::Shared => " shared",
    }
}

/// ` value=…` when there is one.
fn value_suffix(value: Option<&Value>) -> String {
    value.map_or(String::new(), |v| format!(" value={}", String::from_utf8_lossy(v.as_bytes())))
}

impl Trace {
    fn run(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let args = Args::parse(&words[1..]);
        let cmd = match words[0] {
            "acquire" => Command::Acquire(AcquireCmd {
                name: args.name(),
                key: args.key(),
                size: args.num("size", 1) as u32,
                permits: args.num("permits", 1) as u32,
                ttl_ms: args.num("ttl", 1000),
                wait_ms: args.num("wait", 0),
                mode: args.mode(),
                value: args.value(),
            }),
            "acquire-v1" => Command::AcquireV1(super::AcquireV1 {
                name: args.name(),
                key: args.key(),
                size: args.num("size", 1) as u32,
                permits: args.num("permits", 1) as u32,
                ttl_ms: args.num("ttl", 1000),
                wait_ms: args.num("wait", 0),
            }),
            "set-value" => Command::SetValue { name: args.name(), key: args.key(), value: args.value() },
            "downgrade" => Command::Downgrade { name: args.name(), key: args.key() },
            "release" => Command::Release { name: args.name(), key: args.key() },
            "refresh" => Command::Refresh {
                name: args.name(),
                key: args.key(),
                ttl_ms: args.text("ttl").map(|t| t.parse().expect("number")),
            },
            "expire" => Command::Expire { name: args.name(), key: args.key(), lease_index: args.num("lease", 0) },
            "timeout" => {
                Command::WaitTimeout { name: args.name(), key: args.key(), enqueue_index: args.num("enqueued", 0) }
            }
            "cancel" => Command::CancelWait { name: args.name(), key: args.key() },
            "force" => Command::ForceRelease { name: args.name(), key: (args.pos.len() > 1).then(|| args.key()) },
            "gc" => Command::GcIdle { name: args.name(), idle_since: args.num("since", 0) },
            "describe" => return self.describe(&args.name()),
            "list" => return self.list(&args),
            "fence" => return self.fence(&args),
            "snapshot-roundtrip" => return self.roundtrip(),
            "rules" => {
                self.rules = match args.pos[0].as_str() {
                    "v1" => Rules::V1,
                    "v2" => Rules::V2,
                    other => panic!("unknown rules {other:?}"),
                };
                return "ok\n".into();
            }
            other => panic!("unknown trace command {other:?}"),
        };
        self.index += 1;
        render(&self.table.apply_under(self.rules, self.index, &cmd))
    }

    fn describe(&self, name: &str) -> String {
        let Some(lock) = self.table.get(name) else {
            return "none\n".into();
        };
        let idle = lock.idle_since().map_or("-".into(), |i| i.to_string());
        let mut out = format!("lock {name} size={} held={} idle_since={idle}\n", lock.size(), lock.held());
        for (key, h) in lock.holders() {
            let (p, t, ttl, l, m) = (h.permits, h.token, h.ttl_ms, h.lease_index, mode_suffix(h.mode));
            let v = value_suffix(self.table.value_of(name, key));
            writeln!(out, "holder {key} permits={p} token={t} ttl={ttl} lease={l}{m}{v}").unwrap();
        }
        for w in lock.waiters().iter() {
            let (k, p, ttl, wait, e, m) =
                (&w.key, w.permits, w.ttl_ms, w.wait_ms, w.enqueue_index, mode_suffix(w.mode));
            let v = value_suffix(w.value.as_ref());
            writeln!(out, "waiter {k} permits={p} ttl={ttl} wait={wait} enqueued={e}{m}{v}").unwrap();
        }
        out
    }

    fn list(&self, args: &Args) -> String {
        let prefix = args.pos.first().cloned().unwrap_or_default();
        let after = args.text("after");
        let rows = self.table.list(&prefix, after.as_deref(), args.num("limit", 100) as usize);
        let mut out = String::new();
        for r in &rows {
            let (n, s, h, hs, ws) = (&r.name, r.size, r.held, r.holders, r.waiters);
            let m = r.mode.map_or("", mode_suffix);
            let vs: String = r.values.iter().map(|(k, v)| format!(" {k}{}", value_suffix(Some(v)))).collect();
            writeln!(out, "{n} size={s} held={h} holders={hs} waiters={ws}{m}{vs}").unwrap();
        }
        if rows.is_empty() {
            out.push_str("empty\n");
        }
        out
    }

    fn fence(&self, args: &Args) -> String {
        let token: u64 = args.pos[1].parse().expect("token");
        match self.table.validate_fence(&args.name(), token) {
            Some((key, h)) => format!("valid key={key} token={} permits={}\n", h.token, h.permits),
            None => "invalid\n".into(),
        }
    }

    /// Both encodings the table's snapshots are read from give it back.
    fn roundtrip(&self) -> String {
        let json = serde_json::to_string(&self.table.snapshot()).expect("encode");
        let snap = serde_json::from_str(&json).expect("decode");
        let restored = LockTable::restore(snap, self.table.limits().clone()).expect("restore");
        assert_eq!(restored, self.table, "restored table differs (JSON)");
        let bin = postcard::to_allocvec(&self.table.snapshot()).expect("encode");
        let snap = postcard::from_bytes(&bin).expect("decode");
        let restored = LockTable::restore(snap, self.table.limits().clone()).expect("restore");
        assert_eq!(restored, self.table, "restored table differs (postcard)");
        format!("ok locks={} next_token={}\n", restored.len(), restored.next_token())
    }
}

fn render(outcome: &Outcome) -> String {
    let mut out = match &outcome.reply {
        Ok(reply) => format!("ok {}\n", render_reply(reply)),
        Err(err) => format!("err {err:?}\n"),
    };
    for effect in &outcome.effects {
        writeln!(out, "effect {}", render_effect(effect)).unwrap();
    }
    out
}

fn render_grant(g: &Grant) -> String {
    format!(
        "key={} token={} permits={} ttl={} lease={}{}{}",
        g.key,
        g.token,
        g.permits,
        g.ttl_ms,
        g.lease_index,
        mode_suffix(g.mode),
        value_suffix(g.value.as_ref())
    )
}

fn render_reply(reply: &Reply) -> String {
    match reply {
        Reply::Granted(g) => format!("granted {}", render_grant(g)),
        Reply::ValueSet(g) => format!("value-set {}", render_grant(g)),
        Reply::Downgraded(g) => format!("downgraded {}", render_grant(g)),
        Reply::Refreshed(g) => {
            format!("refreshed key={} token={} ttl={} lease={}", g.key, g.token, g.ttl_ms, g.lease_index)
        }
        Reply::Queued { position, enqueue_index } => format!("queued position={position} enqueued={enqueue_index}"),
        Reply::Released => "released".into(),
        Reply::Expired => "expired".into(),
        Reply::WaitEnded => "wait-ended".into(),
        Reply::ForceReleased { holders } => format!("force-released holders={holders}"),
        Reply::Collected => "collected".into(),
    }
}

fn render_effect(effect: &Effect) -> String {
    match effect {
        Effect::Granted { name, grant: g, handoff } => {
            let (m, v) = (mode_suffix(g.mode), value_suffix(g.value.as_ref()));
            format!("granted {name} {} token={} permits={} handoff={handoff}{m}{v}", g.key, g.token, g.permits)
        }
        Effect::Queued { name, key, permits, mode, wait_ms, enqueue_index } => {
            let m = mode_suffix(*mode);
            format!("queued {name} {key} permits={permits} wait={wait_ms} enqueued={enqueue_index}{m}")
        }
        Effect::ValueChanged { name, key, token, value } => {
            format!("value-changed {name} {key} token={token}{}", value_suffix(value.as_ref()))
        }
        Effect::Downgraded { name, key, token } => format!("downgraded {name} {key} token={token}"),
        Effect::Refreshed { name, key, ttl_ms, lease_index, .. } => {
            format!("refreshed {name} {key} ttl={ttl_ms} lease={lease_index}")
        }
        Effect::HoldEnded { name, key, permits, reason, mode, value, .. } => {
            let (m, v) = (mode_suffix(*mode), value_suffix(value.as_ref()));
            format!("hold-ended {name} {key} permits={permits} reason={reason:?}{m}{v}")
        }
        Effect::WaitEnded { name, key, reason } => {
            format!("wait-ended {name} {key} reason={reason:?}")
        }
        Effect::Idle { name, since } => format!("idle {name} since={since}"),
        Effect::Removed { name } => format!("removed {name}"),
    }
}

/// Runs one trace file and returns (expected, actual) for the whole file,
/// and the file as it would read with the actual output.
fn run_file(text: &str) -> (String, String, String) {
    let mut trace = Trace { table: LockTable::new(test_limits()), index: 0, rules: Rules::CURRENT };
    let (mut expected, mut actual, mut rewritten) = (String::new(), String::new(), Vec::new());
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.starts_with('#')).collect();
        let Some(sep) = lines.iter().position(|l| *l == "----") else {
            // Only a block of comments may go without a `----` line.
            let stray: Vec<&&str> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
            assert!(stray.is_empty(), "a trace block without a `----` line would check nothing:\n{block}");
            rewritten.push(block.to_owned());
            continue;
        };
        let command = lines[..sep].join(" ");
        let want: String = lines[sep + 1..].iter().map(|l| format!("{l}\n")).collect();
        let got = trace.run(&command);
        write!(expected, "> {command}\n{want}").unwrap();
        write!(actual, "> {command}\n{got}").unwrap();
        let head: Vec<&str> = block.lines().take_while(|l| *l != "----").collect();
        rewritten.push(format!("{}\n----\n{}", head.join("\n"), got.trim_end()));
    }
    (expected, actual, rewritten.join("\n\n"))
}

#[test]
fn traces() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lock/testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 4, "trace files missing in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let (expected, actual, rewritten) = run_file(&text);
        if expected != actual && std::env::var_os("TRACE_REWRITE").is_some() {
            let end = if text.ends_with('\n') && !rewritten.ends_with('\n') { "\n" } else { "" };
            std::fs::write(&file, format!("{rewritten}{end}")).unwrap();
            continue;
        }
        if expected != actual {
            let diff: Vec<String> = expected
                .lines()
                .zip(actual.lines())
                .filter(|(e, a)| e != a)
                .take(5)
                .map(|(e, a)| format!("  want: {e}\n  got:  {a}"))
                .collect();
            panic!("trace {} differs:\n{}\n--- full output ---\n{actual}", file.display(), diff.join("\n"));
        }
    }
}

#[test]
fn a_lock_stays_small() {
    // A table holds one per lock, in B-tree nodes of eleven: every byte
    // here costs about one and a half per held lock.
    assert_eq!(std::mem::size_of::<super::Lock>(), 40);
    assert_eq!(std::mem::size_of::<super::Holder>() + std::mem::size_of::<super::LockKey>(), 48);
}
