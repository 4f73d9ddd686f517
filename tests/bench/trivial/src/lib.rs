//! The benchmark's floors: what a request costs at the least through the same host, doing
//! nothing, or exactly one storage operation.
//!
//! - `GET` answers `ok`; `?bytes=N` N zero bytes; `?kv` the value of one key-value key;
//!   `?row` one SQLite row read by primary key.
//! - `GET ?vars=N` reads the Spin variable `floor` N times (what a component reading N
//!   settings per request pays for them).
//! - `POST ?insert` runs one one-row `INSERT` (autocommit: one durable commit).
//! - `POST ?chained-insert` first calls the private component `chained` (this same code, by
//!   service chaining; it answers `ok`), then runs that `INSERT`: the least a request costs
//!   that, like a sync execution, calls a second component and then records one row.
//! - `POST ?setup` creates the floor's table and row in WAL mode and answers the connection's
//!   `journal_mode synchronous`, so the bench can check the INSERT floor is durable.
//! - Any other `POST` reads the whole body and answers its length.

use futures::{SinkExt, StreamExt};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::sqlite::{Connection, Value};

#[http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let query = request.path_with_query().unwrap_or_default();
    let query = query.split_once('?').map_or("", |(_, q)| q).to_string();
    let (status, body) = if request.method() == spin_sdk::http::Method::Get {
        match query.strip_prefix("bytes=").and_then(|n| n.parse().ok()) {
            Some(n) => (200, vec![0u8; n]),
            None if query == "kv" => (200, kv_get()),
            None if query == "row" => answer(row_read()),
            None if query.starts_with("vars=") => (200, variables(&query[5..])),
            None => (200, b"ok".to_vec()),
        }
    } else if query == "insert" {
        answer(row_insert())
    } else if query == "chained-insert" {
        chained_insert().await
    } else if query == "setup" {
        answer(setup())
    } else {
        let mut stream = request.into_body_stream();
        let mut length = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            length += chunk.len();
        }
        (200, length.to_string().into_bytes())
    };
    let headers = Fields::from_list(&[(
        "content-length".to_string(),
        body.len().to_string().into_bytes(),
    )])
    .unwrap();
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let mut sink = response.take_body();
    response_out.set(response);
    for piece in body.chunks(1024 * 1024) {
        if sink.send(piece.to_vec()).await.is_err() {
            return;
        }
    }
}

/// 200 with the body, or 500 with the error: a floor that fails must not look fast.
fn answer(outcome: Result<Vec<u8>, spin_sdk::sqlite::Error>) -> (u16, Vec<u8>) {
    match outcome {
        Ok(body) => (200, body),
        Err(e) => (500, format!("{e:?}").into_bytes()),
    }
}

fn variables(count: &str) -> Vec<u8> {
    let count: usize = count.parse().unwrap_or(0);
    let mut length = 0;
    for _ in 0..count {
        length += spin_sdk::variables::get("floor").map_or(0, |v| v.len());
    }
    length.to_string().into_bytes()
}

fn kv_get() -> Vec<u8> {
    spin_sdk::key_value::Store::open_default()
        .and_then(|store| store.get("trivial"))
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn row_read() -> Result<Vec<u8>, spin_sdk::sqlite::Error> {
    let rows = Connection::open_default()?.execute(
        "SELECT value FROM bench_floor WHERE id = ?",
        &[Value::Integer(1)],
    )?;
    let value = rows
        .rows()
        .next()
        .and_then(|row| row.get::<&str>("value").map(|v| v.as_bytes().to_vec()));
    Ok(value.unwrap_or_default())
}

fn row_insert() -> Result<Vec<u8>, spin_sdk::sqlite::Error> {
    Connection::open_default()?.execute(
        "INSERT INTO bench_floor (value) VALUES (?)",
        &[Value::Text("floor".into())],
    )?;
    Ok(b"ok".to_vec())
}

async fn chained_insert() -> (u16, Vec<u8>) {
    let request = spin_sdk::http::Request::get("http://chained.spin.internal/").build();
    match spin_sdk::http::send::<_, spin_sdk::http::Response>(request).await {
        Ok(response) if *response.status() == 200 => answer(row_insert()),
        Ok(response) => (
            500,
            format!("the chained component answered {}", response.status()).into_bytes(),
        ),
        Err(e) => (500, format!("{e:?}").into_bytes()),
    }
}

fn setup() -> Result<Vec<u8>, spin_sdk::sqlite::Error> {
    let db = Connection::open_default()?;
    let text = |sql: &str| -> Result<String, spin_sdk::sqlite::Error> {
        let result = db.execute(sql, &[])?;
        Ok(match result.rows.first().and_then(|r| r.values.first()) {
            Some(Value::Text(t)) => t.clone(),
            Some(Value::Integer(i)) => i.to_string(),
            _ => String::new(),
        })
    };
    let journal_mode = text("PRAGMA journal_mode=WAL")?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS bench_floor (id INTEGER PRIMARY KEY, value TEXT NOT NULL)",
        &[],
    )?;
    db.execute(
        "INSERT OR IGNORE INTO bench_floor (id, value) VALUES (1, 'floor')",
        &[],
    )?;
    let synchronous = text("PRAGMA synchronous")?;
    Ok(format!("{journal_mode} {synchronous}").into_bytes())
}
