/**
 * What the agent ships: one window of one target process, as pprof, with its labels. The
 * sampling side (agent.ts) makes them; the queue (queue.ts) keeps them on disk until every
 * destination (pyroscope.ts, parca.ts, the local store) has taken them.
 */

/** one window of one process's samples, ready to send */
export interface AgentWindow {
  /** unique and sortable: `${fromMs}-${pid}-${type}` zero-padded (the queue's file name) */
  id: string;
  /** the service name (`--service`, else the program's name) */
  service: string;
  /** what the samples count: `cpu` (on-CPU samples) or `wall` (every thread, running or not) */
  type: 'cpu' | 'wall';
  /** the window, wall clock, ms since the epoch */
  fromMs: number;
  untilMs: number;
  /** samples per second the sampler aimed at */
  sampleRateHz: number;
  /**
   * labels, Prometheus-style names (`[a-zA-Z_][a-zA-Z0-9_]*`): service_name, host, pid,
   * python, process, and container / pod / systemd_unit / cgroup where known, the user's
   * `--label k=v`, pylens_quality (good | degraded)
   */
  labels: Record<string, string>;
  /** gzipped pprof (profile.proto): sample types `samples/count` and `cpu|wall/nanoseconds` */
  pprof: Uint8Array;
  /** the window's quality, for /metrics and the local store: samples, errors, truncated stacks, sampler CPU ns spent on this process */
  quality: { samples: number; errors: number; truncated: number; samplerCpuNs: number };
}

/** a failed send: `retry` when the backend may take it later (5xx, 429, connection refused, timeout) */
export class SendError extends Error {
  readonly retry: boolean;
  readonly status: number | undefined;
  constructor(message: string, retry: boolean, status?: number) {
    super(message);
    this.name = 'SendError';
    this.retry = retry;
    this.status = status;
  }
}

/** a backend that takes windows */
export interface Destination {
  /** for logs and /metrics: `pyroscope`, `parca`, `store` */
  readonly name: string;
  /** send one window; throws SendError (retry or not) */
  send(w: AgentWindow, signal?: AbortSignal): Promise<void>;
  close?(): Promise<void> | void;
}
