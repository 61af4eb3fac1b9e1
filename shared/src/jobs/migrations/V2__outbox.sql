-- The terminal event of a job, written in the same statement as its
-- terminal state, so an end recorded is an end announced: the process that
-- wrote the end publishes the event right after its commit and deletes the
-- row; if it dies (or loses Redis) first, a sweep on any gateway or worker
-- publishes it once the row's claim has lapsed. The event itself is built
-- from the job's record (state, result, error, attempts).
CREATE TABLE job_outbox (
    job_id        text        PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Until then the row belongs to whoever wrote or last claimed it.
    claimed_until timestamptz NOT NULL,
    -- Publishes tried by sweeps (0 while only its writer tried).
    sweeps        integer     NOT NULL DEFAULT 0
);
CREATE INDEX job_outbox_claimed ON job_outbox (claimed_until);

-- The reason given to cancel a running job: its worker ends the job with it.
ALTER TABLE jobs ADD COLUMN cancel_reason text;
