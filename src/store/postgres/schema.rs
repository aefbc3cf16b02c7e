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
    // 6: a group commit's intakes in one call. `switchyard_intake_batch` takes the batch's
    // changes as arrays (one element per change, in order; the planned starts flattened, each
    // with the position of its change in `p_start_of`) and answers their outcomes in the same
    // order, as the single intake would have one after the other. When no change of the batch
    // can be decided by another of it (no change id or ref state twice, and no ref whose
    // stored state is one of the batch's), each table is written by one statement: the
    // deliveries (a delivery id seen before, or earlier in the batch, is a replay), then the
    // changes (a stored change id is a duplicate), the sightings of the duplicates, the starts.
    // Otherwise the changes go one by one through migration 3's `switchyard_intake`, which
    // stays, as migration 1's does, for replicas not yet upgraded. Starts of which one
    // supersedes others go one by one too, since a start supersedes only those made before it.
    //
    // Indexes dropped, each served by `starts_open (pipeline, seq) WHERE state IN ('pending',
    // 'running', 'failed')`, whose rows a pipeline has few of (its queue):
    // - `starts_running`: counted the running starts of a pipeline when claiming;
    // - `starts_ref`: found the waiting starts of a pipeline and ref that a new start
    //   supersedes (a pipeline that supersedes keeps at most one waiting start a ref).
    // Both were written whenever a start became (or stopped being) running or waiting.
    r#"
CREATE FUNCTION switchyard_intake_batch(
  p_receiver TEXT[], p_delivery TEXT[], p_id TEXT[], p_repository TEXT[], p_event TEXT[],
  p_received_ms BIGINT[], p_source TEXT[], p_provider TEXT[], p_delivery_id TEXT[],
  p_defer BOOLEAN[], p_push_ref TEXT[], p_push_before TEXT[], p_push_after TEXT[],
  p_git_ref TEXT[], p_decisions TEXT[], p_traceparent TEXT[],
  p_start_of INTEGER[], p_start_ids TEXT[], p_start_pipelines TEXT[],
  p_start_supersede BOOLEAN[], p_now BIGINT,
  OUT outcomes TEXT[], OUT change_ids TEXT[])
LANGUAGE plpgsql AS $$
DECLARE
  n INTEGER := coalesce(array_length(p_id, 1), 0);
  m INTEGER := coalesce(array_length(p_start_ids, 1), 0);
  replayed BOOLEAN[];
  one RECORD;
  k INTEGER := 1;
  lo INTEGER;
