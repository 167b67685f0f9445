import type { Database } from "better-sqlite3";

/**
 * The queue's schema as a list of steps: step i takes `user_version` from i to
 * i + 1. Steps are only ever appended, never edited, so every existing file can
 * be brought forward. v1 creates everything.
 */
export const MIGRATIONS: readonly string[] = [
  `
  -- Small persisted settings (the queue-wide pause).
  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) STRICT;

  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    name TEXT,
    spec TEXT NOT NULL,
    seeds TEXT NOT NULL,
    priority INTEGER NOT NULL,
    position INTEGER NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    image_count INTEGER NOT NULL,
    last_error TEXT,
    -- Per-state image counts, kept by the images_count_state trigger so progress
    -- and job state cost one row read, even for a job of 100,000 images.
    n_queued INTEGER NOT NULL,
    n_running INTEGER NOT NULL DEFAULT 0,
    n_done INTEGER NOT NULL DEFAULT 0,
    n_failed INTEGER NOT NULL DEFAULT 0,
    n_cancelled INTEGER NOT NULL DEFAULT 0,
    -- Derived, never written: one definition of a job's state for every reader.
    -- Unfinished work wins over pause; a finished job is failed if any image failed.
    state TEXT GENERATED ALWAYS AS (CASE
      WHEN cancelled = 1 THEN 'cancelled'
      WHEN n_queued + n_running > 0 THEN CASE
        WHEN paused = 1 THEN 'paused'
        WHEN n_running + n_done + n_failed > 0 THEN 'running'
        ELSE 'queued' END
      WHEN n_failed > 0 THEN 'failed'
      WHEN n_done > 0 THEN 'done'
      ELSE 'cancelled' END) VIRTUAL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
  ) STRICT;
  CREATE INDEX jobs_runnable ON jobs (priority DESC, position) WHERE state IN ('queued', 'running');
  CREATE INDEX jobs_position ON jobs (position);

  -- Prompts and negative prompts, once per job: 100,000 images of one long
  -- negative prompt must not store it 100,000 times.
  CREATE TABLE texts (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    body TEXT NOT NULL
  ) STRICT;

  CREATE TABLE images (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    idx INTEGER NOT NULL,
    prompt_id INTEGER NOT NULL REFERENCES texts (id),
    negative_id INTEGER NOT NULL REFERENCES texts (id),
    seed INTEGER NOT NULL,
    model TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    guidance REAL NOT NULL,
    sampler TEXT,
    grid_x INTEGER,
    grid_y INTEGER,
    state TEXT NOT NULL DEFAULT 'queued'
      CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    error_code TEXT,
    error_message TEXT,
    UNIQUE (job_id, idx)
  ) STRICT;
  -- Only queued images: the scheduler's hot read walks this in job then index order.
  CREATE INDEX images_queued ON images (job_id, idx) WHERE state = 'queued';
  -- Small while a job runs; they spare cancel and retry a walk over every image of the job.
  CREATE INDEX images_running ON images (job_id) WHERE state = 'running';
  CREATE INDEX images_failed ON images (job_id) WHERE state = 'failed';

  CREATE TRIGGER images_count_state AFTER UPDATE OF state ON images
  WHEN old.state <> new.state
  BEGIN
    UPDATE jobs SET
      n_queued = n_queued + (new.state = 'queued') - (old.state = 'queued'),
      n_running = n_running + (new.state = 'running') - (old.state = 'running'),
      n_done = n_done + (new.state = 'done') - (old.state = 'done'),
      n_failed = n_failed + (new.state = 'failed') - (old.state = 'failed'),
      n_cancelled = n_cancelled + (new.state = 'cancelled') - (old.state = 'cancelled')
    WHERE id = new.job_id;
  END;

  -- One attempt = one image sent to one device in one task. Only an active
  -- attempt may complete its image: this is the fencing record.
  CREATE TABLE attempts (
    id TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images (id),
    task_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    device TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active'
      CHECK (state IN ('active', 'done', 'failed', 'lost', 'cancelled', 'superseded', 'discarded')),
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    error_code TEXT,
    error_message TEXT,
    retriable INTEGER,
    -- Why a lost, cancelled, superseded or discarded attempt ended, for people.
    note TEXT,
    -- 1 for a failure that counts toward failing the image; retryFailed clears it.
    counts_as_failure INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  CREATE INDEX attempts_image ON attempts (image_id);
  CREATE INDEX attempts_task ON attempts (task_id);
  CREATE INDEX attempts_active_node ON attempts (node_id) WHERE state = 'active';

  -- The primary key on image_id is the exactly-once guarantee at the lowest level.
  CREATE TABLE results (
    image_id TEXT PRIMARY KEY REFERENCES images (id),
    attempt_id TEXT NOT NULL UNIQUE REFERENCES attempts (id),
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    device TEXT NOT NULL,
    timings TEXT NOT NULL,
    stored_at INTEGER NOT NULL
  ) STRICT;

  -- Tokens are secrets and live in their own file, never here.
  CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    paired INTEGER NOT NULL,
    drained INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE node_models (
    node_id TEXT NOT NULL,
    model TEXT NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    blocklisted_at INTEGER,
    PRIMARY KEY (node_id, model)
  ) STRICT;

  -- AUTOINCREMENT: trimming old events never lets a sequence number come back,
  -- so a reader can resume after the last one it saw.
  CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
  ) STRICT;
  `,
  `
  -- v2, img2img: a job's init image (shared/img2img.ts InitImageRef as JSON:
  -- sha256, strength, resize mode), null for text-to-image. Read with every
  -- queued image, and images of different init images never share a task.
  ALTER TABLE jobs ADD COLUMN init TEXT;
  `,
  `
  -- v3, hires fix: a job's second pass (shared/hires-fix.ts HiresFix as JSON:
  -- scale, strength, steps, upscaler), null without one. Read with every queued
  -- image, which resolves its own pass (size and steps) from it.
  ALTER TABLE jobs ADD COLUMN hires TEXT;
  `,
  `
  -- v4: a job's spec and drawn seeds in a table of their own. Both can be
  -- large (a file of prompts; one seed per image of a random-seed job, 1 MB for
  -- 100,000 images), and in the jobs row every image's change of state, whose
  -- count trigger rewrites that row, read and wrote them again: starting an
  -- image of a 100,000-image random-seed job cost 3.5 times as much.
  CREATE TABLE job_specs (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id),
    spec TEXT NOT NULL,
    seeds TEXT NOT NULL
  ) STRICT;
  INSERT INTO job_specs (job_id, spec, seeds) SELECT id, spec, seeds FROM jobs;
  ALTER TABLE jobs DROP COLUMN spec;
  ALTER TABLE jobs DROP COLUMN seeds;
  `,
  `
  -- v5: the unfinished jobs, in the order they run, without a walk over every
  -- job ever finished: the queue list a UI is sent after every stored image
  -- read all 100,000 rows of a long-lived studio's queue file to find a few.
  CREATE INDEX jobs_unfinished ON jobs (priority DESC, position) WHERE state IN ('queued', 'running', 'paused');
  `,
];

/** Brings the file's schema to the newest version, one transaction per step. */
export function migrate(db: Database, file: string): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `${file} has queue schema v${current}, but this Kiln knows up to v${MIGRATIONS.length}: ` +
        "it was written by a newer Kiln. Upgrade Kiln, or start it with another queue file.",
    );
  }
  MIGRATIONS.forEach((step, i) => {
    if (i < current) return;
    // Under the write lock, the version is read again: another process (the app and a `kiln` run starting on one
    // old file) may have taken this step since the read above.
    db.transaction(() => {
      if ((db.pragma("user_version", { simple: true }) as number) > i) return;
      db.exec(step);
      db.pragma(`user_version = ${i + 1}`);
    }).immediate();
  });
}
