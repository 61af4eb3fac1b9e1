// What the console knows of the built-in kinds' payloads (PROTOCOL.md,
// "Built-in job kinds"); other kinds start from `{}`.

export interface KindInfo {
  about: string;
  payload: unknown;
}

export const BUILT_IN: Record<string, KindInfo> = {
  sleep: {
    about: 'Reports `steps` progress events evenly over `ms`, then completes; fails its first `fail_attempts` attempts (retryably).',
    payload: { ms: 5000, steps: 10, fail_attempts: 0 },
  },
  stream: {
    about: 'Emits job.chunk events that join to `text` (streamed output), then completes with the number of characters.',
    payload: { text: 'Relay streams this text to the page, chunk by chunk, as a model would.', chunk_chars: 8, interval_ms: 60 },
  },
  reconcile: {
    about: 'Matches two uploaded CSV files by key and compares columns; counts and samples in the result, the full lists as artifacts.',
    payload: { left: { upload_id: '' }, right: { upload_id: '' }, left_key: 'ID', right_key: 'REF', compare: [['AMOUNT', 'MONTANT']] },
  },
};

export const template = (kind: string): string => JSON.stringify(BUILT_IN[kind]?.payload ?? {}, null, 2);
