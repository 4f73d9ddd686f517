use super::*;
use std::cell::RefCell;
use std::collections::HashMap;

/// Every variable of every group.
const EVERY: Reads = &[
    groups::SERVING,
    groups::IDENTITY,
    groups::RESOURCES,
    groups::CACHING,
    &[
        "worker_hosts",
        "max_package_size",
        "max_versions",
        "version_retention",
        "package_write_grace_seconds",
    ],
];

fn read<T>(
    reads: Reads,
    pairs: &[(&str, &str)],
    from: impl Fn(&Variables) -> Result<T, String>,
) -> Result<T, String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |name: &str| map.get(name).cloned();
    from(&Variables::new(reads, &get))
}

/// A getter answering `answer` for every variable, which records in `asked` each one asked for.
fn recording<'a>(
    asked: &'a RefCell<Vec<String>>,
    answer: Option<&'a str>,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        asked.borrow_mut().push(name.to_string());
        answer.map(str::to_string)
    }
}

fn settings_of(pairs: &[(&str, &str)]) -> Result<Settings, String> {
    read(EVERY, pairs, Settings::from_variables)
}

fn database_of(pairs: &[(&str, &str)]) -> Result<DatabaseChoice, String> {
    read(EVERY, pairs, DatabaseChoice::from_variables)
}

fn auth_mode_of(pairs: &[(&str, &str)]) -> Result<AuthMode, String> {
    read(EVERY, pairs, AuthMode::from_variables)
}

#[test]
fn settings_use_defaults_for_unset_variables() {
    assert_eq!(settings_of(&[]).unwrap(), Settings::default());
    assert_eq!(
        settings_of(&[("max_versions", "3")])
            .unwrap()
            .rules
            .max_versions,
        3
    );
    assert_eq!(read(EVERY, &[], max_page_size), Ok(1000));
    assert_eq!(
        read(EVERY, &[("max_page_size", "25")], max_page_size),
        Ok(25)
    );
    let err = read(EVERY, &[("max_page_size", "0")], max_page_size).unwrap_err();
    assert!(err.starts_with("variable max_page_size"), "{err}");
    let everything_x: Vec<(&str, &str)> = EVERY
        .iter()
        .flat_map(|set| set.iter())
        .map(|name| (*name, "x"))
        .collect();
    assert!(settings_of(&everything_x).is_err());
}

#[test]
fn a_blank_variable_is_unset() {
    assert_eq!(
        settings_of(&[("max_versions", "  ")])
            .unwrap()
            .rules
            .max_versions,
        10
    );
    let url = read(
        EVERY,
        &[("public_url", " https://faas.example.org/ ")],
        public_url,
    );
    assert_eq!(url, Ok(Some("https://faas.example.org".into())));
}

#[test]
fn a_group_reads_only_the_variables_it_declares() {
    let asked = RefCell::new(Vec::new());
    let get = recording(&asked, Some("x"));
    let root = Variables::new(groups::ROOT, &get);
    assert!(root.declares("public_url"));
    assert!(!root.declares("max_versions"));
    assert_eq!(root.value("max_versions"), None);
    assert_eq!(root.value("auth_mode").as_deref(), Some("x"));
    assert_eq!(*asked.borrow(), ["auth_mode"]);
}

#[test]
fn a_read_asks_for_no_variable_only_writes_use() {
    let asked = RefCell::new(Vec::new());
    let get = recording(&asked, None);
    let settings = Settings::from_variables(&Variables::new(EVERY, &get).for_reads()).unwrap();
    assert_eq!(settings, Settings::default());
    let asked = asked.take();
    for name in groups::WRITES_ONLY {
        assert!(!asked.contains(&name.to_string()), "{name} was asked for");
    }
    for name in ["auth_mode", "cors_allowed_origins", "key_value_scope"] {
        assert!(
            asked.contains(&name.to_string()),
            "{name} was not asked for"
        );
    }
    // A write reads them all.
    let map: HashMap<String, String> = [("max_versions".to_string(), "3".to_string())].into();
    let get = |name: &str| map.get(name).cloned();
    let writes = Variables::new(EVERY, &get);
    assert_eq!(
        Settings::from_variables(&writes)
            .unwrap()
            .rules
            .max_versions,
        3
    );
    let reads = Variables::new(EVERY, &get).for_reads();
    assert_eq!(
        Settings::from_variables(&reads).unwrap().rules.max_versions,
        10
    );
}

#[test]
fn a_setting_the_group_does_not_read_keeps_its_default() {
    let s = read(
        groups::ROOT,
        &[("max_versions", "x")],
        Settings::from_variables,
    )
    .unwrap();
    assert_eq!(s.rules.max_versions, 10);
    let s = read(
        groups::VERSIONS,
        &[("max_versions", "3")],
        Settings::from_variables,
    )
    .unwrap();
    assert_eq!(s.rules.max_versions, 3);
}

