use super::*;
use crate::store::cache::NoCache;
use crate::store::db::testing::TestDb;
use crate::store::migrations::migrate_looking;
use spinling_test_support::zip_of;

/// 2030-01-01T00:00:00Z: every test's clock.
const T0: i64 = 1_893_456_000;

fn caller() -> Caller {
    Caller::acting_for("p", true, None)
}

/// A fresh database with a package function of project `p`; returns its id.
fn setup(db: &TestDb) -> FunctionId {
    crate::testing::package_function(db, &caller(), zip_of(&[("a.wasm", b"one")]))
}

fn new_job(fid: &FunctionId) -> NewJob {
    NewJob {
        name: None,
        target: ExecutionTarget::Function {
            id: fid.clone(),
            version: VersionRef::Current,
        },
        pattern: None,
        first_execution_time: None,
        count: None,
        function_input: None,
    }
}

fn at(stamp: &str) -> i64 {
    parse_timestamp(stamp).unwrap()
}

fn message(result: ApiResult<impl std::fmt::Debug>) -> (u16, String) {
    let e = result.unwrap_err();
    (e.status(), e.message)
}

#[test]
fn a_job_needs_a_pattern_or_a_first_time() {
    let new = NewJob {
        target: ExecutionTarget::Alias("a".into()),
        ..new_job(&FunctionId::generate())
    };
    assert_eq!(
        message(schedule(&new, T0)),
        (
            400,
            "pattern or first_execution_time must be specified.".into()
        )
    );
}

#[test]
fn a_one_shot_job_runs_once_at_its_first_time() {
    let new = NewJob {
        first_execution_time: Some(T0 + 60),
        ..new_job(&FunctionId::generate())
    };
    assert_eq!(
        schedule(&new, T0).unwrap(),
        (Some(T0 + 60), T0 + 60, Some(1))
    );
}

#[test]
fn a_first_time_less_than_a_minute_ahead_is_refused() {
    let new = NewJob {
        first_execution_time: Some(T0 + 59),
        ..new_job(&FunctionId::generate())
    };
    assert_eq!(
        message(schedule(&new, T0)),
        (
            400,
            "Execution time must be at least 1 minute in the future.".into()
        )
    );
}

#[test]
fn a_count_above_one_needs_a_pattern() {
    let new = NewJob {
        first_execution_time: Some(T0 + 120),
        count: Some(2),
        ..new_job(&FunctionId::generate())
    };
    assert_eq!(
        message(schedule(&new, T0)).1,
        "pattern must be provided if count is greater than 1."
    );
}

#[test]
fn a_recurring_job_starts_at_the_patterns_next_tick() {
    let new = NewJob {
        pattern: Some("*/5 * * * *".into()),
        ..new_job(&FunctionId::generate())
    };
    let next = at("2030-01-01T00:05:00Z");
    assert_eq!(schedule(&new, T0 + 1).unwrap(), (Some(next), next, None));
}

#[test]
fn a_recurring_job_with_a_first_time_starts_at_the_tick_from_a_minute_before() {
    // The tick after (first - 1 min) is first itself when first is on a tick.
    let new = NewJob {
        pattern: Some("0 * * * *".into()),
        first_execution_time: Some(at("2030-01-01T02:00:00Z")),
        count: Some(3),
        ..new_job(&FunctionId::generate())
    };
    let first = at("2030-01-01T02:00:00Z");
    assert_eq!(schedule(&new, T0).unwrap(), (Some(first), first, Some(3)));
}

#[test]
fn patterns_have_exactly_five_fields() {
    for bad in [
        "* * * *",
        "0 * * * * *",
        "0 0 * * * * 2030",
        "61 * * * *",
        "nonsense",
    ] {
        assert_eq!(
            message(Pattern::parse(bad).map(|_| ())),
            (400, format!("The specified pattern is not valid: {bad}")),
        );
    }
    let p = Pattern::parse("30 2 * * MON").unwrap();
    // 2030-01-01 is a Tuesday: the next Monday is the 7th.
    assert_eq!(p.next_after(T0), Some(at("2030-01-07T02:30:00Z")));
}

