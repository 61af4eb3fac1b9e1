-- Job records: PostgreSQL is the source of truth for every job.
CREATE TABLE jobs (
    id                  text        PRIMARY KEY,
    kind                text        NOT NULL,
    owner               text        NOT NULL,
    state               text        NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    payload             jsonb       NOT NULL,
    priority            integer     NOT NULL DEFAULT 0,
    max_attempts        integer     NOT NULL,
    timeout_ms          bigint      NOT NULL,
    delay_ms            bigint      NOT NULL DEFAULT 0,
    idempotency_key     text,
    attempts            integer     NOT NULL DEFAULT 0,
    progress            jsonb,
    result              jsonb,
    error               text,
    -- The lease token of the attempt that owns the job while it runs: a
    -- terminal write of an attempt that lost its lease matches no row.
    lease_token         text,
    worker              text,
    -- Set once the job is in the Redis queue; the sweeper enqueues the rest.
    enqueued            boolean     NOT NULL DEFAULT false,
    cancel_requested_at timestamptz,
    -- In the dead-letter list (failed, not yet re-driven).
    dead                boolean     NOT NULL DEFAULT false,
    redriven_from       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One job per (owner, idempotency key).
CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Listing, newest first: a user's jobs, everyone's (admins), by state.
CREATE INDEX jobs_owner_created ON jobs (owner, created_at DESC, id DESC);
CREATE INDEX jobs_owner_state_created ON jobs (owner, state, created_at DESC, id DESC);
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_state_created ON jobs (state, created_at DESC, id DESC);
-- The sweeps: recorded but not enqueued; live jobs checked against Redis.
CREATE INDEX jobs_not_enqueued ON jobs (created_at) WHERE state = 'queued' AND NOT enqueued;
CREATE INDEX jobs_live_updated ON jobs (updated_at, id) WHERE state IN ('queued', 'running');
-- The dead-letter list.
CREATE INDEX jobs_dead ON jobs (finished_at DESC, id DESC) WHERE dead;

-- Uploaded files, stored as 1 MiB chunks so any gateway and any worker, on
-- any host, can write and stream them without a shared file system.
CREATE TABLE uploads (
    id           text        PRIMARY KEY,
    owner        text        NOT NULL,
    filename     text,
    content_type text,
    bytes        bigint      NOT NULL DEFAULT 0,
    sha256       text,
    complete     boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_incomplete ON uploads (created_at) WHERE NOT complete;

CREATE TABLE upload_chunks (
    upload_id text    NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    seq       integer NOT NULL,
    data      bytea   NOT NULL,
    PRIMARY KEY (upload_id, seq)
);
