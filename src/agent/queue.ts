/**
 * The agent's on-disk queue: every window waits here until each destination has taken it
 * (or refused it for good), so a backend outage or an agent restart loses nothing, within
 * bounds (`maxBytes`, `maxAgeMs`: past them the oldest windows go, counted).
 *
 * One file per window, `<id>.win`:
 *   8 bytes  magic `PYLQWIN1`
 *   4 bytes  header length H, little-endian
 *   H bytes  header, JSON: the window without its pprof, plus `pprofBytes` and `crc32` (of the pprof)
 *   …        the pprof bytes
 * written to `.tmp-…`, fsync'd, renamed into place and the directory fsync'd (once for a
 * burst of puts, after its last rename): a kill leaves either the whole file or a temp file.
 * The windows this process put are also kept in memory until they go, so sending one does
 * not read its file back. At open, temp files and `.win` files that fail the
 * check (magic, header, length, CRC) are removed and counted as `dropped.corrupt`.
 *
 * Write-behind (`writeBehindMs`, what the agent uses): a put keeps the window in memory
 * only, and its file is written when it is still waiting `writeBehindMs` later, when
 * a destination fails (`setWriteThrough`: then every put is written at once until all take
 * windows again), when over 32 MiB wait in memory, or at `close()`.
 * A backend that takes windows at once then costs no file I/O at all (it was ~15 % of the
 * agent's JS time: open, write, fsync, close, rename, unlink for every window); a kill -9
 * loses at most the windows of the last `writeBehindMs` not yet delivered.
 *
 * Delivery state: an empty marker file `<id>.win~<destination>` when that destination took
 * the window or refused it for good; the window and its markers go when every destination
 * has one. Markers are not fsync'd: a crash can lose one, and that window is then sent
 * again to that destination (at least once, never lost).
 */
import { crc32 } from 'node:zlib';
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentWindow } from './window.ts';

/** windows the queue keeps in memory besides their files (queue.ts inMemory) */
const MEMORY_WINDOWS = 64;

/** write-behind: past this many bytes of windows in memory only, they are all written at once */
const WRITE_BEHIND_BYTES = 32 << 20;

export interface QueueOptions {
  /** the names of the destinations every window waits for */
  destinations: readonly string[];
  /** the most the queue's files may take; past it the oldest windows are dropped */
  maxBytes: number;
  /** windows that ended longer ago than this are dropped */
  maxAgeMs: number;
  /** the clock (ms since the epoch); tests move it */
  now?: () => number;
  /**
   * write-behind: a window's file is written only when it is still waiting this long after
   * its put (or at `persist()` / `close()`). Undefined: written at put, durable when `put`
   * resolves.
   */
  writeBehindMs?: number;
}

export interface QueueStats {
  /** gauges: windows waiting, and their files' bytes */
  queuedWindows: number;
  queuedBytes: number;
  /** per destination: windows taken, and windows refused for good */
  sent: Record<string, number>;
  failed: Record<string, number>;
  /** windows dropped before every destination had them */
  dropped: { full: number; age: number; corrupt: number };
}

interface Entry {
  id: string;
  file: string;
  bytes: number;
  fromMs: number;
  untilMs: number;
  /** destinations that have it (taken or refused for good) */
  done: Set<string>;
  gone: boolean;
  /** its file is written (false: in memory only, write-behind) */
  onDisk: boolean;
  /** write-behind: when it was put (performance.now) */
  putAt: number;
  /** its file is being written */
  writing: boolean;
}

const MAGIC = new TextEncoder().encode('PYLQWIN1');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** a name safe in a file name */
function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_');
}

function queueFileHeader(w: AgentWindow): Uint8Array {
  const { pprof, ...rest } = w;
  return new TextEncoder().encode(JSON.stringify({ ...rest, pprofBytes: pprof.length, crc32: crc32(pprof) }));
}

/** the bytes of the window's queue file */
function queueFileSize(w: AgentWindow): number {
  return 12 + queueFileHeader(w).length + w.pprof.length;
}

