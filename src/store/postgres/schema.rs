//! The PostgreSQL schema and its migrations. `switchyard_schema.version` counts the migrations
//! applied; they run once, by whichever process opens the database first, under a session
//! advisory lock that every other opener waits for.

use tokio_postgres::Client;

/// The advisory lock key the migrations run under (any fixed number no other lock uses: the
/// transaction locks of the backend are hashes, in a space this one is practically never in).
const MIGRATION_LOCK: i64 = 0x5357_4954_4348_0001; // "SWITCH" + 1

/// Migration N brings the schema from version N to N + 1.
pub const MIGRATIONS: &[&str] = &[
    // 1: the tables of the SQLite store (same names, same meaning), the leases of several
    // replicas, and the intake as functions, so that one change is one round trip.
    r#"
CREATE FUNCTION switchyard_now() RETURNS BIGINT LANGUAGE sql VOLATILE AS
  $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;

CREATE TABLE changes (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id TEXT COLLATE "C" NOT NULL UNIQUE,
  repository TEXT NOT NULL,
  event TEXT NOT NULL,
  received_ms BIGINT NOT NULL,
  source TEXT NOT NULL,
  provider TEXT,
  delivery_id TEXT,
  pending_paths BOOLEAN NOT NULL DEFAULT false,
  push_ref TEXT,
  push_before TEXT,
  push_after TEXT
);
CREATE INDEX changes_pending ON changes (seq) WHERE pending_paths;
CREATE INDEX changes_by_ref ON changes (repository, push_ref, seq DESC)
  INCLUDE (push_after, push_before, id) WHERE push_ref IS NOT NULL;

CREATE TABLE sightings (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  change_id TEXT COLLATE "C" NOT NULL,
  source TEXT NOT NULL,
  provider TEXT,
  delivery_id TEXT,
  first_seen_ms BIGINT NOT NULL,
  UNIQUE (change_id, source)
);

CREATE TABLE starts (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id TEXT COLLATE "C" NOT NULL UNIQUE,
  change_id TEXT COLLATE "C" NOT NULL REFERENCES changes (id),
  pipeline TEXT NOT NULL,
  git_ref TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'failed', 'succeeded', 'dead', 'superseded', 'dropped')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms BIGINT NOT NULL,
  last_error TEXT,
  created_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  -- The replica whose attempt is running, and until when (its clock: the database's) it holds
  -- the start unless it renews the lease.
  owner TEXT,
  lease_until_ms BIGINT,
  UNIQUE (change_id, pipeline)
);
CREATE INDEX starts_open ON starts (pipeline, seq) WHERE state IN ('pending', 'running', 'failed');
CREATE INDEX starts_ref ON starts (pipeline, git_ref) WHERE state IN ('pending', 'failed');
CREATE INDEX starts_running ON starts (pipeline) WHERE state = 'running';

CREATE TABLE deliveries (
  receiver TEXT NOT NULL,
  delivery_id TEXT NOT NULL,
  seen_ms BIGINT NOT NULL,
  PRIMARY KEY (receiver, delivery_id)
);
CREATE INDEX deliveries_age ON deliveries (seen_ms);

CREATE TABLE cursors (
  repository TEXT NOT NULL,
  git_ref TEXT NOT NULL,
  sha TEXT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (repository, git_ref)
);

-- Which replica polls a repository, until when (the database's clock).
CREATE TABLE poll_leases (
  repository TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  until_ms BIGINT NOT NULL
);

-- The replicas that are alive: each renews its row while it runs.
CREATE TABLE replicas (
  id TEXT PRIMARY KEY,
  seen_ms BIGINT NOT NULL
);

-- Another source's first sighting of a change.
CREATE FUNCTION switchyard_sighting(p_change TEXT, p_source TEXT, p_provider TEXT,
                                    p_delivery_id TEXT, p_seen BIGINT) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO sightings (change_id, source, provider, delivery_id, first_seen_ms)
  SELECT p_change, p_source, p_provider, p_delivery_id, p_seen
  WHERE NOT EXISTS (SELECT 1 FROM changes WHERE id = p_change AND source = p_source)
  ON CONFLICT (change_id, source) DO NOTHING
$$;

-- A change's starts, superseding older waiting ones of the same pipeline and ref where asked.
CREATE FUNCTION switchyard_starts(p_change TEXT, p_ref TEXT, p_ids TEXT[], p_pipelines TEXT[],
                                  p_supersede BOOLEAN[], p_now BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  i INTEGER;
BEGIN
  FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
    INSERT INTO starts (id, change_id, pipeline, git_ref, state, attempts, next_attempt_ms, created_ms, updated_ms)
    VALUES (p_ids[i], p_change, p_pipelines[i], p_ref, 'pending', 0, p_now, p_now, p_now)
    ON CONFLICT DO NOTHING;
    IF p_supersede[i] THEN
      UPDATE starts SET state = 'superseded', updated_ms = p_now
      WHERE pipeline = p_pipelines[i] AND git_ref = p_ref AND state IN ('pending', 'failed')
        AND id <> p_ids[i];
    END IF;
  END LOOP;
END
$$;

-- One intake: the replay window, the ref-state rule, the change, its starts. The caller holds
-- the transaction locks of the change id, the delivery, the ref and the superseded refs.
-- outcome: 'accepted', 'delivery' (a delivery id seen before) or 'change' (change_id is the
-- stored change it is).
CREATE FUNCTION switchyard_intake(
  p_receiver TEXT, p_delivery TEXT, p_id TEXT, p_repository TEXT, p_event TEXT,
  p_received_ms BIGINT, p_source TEXT, p_provider TEXT, p_delivery_id TEXT, p_defer BOOLEAN,
  p_push_ref TEXT, p_push_before TEXT, p_push_after TEXT, p_git_ref TEXT,
  p_ids TEXT[], p_pipelines TEXT[], p_supersede BOOLEAN[], p_now BIGINT,
  OUT outcome TEXT, OUT change_id TEXT)
LANGUAGE plpgsql AS $$
DECLARE
  existing TEXT;
  existing_after TEXT;
BEGIN
  change_id := p_id;
  IF p_receiver IS NOT NULL THEN
    INSERT INTO deliveries (receiver, delivery_id, seen_ms) VALUES (p_receiver, p_delivery, p_now)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      outcome := 'delivery';
      RETURN;
    END IF;
  END IF;
  IF p_push_ref IS NOT NULL THEN
    SELECT c.id, c.push_after INTO existing, existing_after FROM changes c
    WHERE c.repository = p_repository AND c.push_ref = p_push_ref
    ORDER BY c.seq DESC LIMIT 1;
    IF FOUND AND existing_after = p_push_after AND existing <> p_id THEN
      PERFORM switchyard_sighting(existing, p_source, p_provider, p_delivery_id, p_received_ms);
      outcome := 'change';
      change_id := existing;
      RETURN;
    END IF;
  END IF;
  INSERT INTO changes (id, repository, event, received_ms, source, provider, delivery_id,
                       pending_paths, push_ref, push_before, push_after)
  VALUES (p_id, p_repository, p_event, p_received_ms, p_source, p_provider, p_delivery_id,
          p_defer, p_push_ref, p_push_before, p_push_after)
  ON CONFLICT (id) DO NOTHING;
  IF NOT FOUND THEN
    PERFORM switchyard_sighting(p_id, p_source, p_provider, p_delivery_id, p_received_ms);
    outcome := 'change';
    RETURN;
  END IF;
  IF NOT p_defer THEN
    PERFORM switchyard_starts(p_id, p_git_ref, p_ids, p_pipelines, p_supersede, p_now);
  END IF;
  outcome := 'accepted';
END
$$;

-- A deferred change's completed event and its starts; false when it was not waiting.
CREATE FUNCTION switchyard_plan(p_id TEXT, p_event TEXT, p_ref TEXT, p_ids TEXT[],
                                p_pipelines TEXT[], p_supersede BOOLEAN[], p_now BIGINT)
RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
  UPDATE changes SET event = p_event, pending_paths = false WHERE id = p_id AND pending_paths;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM switchyard_starts(p_id, p_ref, p_ids, p_pipelines, p_supersede, p_now);
  RETURN true;
END
$$;
"#,
    // 2: the run a start made (the runner's id or URL), recorded with its success.
    "ALTER TABLE starts ADD COLUMN run TEXT;",
    // 3: the decision log (each watching pipeline's verdict and reason, JSON, in the change's
    // row), the traceparent a change came with, the marks pruning goes by, and replays: a
    // (change, pipeline) may have one start per replay. The intake and plan functions gain
    // overloads with the new columns (the intake's is migration 1's with two more columns);
    // the old ones stay for replicas not yet upgraded.
    r#"
ALTER TABLE changes ADD COLUMN decisions TEXT, ADD COLUMN traceparent TEXT;
CREATE TABLE prune_marks (at_ms BIGINT NOT NULL, seq BIGINT NOT NULL);
ALTER TABLE starts ADD COLUMN replay INTEGER NOT NULL DEFAULT 0;
ALTER TABLE starts DROP CONSTRAINT starts_change_id_pipeline_key;
ALTER TABLE starts ADD CONSTRAINT starts_change_id_pipeline_replay_key UNIQUE (change_id, pipeline, replay);

CREATE FUNCTION switchyard_intake(
  p_receiver TEXT, p_delivery TEXT, p_id TEXT, p_repository TEXT, p_event TEXT,
  p_received_ms BIGINT, p_source TEXT, p_provider TEXT, p_delivery_id TEXT, p_defer BOOLEAN,
  p_push_ref TEXT, p_push_before TEXT, p_push_after TEXT, p_git_ref TEXT,
  p_ids TEXT[], p_pipelines TEXT[], p_supersede BOOLEAN[], p_now BIGINT,
  p_decisions TEXT, p_traceparent TEXT,
  OUT outcome TEXT, OUT change_id TEXT)
LANGUAGE plpgsql AS $$
DECLARE
  existing TEXT;
  existing_after TEXT;
BEGIN
  change_id := p_id;
  IF p_receiver IS NOT NULL THEN
    INSERT INTO deliveries (receiver, delivery_id, seen_ms) VALUES (p_receiver, p_delivery, p_now)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      outcome := 'delivery';
      RETURN;
    END IF;
  END IF;
  IF p_push_ref IS NOT NULL THEN
    SELECT c.id, c.push_after INTO existing, existing_after FROM changes c
    WHERE c.repository = p_repository AND c.push_ref = p_push_ref
    ORDER BY c.seq DESC LIMIT 1;
    IF FOUND AND existing_after = p_push_after AND existing <> p_id THEN
      PERFORM switchyard_sighting(existing, p_source, p_provider, p_delivery_id, p_received_ms);
      outcome := 'change';
      change_id := existing;
      RETURN;
    END IF;
  END IF;
  INSERT INTO changes (id, repository, event, received_ms, source, provider, delivery_id,
                       pending_paths, push_ref, push_before, push_after, decisions, traceparent)
  VALUES (p_id, p_repository, p_event, p_received_ms, p_source, p_provider, p_delivery_id,
          p_defer, p_push_ref, p_push_before, p_push_after, p_decisions, p_traceparent)
  ON CONFLICT (id) DO NOTHING;
  IF NOT FOUND THEN
    PERFORM switchyard_sighting(p_id, p_source, p_provider, p_delivery_id, p_received_ms);
    outcome := 'change';
    RETURN;
  END IF;
  IF NOT p_defer THEN
    PERFORM switchyard_starts(p_id, p_git_ref, p_ids, p_pipelines, p_supersede, p_now);
  END IF;
  outcome := 'accepted';
END
$$;

-- The intake of replicas not yet upgraded: the same function, with no decisions or traceparent
-- (so that the intake's logic lives in one function from here on).
CREATE OR REPLACE FUNCTION switchyard_intake(
  p_receiver TEXT, p_delivery TEXT, p_id TEXT, p_repository TEXT, p_event TEXT,
  p_received_ms BIGINT, p_source TEXT, p_provider TEXT, p_delivery_id TEXT, p_defer BOOLEAN,
  p_push_ref TEXT, p_push_before TEXT, p_push_after TEXT, p_git_ref TEXT,
  p_ids TEXT[], p_pipelines TEXT[], p_supersede BOOLEAN[], p_now BIGINT,
  OUT outcome TEXT, OUT change_id TEXT)
LANGUAGE sql AS $$
  SELECT * FROM switchyard_intake(p_receiver, p_delivery, p_id, p_repository, p_event,
    p_received_ms, p_source, p_provider, p_delivery_id, p_defer, p_push_ref, p_push_before,
    p_push_after, p_git_ref, p_ids, p_pipelines, p_supersede, p_now, NULL::TEXT, NULL::TEXT)
$$;

CREATE FUNCTION switchyard_plan(p_id TEXT, p_event TEXT, p_ref TEXT, p_ids TEXT[],
                                p_pipelines TEXT[], p_supersede BOOLEAN[], p_now BIGINT,
                                p_decisions TEXT)
RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
  IF switchyard_plan(p_id, p_event, p_ref, p_ids, p_pipelines, p_supersede, p_now) THEN
    UPDATE changes SET decisions = p_decisions WHERE id = p_id;
    RETURN true;
  END IF;
  RETURN false;
END
$$;
"#,
    // 4: the status page's operator sessions, shared by the replicas (a digest of each id; a
    // logout removes its row, for every replica at once).
    r#"
CREATE TABLE sessions (
  id_hash TEXT PRIMARY KEY,
  token_mac TEXT NOT NULL,
  expires_ms BIGINT NOT NULL
);
"#,
    // 5: a start that becomes pending (made, or reopened) tells every replica listening on
    // `switchyard_starts`, so that their dispatchers need not look on a timer (the server sends
    // one notification per transaction, however many starts it made).
    r#"
CREATE FUNCTION switchyard_notify_starts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('switchyard_starts', '');
  RETURN NULL;
END
$$;
CREATE TRIGGER starts_pending AFTER INSERT OR UPDATE OF state ON starts
  FOR EACH ROW WHEN (NEW.state = 'pending') EXECUTE FUNCTION switchyard_notify_starts();
"#,
];

/// Brings the database to the newest schema under the migration lock, refusing one written by
/// a newer switchyard.
pub async fn migrate(client: &Client) -> Result<(), String> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| format!("cannot take the migration lock: {}", super::message(&e)))?;
    let result = migrate_locked(client).await;
    // A failed unlock leaves the lock to the end of the session, which closes on error.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn migrate_locked(client: &Client) -> Result<(), String> {
    let fail = |e: tokio_postgres::Error| super::message(&e);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS switchyard_schema (version INTEGER NOT NULL);
             INSERT INTO switchyard_schema (version)
             SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM switchyard_schema);",
        )
        .await
        .map_err(fail)?;
    let version: i32 = client
        .query_one("SELECT version FROM switchyard_schema", &[])
        .await
        .map_err(fail)?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if version > known {
        return Err(format!(
            "the database has schema version {version}, newer than this switchyard knows ({known}): upgrade switchyard"
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let next = (i + 1) as i32;
        let script =
            format!("BEGIN;\n{sql}\nUPDATE switchyard_schema SET version = {next};\nCOMMIT;");
        if let Err(e) = client.batch_execute(&script).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(format!("migration {next}: {}", fail(e)));
        }
    }
    Ok(())
}