#[test]
fn times_are_read_as_dateutil_reads_the_usual_forms() {
    let noon = at("2030-01-01T12:00:00Z");
    for text in [
        "2030-01-01 12:00",
        "2030-01-01 12:00:00",
        "2030-01-01T12:00:00Z",
        "2030-01-01T12:00:00.123456",
        "2030-01-01T12:00:00+02:00",
    ] {
        assert_eq!(parse_time(text).unwrap(), noon, "{text}");
    }
    assert_eq!(parse_time("2030-01-01").unwrap(), T0);
    assert_eq!(
        message(parse_time("tomorrow")),
        (400, "Unknown string format: tomorrow".into())
    );
    assert!(parse_time("2030-02-30 00:00").is_err());
}

#[test]
fn a_due_one_shot_job_fires_once_with_its_input_and_is_done() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let new = NewJob {
        first_execution_time: Some(T0 + 120),
        function_input: Some(r#"{"name": "job"}"#.into()),
        ..new_job(&fid)
    };
    let job = create_at(&db, &caller(), new, T0).unwrap();
    assert!(
        tick(&db, &NoCache, T0 + 119).unwrap().is_empty(),
        "not yet due"
    );
    let fired = tick(&db, &NoCache, T0 + 120).unwrap();
    assert_eq!(fired.len(), 1);
    let execution = &fired[0].execution;
    assert_eq!(
        execution.description.as_deref(),
        Some(format!("Created by Job {}", job.id).as_str())
    );
    assert_eq!(execution.input, Some(json!({"name": "job"})));
    assert!(!execution.sync);
    assert_eq!(execution.project_id, "p");
    let after = find(&db, &caller(), &job.id).unwrap();
    assert_eq!((after.status, after.count), (JobStatus::Done, Some(0)));
    assert!(tick(&db, &NoCache, T0 + 130).unwrap().is_empty());
}

#[test]
fn a_recurring_job_fires_on_each_tick_until_its_count_is_spent() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let new = NewJob {
        pattern: Some("* * * * *".into()),
        count: Some(2),
        ..new_job(&fid)
    };
    let job = create_at(&db, &caller(), new, T0).unwrap();
    assert_eq!(job.next_execution_time, T0 + 60);
    assert_eq!(tick(&db, &NoCache, T0 + 60).unwrap().len(), 1);
    let after = find(&db, &caller(), &job.id).unwrap();
    assert_eq!(
        (after.status, after.count, after.next_execution_time),
        (JobStatus::Running, Some(1), T0 + 120)
    );
    assert!(tick(&db, &NoCache, T0 + 90).unwrap().is_empty());
    assert_eq!(tick(&db, &NoCache, T0 + 121).unwrap().len(), 1);
    assert_eq!(
        find(&db, &caller(), &job.id).unwrap().status,
        JobStatus::Done
    );
}

#[test]
fn a_recurring_job_that_missed_ticks_fires_once_and_moves_past_now() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let new = NewJob {
        pattern: Some("* * * * *".into()),
        ..new_job(&fid)
    };
    let job = create_at(&db, &caller(), new, T0).unwrap();
    assert_eq!(tick(&db, &NoCache, T0 + 600).unwrap().len(), 1);
    let after = find(&db, &caller(), &job.id).unwrap();
    assert_eq!((after.count, after.next_execution_time), (None, T0 + 660));
}

#[test]
fn a_job_fired_by_another_scheduler_meanwhile_does_not_fire_again() {
    let path = std::env::temp_dir().join(format!("spinling-jobs-{}.sqlite", crate::id::new_id()));
    let one = TestDb::open(&path);
    let two = TestDb::open(&path);
    let fid = setup(&one);
    let new = NewJob {
        pattern: Some("* * * * *".into()),
        ..new_job(&fid)
    };
    let job = create_at(&one, &caller(), new, T0).unwrap();
    // Both read the job as due; the first to fire wins, the other's swap finds it moved.
    let read_by_two = find(&two, &caller(), &job.id).unwrap();
    assert_eq!(tick(&one, &NoCache, T0 + 60).unwrap().len(), 1);
    assert!(fire(&two, &read_by_two, T0 + 61).unwrap().is_none());
    let executions = one.execute("SELECT COUNT(*) FROM executions", &[]).unwrap();
    assert_eq!(executions.first().unwrap().int(0), 1);
    drop((one, two));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_job_whose_function_is_gone_spends_its_tick_without_an_execution() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    db.execute("INSERT INTO function_aliases (id, name, function_id, function_version, project_id, created_at) VALUES ('a', 'al', ?, 0, 'p', 'now')", &[fid.as_str().into()]).unwrap();
    let new = NewJob {
        target: ExecutionTarget::Alias("al".into()),
        first_execution_time: Some(T0 + 60),
        ..new_job(&fid)
    };
    let job = create_at(&db, &caller(), new, T0).unwrap();
    assert_eq!(job.function_id, None);
    db.execute("DELETE FROM function_aliases", &[]).unwrap();
    assert!(tick(&db, &NoCache, T0 + 60).unwrap().is_empty());
    assert_eq!(
        find(&db, &caller(), &job.id).unwrap().status,
        JobStatus::Done
    );
}

