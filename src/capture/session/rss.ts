/**
 * Resident memory over a recording (`pylens diagnose --mem`): every `intervalS` the RSS
 * (VmRSS of /proc/PID/status) of a process — and of its descendants, for a worker pool —
 * summed, with the time. A process gone meanwhile counts 0 from then on; the series ends
 * with `stop()`.
 */
import { readFileSync } from 'node:fs';
import { descendants } from '../sampler/sampler.ts';
import { Companion } from './session.ts';

export interface RssSeries {
  /** seconds since the first reading */
  times: number[];
  /** bytes */
  bytes: number[];
  /** the processes read at least once */
  pids: number[];
}

/** VmRSS of `pid` in bytes, or undefined when it is gone or has no memory (a zombie) */
export function readRss(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export class RssPoller {
  private readonly times: number[] = [];
  private readonly bytes: number[] = [];
  /** the processes read at least once, in the order first read */
  private readonly seen = new Set<number>();
  private readonly t0 = performance.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly pid: number;
  private readonly opts: { intervalS?: number; children?: boolean };

  constructor(pid: number, opts: { intervalS?: number; children?: boolean } = {}) {
    this.pid = pid;
    this.opts = opts;
    this.poll();
    this.timer = setInterval(() => this.poll(), (opts.intervalS ?? 0.5) * 1000);
    this.timer.unref();
  }

  private poll(): void {
    const pids = [this.pid, ...(this.opts.children ? descendants(this.pid) : [])];
    let sum = 0;
    let any = false;
    for (const p of pids) {
      const r = readRss(p);
      if (r === undefined) continue;
      any = true;
      sum += r;
      this.seen.add(p);
    }
    if (!any) return;
    this.times.push((performance.now() - this.t0) / 1000);
    this.bytes.push(sum);
  }

  /** stop polling (one last reading first) and return the series */
  stop(): RssSeries {
    if (this.timer) {
      this.poll();
      clearInterval(this.timer);
      this.timer = undefined;
    }
    return { times: this.times, bytes: this.bytes, pids: [...this.seen] };
  }
}

/**
 * The poller as a session companion: started on the recorded process when it is attached
 * (or released from the gate), stopped with the recording; never ends it.
 */
export function rssCompanion(opts: { intervalS?: number; children?: boolean } = {}): Companion<RssSeries> {
  return new Companion<RssSeries>(
    'RSS poller',
    async ({ pid }) => {
      const poller = new RssPoller(pid!, opts);
      return { stop: async () => poller.stop() };
    },
    { endsRecording: false },
  );
}