/** the window as a queue file */
export function encodeQueueFile(w: AgentWindow): Uint8Array {
  const { pprof } = w;
  const header = queueFileHeader(w);
  const out = new Uint8Array(12 + header.length + pprof.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(8, header.length, true);
  out.set(header, 12);
  out.set(pprof, 12 + header.length);
  return out;
}

/** a queue file back into its window; null when it is not whole */
export function decodeQueueFile(b: Uint8Array): AgentWindow | null {
  if (b.length < 12) return null;
  for (let i = 0; i < 8; i++) if (b[i] !== MAGIC[i]) return null;
  const hlen = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(8, true);
  if (12 + hlen > b.length) return null;
  let h: Omit<AgentWindow, 'pprof'> & { pprofBytes: number; crc32: number };
  try {
    h = JSON.parse(utf8.decode(b.subarray(12, 12 + hlen)));
  } catch {
    return null;
  }
  if (!h || typeof h !== 'object' || typeof h.id !== 'string' || typeof h.fromMs !== 'number' || typeof h.untilMs !== 'number') return null;
  if (12 + hlen + h.pprofBytes !== b.length) return null;
  // a plain Uint8Array view, also when read into a Buffer
  const pprof = new Uint8Array(b.buffer, b.byteOffset + 12 + hlen, h.pprofBytes);
  if (crc32(pprof) !== h.crc32) return null;
  const { pprofBytes: _n, crc32: _c, ...rest } = h;
  return { ...rest, pprof };
}

export class WindowQueue {
  readonly dir: string;
  private readonly opts: QueueOptions;
  private readonly now: () => number;
  private readonly destinations: readonly string[];
  /** oldest first: by fromMs, then id */
  private entries: Entry[] = [];
  private byId = new Map<string, Entry>();
  private bytes = 0;
  private readonly counts = { sent: {} as Record<string, number>, failed: {} as Record<string, number>, dropped: { full: 0, age: 0, corrupt: 0 } };
  private listeners: Array<() => void> = [];
  private tmpSeq = 0;
  /**
   * the windows put by this process, as they were put (the last MEMORY_WINDOWS): the sender
   * takes them from here instead of reading their files back. A queue opened on files an
   * earlier process left reads those from disk (and checks them).
   */
  private inMemory = new Map<string, AgentWindow>();
  /** puts made and not yet ended */
  private putsPending = 0;

  private constructor(dir: string, opts: QueueOptions) {
    this.dir = dir;
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.destinations = [...new Set(opts.destinations)];
    if (this.destinations.length === 0) throw new Error('queue: no destinations');
    for (const d of this.destinations) {
      this.counts.sent[d] = 0;
      this.counts.failed[d] = 0;
    }
  }

  /** open (or create) the queue in `dir`: what an earlier run left is kept, damaged files removed and counted */
  static async open(dir: string, opts: QueueOptions): Promise<WindowQueue> {
    const q = new WindowQueue(dir, opts);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await q.scan();
    return q;
  }

  private async scan(): Promise<void> {
    const names = await readdir(this.dir);
    const markers: string[] = [];
    for (const name of names) {
      const path = join(this.dir, name);
      if (name.startsWith('.tmp-')) {
        this.counts.dropped.corrupt++;
        await unlink(path).catch(() => {});
      } else if (name.endsWith('.win')) {
        let w: AgentWindow | null = null;
        let size = 0;
        try {
          const b = await readFile(path);
          size = b.length;
          w = decodeQueueFile(b);
        } catch {
          w = null;
        }
        if (!w || this.byId.has(w.id) || `${safe(w.id)}.win` !== name) {
          this.counts.dropped.corrupt++;
          await unlink(path).catch(() => {});
          continue;
        }
        this.insert({ id: w.id, file: name, bytes: size, fromMs: w.fromMs, untilMs: w.untilMs, done: new Set(), gone: false, onDisk: true, putAt: 0, writing: false });
      } else if (name.includes('.win~')) markers.push(name);
    }
    const byFile = new Map(this.entries.map((e) => [e.file, e]));
    for (const m of markers) {
      const i = m.indexOf('.win~');
      const e = byFile.get(m.slice(0, i + 4));
      const dest = this.destinations.find((d) => safe(d) === m.slice(i + 5));
      if (e && dest) e.done.add(dest);
      else if (!e) await unlink(join(this.dir, m)).catch(() => {});
    }
    for (const e of [...this.entries]) if (this.destinations.every((d) => e.done.has(d))) await this.remove(e);
    await this.expire();
    await this.enforceBytes();
  }

  private insert(e: Entry): void {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = this.entries[mid]!;
      if (m.fromMs < e.fromMs || (m.fromMs === e.fromMs && m.id < e.id)) lo = mid + 1;
      else hi = mid;
    }
    this.entries.splice(lo, 0, e);
    this.byId.set(e.id, e);
    this.bytes += e.bytes;
  }

  /** take the entry out of the index and delete its files */
  private async remove(e: Entry): Promise<void> {
    if (e.gone) return;
    e.gone = true;
    const i = this.entries.indexOf(e);
    if (i >= 0) this.entries.splice(i, 1);
    if (this.byId.get(e.id) === e) {
      this.byId.delete(e.id);
      this.inMemory.delete(e.id);
    }
    this.bytes -= e.bytes;
    if (!e.onDisk && !e.writing) this.unwritten -= e.bytes;
    // in memory only: nothing on disk (a write under way sees `gone` and undoes itself)
    if (e.onDisk) await this.unlinkFiles(e);
  }

  private async unlinkFiles(e: Entry): Promise<void> {
    await unlink(join(this.dir, e.file)).catch(() => {});
    for (const d of e.done) await unlink(join(this.dir, `${e.file}~${safe(d)}`)).catch(() => {});
  }

  /** drop windows that ended more than maxAgeMs ago; how many */
  async expire(): Promise<number> {
    const limit = this.now() - this.opts.maxAgeMs;
    const old = this.entries.filter((e) => e.untilMs < limit);
    for (const e of old) {
      this.counts.dropped.age++;
      await this.remove(e);
    }
    return old.length;
  }

  /** drop the oldest windows (never `keep`, the one just put) until the files fit maxBytes */
  private async enforceBytes(keep?: Entry): Promise<void> {
    while (this.bytes > this.opts.maxBytes) {
      const victim = this.entries.find((e) => e !== keep);
      if (!victim) break;
      this.counts.dropped.full++;
      await this.remove(victim);
    }
  }

  /** the puts in progress, one after another (each waits for the one before) */
  private putChain: Promise<void> = Promise.resolve();

  /**
   * Keep a window until every destination has it; durable when this resolves. Puts run one
   * after another in the order they are made: a window is never in the queue before one cut
   * earlier (a sender draining the queue would send them out of order).
   */
  put(w: AgentWindow): Promise<void> {
    this.putsPending++;
    const p = this.putChain.then(() => this.putNow(w)).finally(() => this.putsPending--);
    this.putChain = p.catch(() => {});
    return p;
  }

  /** resolves once every put made so far has ended (written, or failed) */
  settled(): Promise<void> {
    return this.putChain;
  }

  private async putNow(w: AgentWindow): Promise<void> {
    if (this.opts.writeBehindMs !== undefined) return this.putInMemory(w);
    const bytes = encodeQueueFile(w);
    if (bytes.length > this.opts.maxBytes) {
      this.counts.dropped.full++;
      return;
    }
    const file = `${safe(w.id)}.win`;
    const tmp = this.tmpPath(file);
    await this.writeDurably(tmp, bytes);
    const old = this.byId.get(w.id);
    if (old) await this.remove(old);
    await rename(tmp, join(this.dir, file));
    // one directory fsync for a burst of puts (a window cut gives one per target): the last
    // put of the burst syncs every rename before it
    if (this.putsPending <= 1) await this.syncDir();
    await this.enter({ id: w.id, file, bytes: bytes.length, fromMs: w.fromMs, untilMs: w.untilMs, done: new Set(), gone: false, onDisk: true, putAt: 0, writing: false }, w);
  }

  /** a put's window into the index and memory, the oldest dropped past maxBytes, the sender woken */
  private async enter(e: Entry, w: AgentWindow): Promise<void> {
    this.insert(e);
    if (!e.onDisk) this.unwritten += e.bytes;
    this.remember(w);
    await this.enforceBytes(e);
    for (const l of this.listeners) l();
  }

  /** a temp file's path beside `file`, unique in this process */
  private tmpPath(file: string): string {
    return join(this.dir, `.tmp-${process.pid}-${++this.tmpSeq}-${file}`);
  }

  private async writeDurably(path: string, bytes: Uint8Array): Promise<void> {
    const fh = await open(path, 'w', 0o600);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** keep the window in memory; past MEMORY_WINDOWS, forget the oldest whose file is written */
  private remember(w: AgentWindow): void {
    this.inMemory.set(w.id, w);
    if (this.inMemory.size <= MEMORY_WINDOWS) return;
    for (const id of this.inMemory.keys()) {
      const e = this.byId.get(id);
      if (e === undefined || e.onDisk) {
        this.inMemory.delete(id);
        return;
      }
    }
  }

  /** write-behind put: in memory now, on disk when still waiting `writeBehindMs` on */
  private async putInMemory(w: AgentWindow): Promise<void> {
    const bytes = queueFileSize(w);
    if (bytes > this.opts.maxBytes) {
      this.counts.dropped.full++;
      return;
    }
    const old = this.byId.get(w.id);
    if (old) await this.remove(old);
    await this.enter({ id: w.id, file: `${safe(w.id)}.win`, bytes, fromMs: w.fromMs, untilMs: w.untilMs, done: new Set(), gone: false, onDisk: false, putAt: performance.now(), writing: false }, w);
    // a destination failing (the sender says so): written now, durable when the put resolves
    if (this.writeThrough) await this.persist();
    // more waiting in memory than it keeps: all written now
    else if (this.unwritten > WRITE_BEHIND_BYTES) void this.persist();
    else this.armWriteBehind();
  }

  /** write-behind suspended: every put is written at once (the sender: while a destination fails) */
  private writeThrough = false;

  /**
   * The sender's word on its destinations: while one is failing (`on`), puts are written at
   * once and what waits in memory is written now; when all take windows again, write-behind
   * resumes.
   */
  setWriteThrough(on: boolean): void {
    if (on === this.writeThrough) return;
    this.writeThrough = on;
    if (on) void this.persist();
  }

  /** forget what waits in memory, write nothing more: what a kill leaves (benches, tests) */
  drop(): void {
    this.closed = true;
    clearTimeout(this.writeBehindTimer);
    this.writeBehindTimer = undefined;
    this.dropped = true;
  }
  private dropped = false;

  /** bytes of the windows in memory only (write-behind), not counting those being written */
  private unwritten = 0;
  private writeBehindTimer: NodeJS.Timeout | undefined;
  private persisting: Promise<void> | undefined;
  private closed = false;

  private armWriteBehind(): void {
    if (this.writeBehindTimer !== undefined || this.closed) return;
    const first = this.entries.find((e) => !e.onDisk && !e.writing && !e.gone);
    if (first === undefined) return;
    const wait = Math.max(0, first.putAt + this.opts.writeBehindMs! - performance.now());
    this.writeBehindTimer = setTimeout(() => {
      this.writeBehindTimer = undefined;
      void this.persist(performance.now() - this.opts.writeBehindMs! + 1).then(() => this.armWriteBehind());
    }, wait);
    this.writeBehindTimer.unref();
  }

  /**
   * Write the files of the windows waiting in memory only (write-behind), with their
   * delivery markers; only those put before `putBefore` (performance.now) when given.
   * Resolves when they are durable. Nothing to do without write-behind.
   */
  persist(putBefore = Infinity): Promise<void> {
    const run = async (): Promise<void> => {
      let wrote = 0;
      for (const e of [...this.entries]) {
        if (this.dropped) return;
        if (e.onDisk || e.writing || e.gone || e.putAt >= putBefore) continue;
        const w = this.inMemory.get(e.id);
        if (w === undefined) continue;
        e.writing = true;
        this.unwritten -= e.bytes;
        try {
          const tmp = this.tmpPath(e.file);
          await this.writeDurably(tmp, encodeQueueFile(w));
          if (e.gone) {
            await unlink(tmp).catch(() => {});
            continue;
          }
          await rename(tmp, join(this.dir, e.file));
          e.onDisk = true;
          wrote++;
          // destinations done with it while it waited in memory
          for (const d of [...e.done]) await this.mark(e, d);
          if (e.gone) await this.unlinkFiles(e);
        } catch {
          // the disk refused: it stays in memory, and is tried again at the next persist
          if (!e.gone) this.unwritten += e.bytes;
        } finally {
          e.writing = false;
        }
      }
      if (wrote > 0) await this.syncDir();
    };
    // one persist at a time, each after the one before
    const p = (this.persisting ?? Promise.resolve()).then(run);
    this.persisting = p;
    return p;
  }

  /** write-behind: write what waits in memory, and stop the timer (the agent's end) */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.writeBehindTimer);
    this.writeBehindTimer = undefined;
    await this.settled();
    await this.persist();
  }

  private async mark(e: Entry, dest: string): Promise<void> {
    const fh = await open(join(this.dir, `${e.file}~${safe(dest)}`), 'w', 0o600).catch(() => null);
    await fh?.close();
  }

  private async syncDir(): Promise<void> {
    try {
      const d = await open(this.dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch {
      // some filesystems cannot fsync a directory; the rename itself is still atomic
    }
  }

  /** the id of the oldest window `dest` has not had yet, after dropping the too-old ones */
  async next(dest: string): Promise<string | undefined> {
    await this.expire();
    for (const e of this.entries) if (!e.done.has(dest)) return e.id;
    return undefined;
  }

  /** windows `dest` has not had yet, oldest first */
  pending(dest: string): string[] {
    return this.entries.filter((e) => !e.done.has(dest)).map((e) => e.id);
  }

  /** the window, read back from its file; undefined when it went meanwhile or is damaged (then dropped, counted) */
  async load(id: string): Promise<AgentWindow | undefined> {
    const e = this.byId.get(id);
    if (!e) return undefined;
    const kept = this.inMemory.get(id);
    if (kept !== undefined && !e.gone) return kept;
    let w: AgentWindow | null = null;
    try {
      w = decodeQueueFile(await readFile(join(this.dir, e.file)));
    } catch {
      w = null;
    }
    if (e.gone) return undefined;
    if (!w) {
      this.counts.dropped.corrupt++;
      await this.remove(e);
      return undefined;
    }
    return w;
  }

  /** `dest` took the window (`sent`) or refused it for good (`failed`); the window goes once every destination is done */
  async settle(id: string, dest: string, outcome: 'sent' | 'failed'): Promise<void> {
    const counter = outcome === 'sent' ? this.counts.sent : this.counts.failed;
    counter[dest] = (counter[dest] ?? 0) + 1;
    const e = this.byId.get(id);
    if (!e || e.gone || e.done.has(dest)) return;
    e.done.add(dest);
    if (this.destinations.every((d) => e.done.has(d))) return this.remove(e);
    // in memory only: its markers are written with its file
    if (!e.onDisk) return;
    await this.mark(e, dest);
    // settled by the last destination while the marker was being written
    if (e.gone) await unlink(join(this.dir, `${e.file}~${safe(dest)}`)).catch(() => {});
  }

  /** called after each put (the sender wakes up) */
  onPut(listener: () => void): void {
    this.listeners.push(listener);
  }

  get size(): number {
    return this.entries.length;
  }

  stats(): QueueStats {
    return {
      queuedWindows: this.entries.length,
      queuedBytes: this.bytes,
      sent: { ...this.counts.sent },
      failed: { ...this.counts.failed },
      dropped: { ...this.counts.dropped },
    };
  }
}
