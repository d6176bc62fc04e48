//! Tests of the config: the example file, layering, and refusals.

use super::*;

const EXAMPLE: &str = include_str!("../config/shardlock.example.toml");

fn keys(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = value {
        for (k, v) in t {
            let path = format!("{prefix}{k}");
            keys(v, &format!("{path}."), out);
            out.push(path);
        }
    }
}

#[test]
fn example_equals_defaults_and_documents_every_key() {
    let parsed = Config::parse(EXAMPLE).expect("example parses");
    assert_eq!(parsed, Config::default());
    let (mut documented, mut known) = (Vec::new(), Vec::new());
    keys(&toml::from_str(EXAMPLE).unwrap(), "", &mut documented);
    keys(&toml::Value::try_from(Config::default()).unwrap(), "", &mut known);
    documented.sort();
    known.sort();
    assert_eq!(documented, known);
}

#[test]
fn the_three_node_example_is_valid() {
    for i in 1..=3 {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("config/cluster/node{i}.toml"));
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(c.node_id, i);
        assert_eq!(c.voters().len(), 3);
    }
}

#[test]
fn environment_overrides_the_file_and_secrets_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, "groups = 8\n[raft]\nheartbeat_interval_ms = 100\n").unwrap();
    let env = [
        ("SHARDLOCK_GROUPS", "16"),
        ("SHARDLOCK_RAFT__ELECTION_TIMEOUT_MIN_MS", "700"),
        ("SHARDLOCK_AUTH__TOKEN", "a-long-enough-shared-secret"),
        ("SHARDLOCK_ADDR", "ignored, it configures the cli"),
    ];
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let c = Config::load_layered(Some(&file), env).unwrap();
    assert_eq!((c.groups, c.raft.heartbeat_interval_ms, c.raft.election_timeout_min_ms), (16, 100, 700));
    assert_eq!(c.auth.token.as_ref().unwrap().expose(), "a-long-enough-shared-secret");
    assert!(!format!("{c:?}").contains("shared-secret"));
    assert!(!toml::to_string(&c).unwrap().contains("shared-secret"));
    let typo = [("SHARDLOCK_GRUOPS".to_string(), "3".to_string())];
    assert!(Config::load_layered(Some(&file), typo).unwrap_err().to_string().contains("SHARDLOCK_GRUOPS"));
}

#[test]
fn containers_configure_a_cluster_from_the_environment() {
    // What config/deploy/docker-compose.yml and the StatefulSet pass.
    let members = r#"[{id = 1, client_addr = "node1:7001", peer_addr = "node1:7101"},
        {id = 2, client_addr = "node2:7001", peer_addr = "node2:7101"},
        {id = 3, client_addr = "node3:7001", peer_addr = "node3:7101"}]"#;
    let env = [
        ("SHARDLOCK_NODE_ID", "2"),
        ("SHARDLOCK_DATA_DIR", "/data"),
        ("SHARDLOCK_CLIENT_ADDR", "0.0.0.0:7001"),
        ("SHARDLOCK_PEER_ADDR", "0.0.0.0:7101"),
        ("SHARDLOCK_INITIAL_CLUSTER", members),
    ];
    let c = Config::load_layered(None, env.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
    assert_eq!(c.voters().len(), 3);
    assert_eq!(c.voters()[1].peer_addr, "node2:7101");
    let bad = [(
        "SHARDLOCK_INITIAL_CLUSTER".to_string(),
        r#"[{id = 1, client_addr = "node1", peer_addr = "x:1"}]"#.to_string(),
    )];
    assert!(Config::load_layered(None, bad).is_err());
}

#[test]
fn dial_overrides_come_from_the_file_or_the_environment() {
    let c = Config::parse("[raft]\ndial = { \"2\" = \"10.0.0.2:7101\", \"3\" = \"proxy:9003\" }").unwrap();
    let want: BTreeMap<u64, String> = [(2, "10.0.0.2:7101".into()), (3, "proxy:9003".into())].into();
    assert_eq!(c.raft.dial_overrides(), want);
    let env = [("SHARDLOCK_RAFT__DIAL".to_string(), r#"{ "3" = "proxy:9003" }"#.to_string())];
    let c = Config::load_layered(None, env).unwrap();
    assert_eq!(c.raft.dial_overrides(), [(3, "proxy:9003".to_string())].into());
    for (text, needle) in
        [("dial = { \"two\" = \"h:1\" }", "not a node id"), ("dial = { \"2\" = \"h\" }", "raft.dial.2")]
    {
        let err = Config::parse(&format!("[raft]\n{text}")).expect_err(text).to_string();
        assert!(err.contains(needle), "{text:?} gave {err:?}");
    }
}

#[test]
fn empty_file_is_a_valid_single_node() {
    let c = Config::parse("").unwrap();
    assert_eq!(c.voters().len(), 1);
    assert_eq!(c.voters()[0].id, 1);
}

#[test]
fn bad_configs_say_what_is_wrong() {
    let cases = [
        ("grups = 3", "unknown field"),
        ("groups = 0", "groups is 0"),
        ("node_id = 0", "node_id"),
        ("client_addr = \"localhost\"", "client_addr"),
        ("default_ttl_ms = 1", "default_ttl_ms"),
        ("[raft]\nelection_timeout_min_ms = 100", "raft"),
        ("[limits]\nmax_size = 0", "max_size"),
        ("[[initial_cluster]]\nid = 2\nclient_addr = \"127.0.0.1:1\"\npeer_addr = \"127.0.0.1:2\"", "does not list"),
        ("groups = \"many\"", "invalid type"),
        ("header_read_timeout_ms = 0", "header_read_timeout_ms is 0"),
        ("body_read_timeout_ms = 18446744073709551615", "body_read_timeout_ms"),
    ];
    for (text, needle) in cases {
        let err = Config::parse(text).expect_err(text).to_string();
        assert!(err.contains(needle), "{text:?} gave {err:?}");
    }
}