#[test]
fn request_limits_are_read_from_variables() {
    let s = settings_of(&[
        ("max_request_body", "2048"),
        ("max_json_depth", "4"),
        ("max_json_items", "50"),
        (
            "cors_allowed_origins",
            "https://app.example.org, http://localhost:8080",
        ),
    ])
    .unwrap();
    assert_eq!(s.max_request_body, 2048);
    assert_eq!(
        s.json_limits,
        JsonLimits {
            max_depth: 4,
            max_items: 50
        }
    );
    assert_eq!(
        s.cors_allowed_origins,
        AllowedOrigins::parse("https://app.example.org,http://localhost:8080").unwrap()
    );
}

#[test]
fn cors_is_off_by_default_in_auth_mode_none() {
    for variables in [
        &[][..],
        &[("cors_allowed_origins", "")],
        &[("auth_mode", "none"), ("cors_allowed_origins", " ")],
    ] {
        let s = settings_of(variables).unwrap();
        assert_eq!(s.cors_allowed_origins, AllowedOrigins::off());
    }
}

#[test]
fn cors_allows_any_origin_by_default_in_auth_mode_keystone() {
    let s = settings_of(&[("auth_mode", "keystone"), ("cors_allowed_origins", "")]).unwrap();
    assert_eq!(s.cors_allowed_origins, AllowedOrigins::any());
    let s = settings_of(&[("auth_mode", "keystone")]).unwrap();
    assert_eq!(s.cors_allowed_origins, AllowedOrigins::any());
    let off = settings_of(&[("auth_mode", "keystone"), ("cors_allowed_origins", "off")]);
    assert_eq!(off.unwrap().cors_allowed_origins, AllowedOrigins::off());
}

#[test]
fn configured_cors_origins_hold_in_either_mode() {
    for mode in ["none", "keystone"] {
        let s = settings_of(&[("auth_mode", mode), ("cors_allowed_origins", "*")]).unwrap();
        assert_eq!(s.cors_allowed_origins, AllowedOrigins::any());
    }
}

#[test]
fn hosts_are_guarded_in_every_auth_mode_and_origins_in_mode_none() {
    let pairs = [
        ("allowed_hosts", "faas.lan"),
        ("public_url", "https://faas.example.org"),
    ];
    let hosts = read(EVERY, &pairs, allowed_hosts).unwrap();
    assert!(settings_of(&pairs).unwrap().guards_origins);
    assert!(hosts.serves("faas.lan:3000"));
    assert!(hosts.serves("faas.example.org"));
    assert!(hosts.serves("localhost:3000"));
    assert!(!hosts.serves("evil.example"));
    let keystone = settings_of(&[("auth_mode", "keystone")]).unwrap();
    assert!(!keystone.guards_origins);
    let err = read(
        EVERY,
        &[("allowed_hosts", "http://faas.lan")],
        allowed_hosts,
    )
    .unwrap_err();
    assert!(err.starts_with("variable allowed_hosts: "), "{err}");
    let err = read(EVERY, &[("public_url", "faas.lan")], allowed_hosts).unwrap_err();
    assert!(err.starts_with("variable public_url "), "{err}");
}

#[test]
fn settings_only_some_requests_need_are_not_read_with_the_rest() {
    let asked = RefCell::new(Vec::new());
    let get = recording(&asked, None);
    Settings::from_variables(&Variables::new(EVERY, &get)).unwrap();
    for name in ["public_url", "allowed_hosts", "max_page_size"] {
        assert!(!asked.borrow().contains(&name.to_string()), "{name}");
    }
}

#[test]
fn bad_limit_variables_are_configuration_errors() {
    let bad = [
        ("max_request_body", "0"),
        ("max_request_body", "1MB"),
        ("max_json_depth", "128"),
        ("max_json_depth", "-1"),
        ("max_json_items", "0"),
        ("cors_allowed_origins", "app.example.org"),
    ];
    for (name, value) in bad {
        let err = settings_of(&[(name, value)]).unwrap_err();
        assert!(err.starts_with(&format!("variable {name}")), "{err}");
    }
    let err = settings_of(&[("max_json_depth", "500")]).unwrap_err();
    assert_eq!(
        err,
        "variable max_json_depth must be a whole number from 1 to 127, not \"500\""
    );
}

