//! PostgreSQL mode: `SPINLING_TEST_DATABASE=postgres` serves every `Api` from PostgreSQL
//! (variable `database = postgres`) instead of Spin's SQLite files. One server runs per test
//! process; each app gets a database of its own, named in its state directory, so that a
//! restart over the same state finds the same data.

use std::path::Path;
use std::sync::OnceLock;

use spinling_test_support::rig::PostgresServer;

/// Whether `SPINLING_TEST_DATABASE=postgres` asks for PostgreSQL.
pub fn requested() -> bool {
    std::env::var("SPINLING_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

/// The test process's server. It is started on a thread of its own that lives as long as the
/// process: a server dies with the thread that started it (`PR_SET_PDEATHSIG`), and a test's
/// thread ends with the test.
pub fn server() -> &'static PostgresServer {
    static SERVER: OnceLock<&'static PostgresServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let server: &'static PostgresServer = Box::leak(Box::new(PostgresServer::start(false)));
            sender.send(server).unwrap();
            loop {
                std::thread::park();
            }
        });
        receiver.recv().expect("the PostgreSQL server started")
    })
}

/// The app's database, made on first use: its name is kept in `state_dir`.
pub fn database_of(state_dir: &Path) -> String {
    let file = state_dir.join("postgres-database");
    if let Ok(name) = std::fs::read_to_string(&file) {
        return name;
    }
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("app_{}_{n}", std::process::id());
    server().create_database(&name);
    std::fs::create_dir_all(state_dir).unwrap();
    std::fs::write(&file, &name).unwrap();
    name
}

/// The Spin variables that put an app on its database.
pub fn variables(state_dir: &Path) -> Vec<(String, String)> {
    server().spin_variables(&database_of(state_dir))
}

/// Runs one statement on the app's database and returns the first column of each row as
/// text, as `Api::query_database` does for SQLite.
pub fn query(state_dir: &Path, sql: &str) -> Vec<String> {
    let output = server().psql(&database_of(state_dir), sql);
    output
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').next().unwrap_or_default().to_string())
        .collect()
}
