/** Wire types of the Relay contract (v1.1), as the client sees them. */

/** One event, on every transport. */
export interface RelayEvent<D = any> {
  topic: string;
  /** Position in the topic: strictly increasing within it; what `since` takes. */
  id: string;
  type: string;
  data: D;
  /** Milliseconds since the Unix epoch, set when the event was accepted. */
  ts: number;
}

/** A topic's position: the last event id the client has, and the epoch it belongs to. */
export interface Position {
  id: string;
  /** One life of the topic's history; empty when unknown. */
  epoch: string;
}

export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

export interface JobProgress {
  percent: number;
  step?: string;
  message?: string;
  processed?: number;
  total?: number;
  eta_ms?: number;
  [field: string]: unknown;
}

export interface JobArtifact {
  name: string;
  bytes: number;
  sha256: string;
  content_type: string;
}

export interface JobRecord {
  id: string;
  kind: string;
  state: JobState;
  owner: string;
  payload: unknown;
  progress: JobProgress | null;
  attempts: number;
  max_attempts: number;
  result: unknown;
  error: string | null;
  /** The latest attempt's joined `job.chunk` texts (servers from v1.1). */
  output?: string;
  artifacts?: JobArtifact[];
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/** `POST /v1/jobs` options, as on the wire. */
export interface SubmitOptions {
  priority?: number;
  max_attempts?: number;
  timeout_ms?: number;
  delay_ms?: number;
  /** The same key from the same owner returns the first job instead of a new one. */
  idempotency_key?: string;
  /** The user the job belongs to (API key or admin token only). */
  owner?: string;
}

export interface Accepted {
  id: string;
  state: JobState;
  topic: string;
  events_url: string;
  poll_url: string;
}

export interface JobList {
  jobs: JobRecord[];
  next_cursor: string | null;
}

export interface Uploaded {
  upload_id: string;
  bytes: number;
  sha256: string;
}