#[test]
fn a_finished_job_cannot_be_updated() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let new = NewJob {
        first_execution_time: Some(T0 + 60),
        ..new_job(&fid)
    };
    let job = create_at(&db, &caller(), new, T0).unwrap();
    let cancel = JobChanges {
        status: Some("cancelled".into()),
        ..JobChanges::default()
    };
    update_at(&db, &caller(), &job.id, &cancel, T0).unwrap();
    assert_eq!(
        message(update_at(
            &db,
            &caller(),
            &job.id,
            &JobChanges::default(),
            T0
        )),
        (400, "Can not update a finished job.".into())
    );
}

#[test]
fn a_jobs_type_and_status_are_checked_on_update() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let one_shot = NewJob {
        first_execution_time: Some(T0 + 60),
        ..new_job(&fid)
    };
    let one_shot = create_at(&db, &caller(), one_shot, T0).unwrap();
    let recurring = NewJob {
        pattern: Some("* * * * *".into()),
        ..new_job(&fid)
    };
    let recurring = create_at(&db, &caller(), recurring, T0).unwrap();
    let change =
        |id: &str, changes: JobChanges| message(update_at(&db, &caller(), id, &changes, T0));
    let pattern = |p: &str| JobChanges {
        pattern: Some(p.into()),
        ..JobChanges::default()
    };
    let type_changed = (400, "Can not change job type.".to_string());
    assert_eq!(change(&one_shot.id, pattern("* * * * *")), type_changed);
    assert_eq!(change(&recurring.id, pattern("")), type_changed);
    let done = JobChanges {
        status: Some("done".into()),
        ..JobChanges::default()
    };
    assert_eq!(change(&recurring.id, done), (400, "Invalid status.".into()));
}

#[test]
fn resuming_a_recurring_job_recomputes_its_next_time_from_now() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let new = NewJob {
        pattern: Some("0 * * * *".into()),
        ..new_job(&fid)
    };
    let job = create_at(&db, &caller(), new, T0).unwrap();
    let status = |s: &str| JobChanges {
        status: Some(s.into()),
        ..JobChanges::default()
    };
    update_at(&db, &caller(), &job.id, &status("paused"), T0).unwrap();
    let later = at("2030-01-01T05:10:00Z");
    let resumed = update_at(&db, &caller(), &job.id, &status("running"), later).unwrap();
    assert_eq!(resumed.next_execution_time, at("2030-01-01T06:00:00Z"));
}

#[test]
fn resuming_a_one_shot_job_past_its_time_is_refused() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let new = NewJob {
        first_execution_time: Some(T0 + 120),
        ..new_job(&fid)
    };
    let job = create_at(&db, &caller(), new, T0).unwrap();
    let status = |s: &str| JobChanges {
        status: Some(s.into()),
        ..JobChanges::default()
    };
    update_at(&db, &caller(), &job.id, &status("paused"), T0).unwrap();
    assert_eq!(
        message(update_at(
            &db,
            &caller(),
            &job.id,
            &status("running"),
            T0 + 61
        ))
        .1,
        "Execution time must be at least 1 minute in the future."
    );
    update_at(&db, &caller(), &job.id, &status("running"), T0 + 60).unwrap();
}