#[test]
fn the_package_write_grace_is_a_number_of_seconds_up_to_a_week() {
    assert_eq!(settings_of(&[]).unwrap().package_write_grace_seconds, 900);
    let short = settings_of(&[("package_write_grace_seconds", "2")]).unwrap();
    assert_eq!(short.package_write_grace_seconds, 2);
    for bad in ["0", "-5", "15m", "604801"] {
        let err = settings_of(&[("package_write_grace_seconds", bad)]).unwrap_err();
        assert_eq!(
            err,
            format!(
                "variable package_write_grace_seconds must be a whole number from 1 to 604800, \
                 not {bad:?}"
            )
        );
    }
    // A read leaves it out of its settings; a download asks for it on its own.
    let map: HashMap<String, String> =
        [("package_write_grace_seconds".to_string(), "7".to_string())].into();
    let get = |name: &str| map.get(name).cloned();
    let reads = Variables::new(groups::FUNCTIONS, &get).for_reads();
    assert_eq!(
        Settings::from_variables(&reads)
            .unwrap()
            .package_write_grace_seconds,
        900
    );
    let download = Variables::new(groups::FUNCTIONS, &get);
    assert_eq!(package_write_grace_seconds(&download), Ok(7));
    let root = Variables::new(groups::ROOT, &get);
    assert_eq!(package_write_grace_seconds(&root), Ok(900));
}

#[test]
fn auth_mode_defaults_to_none() {
    assert_eq!(auth_mode_of(&[]), Ok(AuthMode::None));
    assert_eq!(auth_mode_of(&[("auth_mode", "")]), Ok(AuthMode::None));
    assert!(auth_mode_of(&[("auth_mode", "noauth")]).is_err());
}

#[test]
fn keystone_mode_needs_its_endpoint_and_account() {
    assert!(auth_mode_of(&[("auth_mode", "keystone")]).is_err());
    let mode = auth_mode_of(&[
        ("auth_mode", "keystone"),
        ("keystone_url", "http://127.0.0.1:5000/"),
        ("keystone_service_user", "spinling"),
        ("keystone_service_password", "pw"),
        ("keystone_service_project", "service"),
    ])
    .unwrap();
    let AuthMode::Keystone(config) = mode else {
        panic!("not keystone")
    };
    assert_eq!(config.url, "http://127.0.0.1:5000/v3");
    assert_eq!(config.service_domain, "Default");
    assert_eq!(config.token_cache_ttl, 300);
}

#[test]
fn the_service_password_is_redacted_in_debug_output() {
    let config = KeystoneConfig {
        url: "http://ks/v3".into(),
        service_user: "spinling".into(),
        service_password: "s3cret-password".into(),
        service_project: "service".into(),
        service_domain: "Default".into(),
        token_cache_ttl: 300,
    };
    let printed = format!("{:?}", AuthMode::Keystone(config));
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(
        printed.contains("service_password: <redacted>"),
        "{printed}"
    );
    assert!(printed.contains("service_user: \"spinling\""), "{printed}");
}

#[test]
fn version_retention_is_reject_unless_prune_oldest_is_asked_for() {
    assert_eq!(
        settings_of(&[]).unwrap().rules.version_retention,
        VersionRetention::Reject
    );
    assert_eq!(
        settings_of(&[("version_retention", "prune_oldest")])
            .unwrap()
            .rules
            .version_retention,
        VersionRetention::PruneOldest
    );
    assert_eq!(
        settings_of(&[("version_retention", "newest")]).unwrap_err(),
        "variable version_retention must be reject or prune_oldest, not \"newest\""
    );
}

#[test]
fn the_key_value_store_is_one_replicas_own_unless_said_to_be_shared() {
    let scope_of = |pairs: &[(&str, &str)]| settings_of(pairs).map(|s| s.key_value_scope);
    assert_eq!(scope_of(&[]), Ok(KeyValueScope::Replica));
    assert_eq!(
        scope_of(&[("key_value_scope", "shared")]),
        Ok(KeyValueScope::Shared)
    );
    assert_eq!(
        scope_of(&[("key_value_scope", "redis")]),
        Err("variable key_value_scope must be replica or shared, not \"redis\"".into())
    );
}

#[test]
fn the_database_is_sqlite_unless_postgres_is_chosen_with_its_url() {
    assert_eq!(database_of(&[]).unwrap(), DatabaseChoice::Sqlite);
    let url = "postgres://spinling:secret@db.example.org:5432/spinling";
    let postgres = database_of(&[("database", "PostgreS"), ("postgres_url", url)]).unwrap();
    assert_eq!(postgres, DatabaseChoice::Postgres { url: url.into() });
    assert!(
        !format!("{postgres:?}").contains("secret"),
        "the URL is redacted"
    );
    assert_eq!(
        database_of(&[("database", "postgres")]).unwrap_err(),
        "variable postgres_url must be set when database is postgres"
    );
    assert_eq!(
        database_of(&[("database", "mysql")]).unwrap_err(),
        "variable database must be sqlite or postgres, not \"mysql\""
    );
}
