/**
 * The delivery loop: one lane per destination takes the queue's windows oldest first and
 * sends them. A lane whose backend is down retries the same window (so windows arrive in
 * order once it is back) after an exponential backoff with jitter (1 s, 2 s, 4 s … 60 s,
 * each × 0.5–1), and sleeps through new windows meanwhile: a dead backend costs one
 * request per backoff step, never a busy loop. Lanes are independent: one backend down
 * does not hold the others. A window refused for good (a 4xx, INVALID_ARGUMENT) is logged
 * with the backend's reason and given up for that destination.
 *
 * `flush(ms)` is for SIGTERM: every lane tries what is queued once more, backoff or not,
 * within the time given, then the sender stops; what is still queued stays on disk for
 * the next start.
 */
import { SendError, type AgentWindow, type Destination } from './window.ts';
import type { WindowQueue } from './queue.ts';

export interface SenderOptions {
  /** the first retry's delay, default 1 s */
  baseDelayMs?: number;
  /** the longest delay, default 60 s */
  maxDelayMs?: number;
  /** for tests: the jitter's random source (0 ≤ r < 1) */
  random?: () => number;
  /** one line per event worth a log: a backend down, back, or refusing a window */
  log?: (line: string) => void;
}

export interface LaneStats {
  /** send calls made */
  attempts: number;
  /** attempts that failed and will be tried again */
  retries: number;
  /** failures in a row now (0 = the backend is taking windows) */
  consecutiveFailures: number;
  /** when the next try is due while backing off (ms since the epoch), else 0 */
  backoffUntilMs: number;
  lastError: string;
}

interface Lane {
  dest: Destination;
  stats: LaneStats;
  /** resolves the idle wait (a window arrived) */
  wakeIdle: (() => void) | null;
  /** resolves the backoff sleep (stop or flush) */
  wakeSleep: (() => void) | null;
  done: Promise<void> | null;
  /** working: between its wake-up and its next idle wait, backoff sleep or end */
  active: boolean;
}

export class Sender {
  private readonly queue: WindowQueue;
  private readonly lanes: Lane[];
  private readonly base: number;
  private readonly max: number;
  private readonly random: () => number;
  private readonly log: (line: string) => void;
  private running = false;
  private stopping = false;
  /** set by flush: lanes try each window once more, no backoff, and end when they cannot */
  private flushUntil = 0;
  private abort = new AbortController();