#[test]
fn running_jobs_keep_their_function_and_finished_ones_do_not() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let new = NewJob {
        first_execution_time: Some(T0 + 60),
        ..new_job(&fid)
    };
    let job = create_at(&db, &caller(), new, T0).unwrap();
    assert_eq!(
        message(functions::delete(&db, &NoCache, &caller(), fid.as_str())),
        (
            403,
            "The function is still associated with running job(s).".into()
        )
    );
    let cancel = JobChanges {
        status: Some("cancelled".into()),
        ..JobChanges::default()
    };
    update_at(&db, &caller(), &job.id, &cancel, T0).unwrap();
    functions::delete(&db, &NoCache, &caller(), fid.as_str()).unwrap();
}

#[test]
fn the_scheduler_lease_has_one_holder_at_a_time() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    assert!(
        !take_lease(&db, "a", T0).unwrap(),
        "no running job: no loop"
    );
    let new = NewJob {
        pattern: Some("* * * * *".into()),
        ..new_job(&fid)
    };
    create_at(&db, &caller(), new, T0).unwrap();
    assert!(take_lease(&db, "a", T0).unwrap());
    assert!(!take_lease(&db, "b", T0 + 1).unwrap());
    assert!(renew_lease(&db, "a", T0 + 10).unwrap());
    assert!(!renew_lease(&db, "b", T0 + 10).unwrap());
    assert!(hand_over_lease(&db, "a", "c", T0 + 11).unwrap());
    assert!(!renew_lease(&db, "a", T0 + 12).unwrap());
    // A holder that stops renewing loses the lease to the next taker.
    assert!(take_lease(&db, "d", T0 + 11 + LEASE_SECONDS).unwrap());
    assert!(!renew_lease(&db, "c", T0 + 12 + LEASE_SECONDS).unwrap());
}

#[test]
fn the_look_a_write_makes_with_its_schema_check_wants_the_loop_as_taking_the_lease_does() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let wanted = |now| {
        let rows = migrate_looking(&db, LEASE_LOOK, &lease_look_params())
            .unwrap()
            .expect("the schema is current");
        loop_wanted(&rows.first().unwrap(), now)
    };
    assert!(!wanted(T0), "no running job: no loop");
    let new = NewJob {
        pattern: Some("* * * * *".into()),
        ..new_job(&fid)
    };
    create_at(&db, &caller(), new, T0).unwrap();
    assert!(wanted(T0));
    assert!(take_lease(&db, "a", T0).unwrap());
    assert!(!wanted(T0 + 1), "a live loop holds the lease");
    assert!(wanted(T0 + LEASE_SECONDS), "its lease ran out");
}

#[test]
fn only_the_holder_of_a_live_lease_holds_it() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let new = NewJob {
        pattern: Some("* * * * *".into()),
        ..new_job(&fid)
    };
    create_at(&db, &caller(), new, T0).unwrap();
    assert!(!holds_lease(&db, "a", T0).unwrap(), "never taken");
    assert!(take_lease(&db, "a", T0).unwrap());
    assert!(holds_lease(&db, "a", T0 + 1).unwrap());
    assert!(!holds_lease(&db, "stranger", T0 + 1).unwrap());
    assert!(
        !holds_lease(&db, "a", T0 + LEASE_SECONDS).unwrap(),
        "expired"
    );
}

#[test]
fn the_lease_is_given_up_only_while_no_job_runs() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let new = NewJob {
        pattern: Some("* * * * *".into()),
        ..new_job(&fid)
    };
    let job = create_at(&db, &caller(), new, T0).unwrap();
    assert!(take_lease(&db, "a", T0).unwrap());
    // A job is running: the loop keeps its lease (and goes on ticking).
    assert!(!release_lease_if_idle(&db, "a").unwrap());
    assert!(holds_lease(&db, "a", T0 + 1).unwrap());
    let pause = JobChanges {
        status: Some("paused".into()),
        ..JobChanges::default()
    };
    update_at(&db, &caller(), &job.id, &pause, T0).unwrap();
    assert!(!release_lease_if_idle(&db, "b").unwrap(), "not b's lease");
    assert!(release_lease_if_idle(&db, "a").unwrap());
    assert!(!holds_lease(&db, "a", T0 + 1).unwrap());
}

