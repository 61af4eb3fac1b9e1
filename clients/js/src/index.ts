export { RelayClient } from './core.js';
export type {
  ConnectionState,
  PublishResult,
  RelayClientOptions,
  StateChange,
  StorageLike,
  SubscribeOptions,
  Subscription,
  TransportKind,
} from './core.js';
export { JobWatch, Jobs } from './jobs.js';
export type { JobLog, JobView, UploadOptions } from './jobs.js';
export { RelayError, backoff, cmpId, decodeCursor, encodeCursor } from './util.js';
export type { BackoffOptions } from './util.js';
export type { WebSocketConstructor, WebSocketLike } from './ws.js';
export type * from './types.js';