  constructor(queue: WindowQueue, destinations: readonly Destination[], opts: SenderOptions = {}) {
    this.queue = queue;
    const names = new Set<string>();
    for (const d of destinations) {
      if (names.has(d.name)) throw new Error(`sender: two destinations named ${d.name}`);
      names.add(d.name);
    }
    this.lanes = destinations.map((dest) => ({ dest, stats: { attempts: 0, retries: 0, consecutiveFailures: 0, backoffUntilMs: 0, lastError: '' }, wakeIdle: null, wakeSleep: null, done: null, active: false }));
    this.base = opts.baseDelayMs ?? 1000;
    this.max = opts.maxDelayMs ?? 60_000;
    this.random = opts.random ?? Math.random;
    this.log = opts.log ?? (() => {});
    queue.onPut(() => {
      for (const l of this.lanes) l.wakeIdle?.();
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = false;
    this.abort = new AbortController();
    for (const l of this.lanes) l.done = this.run(l);
  }

  /** the delay before retry number `n` (1-based): base·2^(n-1), capped, × (0.5 + 0.5·random) */
  delay(n: number): number {
    const d = Math.min(this.max, this.base * 2 ** Math.min(30, n - 1));
    return Math.round(d * (0.5 + 0.5 * this.random()));
  }

  /**
   * Is a lane working now (reading the queue, sending)? Its I/O needs many event-loop turns:
   * the agent's sampling loop then waits on timers instead of sleeping in clock_nanosleep.
   */
  get busy(): boolean {
    for (const l of this.lanes) if (l.active) return true;
    return false;
  }

  private async run(l: Lane): Promise<void> {
    l.active = true;
    try {
      await this.runLane(l);
    } finally {
      l.active = false;
    }
  }

  private async runLane(l: Lane): Promise<void> {
    const name = l.dest.name;
    while (!this.stopping) {
      const id = await this.queue.next(name);
      if (this.stopping) break;
      if (id === undefined) {
        if (this.flushUntil) break;
        l.active = false;
        await new Promise<void>((r) => (l.wakeIdle = r));
        l.active = true;
        l.wakeIdle = null;
        continue;
      }
      if (this.flushUntil && Date.now() >= this.flushUntil) break;
      const w = await this.queue.load(id);
      if (!w) continue;
      const startedInFlush = this.flushUntil !== 0;
      const outcome = await this.attempt(l, w);
      if (outcome !== 'retry') continue;
      if (this.flushUntil) {
        // flushing: a backend that fails now is down; what it missed waits on disk
        if (startedInFlush) break;
        continue;
      }
      if (this.stopping) break;
      const ms = this.delay(l.stats.consecutiveFailures);
      l.stats.backoffUntilMs = Date.now() + ms;
      l.active = false;
      await new Promise<void>((r) => {
        const t = setTimeout(r, ms);
        l.wakeSleep = () => {
          clearTimeout(t);
          r();
        };
      });
      l.active = true;
      l.wakeSleep = null;
      l.stats.backoffUntilMs = 0;
    }
  }

  /** one send; the queue learns the outcome unless it is worth a retry */
  private async attempt(l: Lane, w: AgentWindow): Promise<'sent' | 'failed' | 'retry'> {
    const name = l.dest.name;
    l.stats.attempts++;
    try {
      await l.dest.send(w, this.abort.signal);
    } catch (e) {
      const err = e instanceof SendError ? e : new SendError(`${name}: ${(e as Error)?.message ?? String(e)}`, true);
      l.stats.lastError = err.message;
      const why = err.message.startsWith(name) ? err.message.slice(name.length).replace(/^:?\s*/, '') : err.message;
      if (!err.retry) {
        this.log(`${name}: window ${w.id} refused, not sent again: ${why}`);
        await this.queue.settle(w.id, name, 'failed');
        return 'failed';
      }
      l.stats.retries++;
      l.stats.consecutiveFailures++;
      // the backend is down or slow: what waits in memory (write-behind) goes to disk now,
      // and windows cut meanwhile at once
      this.queue.setWriteThrough(true);
      const n = l.stats.consecutiveFailures;
      if (n === 1 || n % 10 === 0) this.log(`${name}: ${why}; ${n === 1 ? 'retrying with backoff' : `${n} failures in a row`}, ${this.queue.pending(name).length} window(s) waiting`);
      return 'retry';
    }
    if (l.stats.consecutiveFailures > 0) {
      this.log(`${name}: back after ${l.stats.consecutiveFailures} failed attempt(s)`);
      l.stats.consecutiveFailures = 0;
      if (this.lanes.every((o) => o.stats.consecutiveFailures === 0)) this.queue.setWriteThrough(false);
    }
    await this.queue.settle(w.id, name, 'sent');
    return 'sent';
  }

  /**
   * SIGTERM: try every queued window once more on every destination (no backoff) within
   * `deadlineMs` from now, then stop and close the destinations. Resolves with the windows
   * still queued.
   */
  async flush(deadlineMs: number): Promise<number> {
    this.flushUntil = Date.now() + Math.max(0, deadlineMs);
    if (!this.running) this.start();
    const timer = setTimeout(() => this.abort.abort(), Math.max(0, deadlineMs));
    for (const l of this.lanes) {
      l.wakeSleep?.();
      l.wakeIdle?.();
    }
    await Promise.all(this.lanes.map((l) => l.done));
    clearTimeout(timer);
    await this.stop();
    return this.queue.size;
  }

  /** stop the lanes (an in-flight send is cancelled) and close the destinations */
  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    for (const l of this.lanes) {
      l.wakeSleep?.();
      l.wakeIdle?.();
    }
    await Promise.all(this.lanes.map((l) => l.done));
    this.running = false;
    this.flushUntil = 0;
    for (const l of this.lanes) await l.dest.close?.();
  }

  stats(): Record<string, LaneStats> {
    return Object.fromEntries(this.lanes.map((l) => [l.dest.name, { ...l.stats }]));
  }
}