/// A database on which another request creates a running job, and then looks at the lease as
/// every request that opened the database does (`scheduler::kick`, here `take_lease` as
/// `kicked`), just before statement number `before` of whatever runs on it.
struct JobCreatedBefore<'a> {
    db: &'a TestDb,
    fid: &'a FunctionId,
    before: usize,
    statements: std::cell::Cell<usize>,
}

impl JobCreatedBefore<'_> {
    fn create_job_and_kick(&self) {
        let new = NewJob {
            pattern: Some("* * * * *".into()),
            ..new_job(self.fid)
        };
        create_at(self.db, &caller(), new, T0 + 1).unwrap();
        take_lease(self.db, "kicked", T0 + 1).unwrap();
    }
}

impl Database for JobCreatedBefore<'_> {
    fn execute(
        &self,
        sql: &str,
        params: &[crate::store::db::Value],
    ) -> Result<crate::store::db::Rows, crate::store::db::DbError> {
        let n = self.statements.replace(self.statements.get() + 1);
        if n == self.before {
            self.create_job_and_kick();
        }
        self.db.execute(sql, params)
    }
}

/// Issue 22 item 6: the loop gives its lease up when no job runs, and a job create whose
/// request found the lease held starts no loop. Were the release a look at the jobs and then a
/// write, a job created between the two would have no loop until some later request. Every
/// point another request's job create can come at (before the release's first statement,
/// between any two, after its last) leaves a loop holding the lease: this one, or the one the
/// create's request started.
#[test]
fn a_job_created_whenever_the_loop_gives_up_its_lease_always_has_a_loop() {
    for before in 0.. {
        let db = TestDb::in_memory();
        let fid = setup(&db);
        // A loop holds the lease; its last job is paused: it is about to go idle.
        let last = NewJob {
            pattern: Some("* * * * *".into()),
            ..new_job(&fid)
        };
        let last = create_at(&db, &caller(), last, T0).unwrap();
        assert!(take_lease(&db, "loop", T0).unwrap());
        let pause = JobChanges {
            status: Some("paused".into()),
            ..JobChanges::default()
        };
        update_at(&db, &caller(), &last.id, &pause, T0).unwrap();
        let racing = JobCreatedBefore {
            db: &db,
            fid: &fid,
            before,
            statements: Default::default(),
        };
        let released = release_lease_if_idle(&racing, "loop").unwrap();
        let ran = racing.statements.get();
        if before >= ran {
            // After the release's last statement.
            racing.create_job_and_kick();
        }
        let holder = match (
            holds_lease(&db, "loop", T0 + 1).unwrap(),
            holds_lease(&db, "kicked", T0 + 1).unwrap(),
        ) {
            (true, false) => "loop",
            (false, true) => "kicked",
            held => panic!(
                "a job created before statement {before} of the release's {ran} is running \
                 with (this loop, a kicked loop) holding the lease: {held:?}"
            ),
        };
        assert_eq!(released, holder == "kicked", "before statement {before}");
        if before >= ran {
            break;
        }
    }
}

#[test]
fn an_update_to_a_pattern_that_never_matches_is_refused_as_on_create() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let never = "0 0 30 2 *";
    let created = create_at(
        &db,
        &caller(),
        NewJob {
            pattern: Some(never.into()),
            ..new_job(&fid)
        },
        T0,
    );
    let refused = (400, format!("The specified pattern is not valid: {never}"));
    assert_eq!(message(created), refused);
    let new = NewJob {
        pattern: Some("* * * * *".into()),
        ..new_job(&fid)
    };
    let job = create_at(&db, &caller(), new, T0).unwrap();
    let changes = JobChanges {
        pattern: Some(never.into()),
        ..JobChanges::default()
    };
    assert_eq!(
        message(update_at(&db, &caller(), &job.id, &changes, T0)),
        refused
    );
    let paused = JobChanges {
        status: Some("paused".into()),
        ..JobChanges::default()
    };
    update_at(&db, &caller(), &job.id, &paused, T0).unwrap();
    let resumed = JobChanges {
        status: Some("running".into()),
        ..changes
    };
    assert_eq!(
        message(update_at(&db, &caller(), &job.id, &resumed, T0)),
        refused
    );
    assert_eq!(
        find(&db, &caller(), &job.id).unwrap().pattern.as_deref(),
        Some("* * * * *")
    );
}