BEGIN
  outcomes := '{}';
  change_ids := p_id;
  IF n = 0 THEN
    RETURN;
  END IF;
  -- One by one when a change id is twice in the batch, or a ref has a state twice, or its
  -- stored state is one of the batch's.
  IF EXISTS (SELECT 1 FROM unnest(p_id) AS b(id) GROUP BY b.id HAVING count(*) > 1)
     OR EXISTS (SELECT 1
                FROM (SELECT b.r, b.f, array_agg(b.a) AS afters,
                             count(*) <> count(DISTINCT b.a) AS twice
                      FROM unnest(p_repository, p_push_ref, p_push_after) AS b(r, f, a)
                      WHERE b.f IS NOT NULL GROUP BY b.r, b.f) g
                WHERE g.twice
                   OR (SELECT c.push_after FROM changes c
                       WHERE c.repository = g.r AND c.push_ref = g.f
                       ORDER BY c.seq DESC LIMIT 1) = ANY (g.afters)) THEN
    change_ids := '{}';
    FOR i IN 1 .. n LOOP
      lo := k;
      WHILE k <= m AND p_start_of[k] = i LOOP
        k := k + 1;
      END LOOP;
      SELECT o.outcome, o.change_id INTO one FROM switchyard_intake(
        p_receiver[i], p_delivery[i], p_id[i], p_repository[i], p_event[i], p_received_ms[i],
        p_source[i], p_provider[i], p_delivery_id[i], p_defer[i], p_push_ref[i],
        p_push_before[i], p_push_after[i], p_git_ref[i], p_start_ids[lo:k - 1],
        p_start_pipelines[lo:k - 1], p_start_supersede[lo:k - 1], p_now, p_decisions[i],
        p_traceparent[i]) o;
      outcomes := outcomes || one.outcome;
      change_ids := change_ids || one.change_id;
    END LOOP;
    RETURN;
  END IF;

  WITH b AS (
    SELECT b.r, b.d, b.i, row_number() OVER (PARTITION BY b.r, b.d ORDER BY b.i) AS nth
    FROM unnest(p_receiver, p_delivery) WITH ORDINALITY AS b(r, d, i)
  ), fresh AS (
    INSERT INTO deliveries (receiver, delivery_id, seen_ms)
    SELECT b.r, b.d, p_now FROM b WHERE b.r IS NOT NULL AND b.nth = 1 ORDER BY b.i
    ON CONFLICT DO NOTHING
    RETURNING receiver, delivery_id
  )
  SELECT array_agg(b.r IS NOT NULL AND (b.nth > 1 OR f.receiver IS NULL) ORDER BY b.i)
  INTO replayed
  FROM b LEFT JOIN fresh f ON f.receiver = b.r AND f.delivery_id = b.d;

  WITH fresh AS (
    INSERT INTO changes (id, repository, event, received_ms, source, provider, delivery_id,
                         pending_paths, push_ref, push_before, push_after, decisions, traceparent)
    SELECT u.id, u.repository, u.event, u.received_ms, u.source, u.provider, u.delivery_id,
           u.pend, u.push_ref, u.push_before, u.push_after, u.decisions, u.traceparent
    FROM unnest(p_id, p_repository, p_event, p_received_ms, p_source, p_provider,
                p_delivery_id, p_defer, p_push_ref, p_push_before, p_push_after, p_decisions,
                p_traceparent, replayed)
         WITH ORDINALITY AS u(id, repository, event, received_ms, source, provider, delivery_id,
                              pend, push_ref, push_before, push_after, decisions, traceparent,
                              replayed, i)
    WHERE NOT u.replayed
    ORDER BY u.i
    ON CONFLICT (id) DO NOTHING
    RETURNING id
  )
  SELECT array_agg(CASE WHEN u.replayed THEN 'delivery' WHEN f.id IS NULL THEN 'change'
                        ELSE 'accepted' END ORDER BY u.i)
  INTO outcomes
  FROM unnest(p_id, replayed) WITH ORDINALITY AS u(id, replayed, i)
  LEFT JOIN fresh f ON f.id = u.id;

  IF 'change' = ANY (outcomes) THEN
    INSERT INTO sightings (change_id, source, provider, delivery_id, first_seen_ms)
    SELECT u.id, u.source, u.provider, u.delivery_id, u.received_ms
    FROM unnest(p_id, outcomes, p_source, p_provider, p_delivery_id, p_received_ms)
         WITH ORDINALITY AS u(id, outcome, source, provider, delivery_id, received_ms, i)
    WHERE u.outcome = 'change'
      AND NOT EXISTS (SELECT 1 FROM changes c WHERE c.id = u.id AND c.source = u.source)
    ORDER BY u.i
    ON CONFLICT (change_id, source) DO NOTHING;
  END IF;

  IF m = 0 THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM unnest(p_start_of, p_start_supersede) AS s(o, sup)
             WHERE s.sup AND outcomes[s.o] = 'accepted' AND NOT p_defer[s.o]) THEN
    FOR j IN 1 .. m LOOP
      CONTINUE WHEN outcomes[p_start_of[j]] <> 'accepted' OR p_defer[p_start_of[j]];
      INSERT INTO starts (id, change_id, pipeline, git_ref, state, attempts, next_attempt_ms,
                          created_ms, updated_ms)
      VALUES (p_start_ids[j], p_id[p_start_of[j]], p_start_pipelines[j],
              p_git_ref[p_start_of[j]], 'pending', 0, p_now, p_now, p_now)
      ON CONFLICT DO NOTHING;
      IF p_start_supersede[j] THEN
        UPDATE starts SET state = 'superseded', updated_ms = p_now
        WHERE pipeline = p_start_pipelines[j] AND git_ref = p_git_ref[p_start_of[j]]
          AND state IN ('pending', 'failed') AND id <> p_start_ids[j];
      END IF;
    END LOOP;
  ELSE
    INSERT INTO starts (id, change_id, pipeline, git_ref, state, attempts, next_attempt_ms,
                        created_ms, updated_ms)
    SELECT s.id, c.id, s.pipeline, c.git_ref, 'pending', 0, p_now, p_now, p_now
    FROM unnest(p_start_of, p_start_ids, p_start_pipelines) WITH ORDINALITY AS s(o, id, pipeline, k)
    JOIN unnest(p_id, p_git_ref, outcomes, p_defer) WITH ORDINALITY AS c(id, git_ref, outcome, pend, o)
      ON c.o = s.o
    WHERE c.outcome = 'accepted' AND NOT c.pend
    ORDER BY s.k
    ON CONFLICT DO NOTHING;
  END IF;
END
$$;

DROP INDEX starts_running;
DROP INDEX starts_ref;
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
