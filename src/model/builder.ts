/**
 * ProfileBuilder: the one way importers and lenses create a Profile.
 * It interns strings, frames and stacks, and grows typed sample columns.
 */
import {
  MODEL_VERSION,
  SampleStateCode,
  type FrameKind,
  type FrameSpec,
  type IndexIntoFrames,
  type IndexIntoStacks,
  type IndexIntoStrings,
  type IndexIntoThreads,
  type Profile,
  type ProfileMeta,
  type SampleState,
  type ValueType,
} from './profile.ts';

/**
 * Open-addressing hash from (parent, frame) to stack index. Entries are interleaved
 * (frame, parent, stack) in one Int32Array so a probe touches one cache line.
 */
class StackInterner {
  private table: Int32Array;
  private mask: number;
  private count = 0;

  constructor(capacityPow2 = 1 << 12) {
    this.table = new Int32Array(capacityPow2 * 3).fill(-1);
    this.mask = capacityPow2 - 1;
  }

  private static hash(parent: number, frame: number): number {
    let h = Math.imul(parent + 1, 0x9e3779b1) ^ Math.imul(frame + 0x7f4a7c15, 0x85ebca6b);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
    return h >>> 0;
  }

  /** Returns the stored index, or -1 after storing `next` for a new key. */
  getOrSet(parent: number, frame: number, next: number): number {
    const t = this.table;
    let i = StackInterner.hash(parent, frame) & this.mask;
    for (;;) {
      const j = i * 3;
      const f = t[j]!;
      if (f === -1) {
        t[j] = frame;
        t[j + 1] = parent;
        t[j + 2] = next;
        if (++this.count * 2 > this.mask) this.grow();
        return -1;
      }
      if (f === frame && t[j + 1] === parent) return t[j + 2]!;
      i = (i + 1) & this.mask;
    }
  }

  private grow(): void {
    const old = this.table;
    const cap = (this.mask + 1) * 2;
    const t = new Int32Array(cap * 3).fill(-1);
    this.mask = cap - 1;
    for (let j = 0; j < old.length; j += 3) {
      const f = old[j]!;
      if (f === -1) continue;
      let i = StackInterner.hash(old[j + 1]!, f) & this.mask;
      while (t[i * 3] !== -1) i = (i + 1) & this.mask;
      t[i * 3] = f;
      t[i * 3 + 1] = old[j + 1]!;
      t[i * 3 + 2] = old[j + 2]!;
    }
    this.table = t;
  }
}

export interface BuilderOptions {
  meta?: Partial<ProfileMeta>;
  valueTypes?: ValueType[];
  defaultValue?: number;
  /** Whether samples carry times. Default true; aggregated formats pass false. */
  timed?: boolean;
  /**
   * Every sample's value is 1 (one value type; a sampler's sample counts): no value column is
   * kept while samples come in (8 bytes a sample), `build()` makes it. `sample()` must then
   * be given 1.
   */
  unitValues?: boolean;
}

/**
 * The first `n` entries of a column: a view when the column is mostly full (no copy at the
 * memory peak of a long recording), a copy when most of it would be slack. `build()` is the
 * builder's last use, so sharing the buffer is safe.
 */
function fit<T extends Int32Array | Uint8Array | Float64Array>(a: T, n: number): T {
  return (n >= a.length * 0.75 ? a.subarray(0, n) : a.slice(0, n)) as T;
}

export class ProfileBuilder {
  readonly strings: string[] = [];
  private stringIndex = new Map<string, number>();
  private frameIndex = new Map<string, number>();
  private stackInterner = new StackInterner();
  private threadIndex = new Map<string, number>();

  readonly frames = { name: [] as number[], qualname: [] as number[], file: [] as number[], line: [] as number[], kind: [] as FrameKind[], lib: [] as number[], length: 0 };
  readonly stacks = { frame: [] as number[], parent: [] as number[], length: 0 };
  readonly threads = { tid: [] as number[], pid: [] as number[], name: [] as number[], length: 0 };

  private cap = 1024;
  private sStack = new Int32Array(this.cap);
  private sThread = new Int32Array(this.cap);
  private sState = new Uint8Array(this.cap);
  private sTime: Float64Array | null;
  private sValues: Float64Array[];
  private unitValues: boolean;
  private n = 0;

  meta: ProfileMeta;
  readonly valueTypes: ValueType[];
  defaultValue: number;

  constructor(opts: BuilderOptions = {}) {
    this.valueTypes = opts.valueTypes ?? [{ name: 'samples', unit: 'samples' }];
    this.defaultValue = opts.defaultValue ?? 0;
    this.meta = {
      lens: 'import',
      backend: 'unknown',
      mode: 'unknown',
      sampleCount: 0,
      errorCount: 0,
      environment: {},
      ...opts.meta,
    };
    this.sTime = opts.timed === false ? null : new Float64Array(this.cap);
    this.unitValues = opts.unitValues === true;
    if (this.unitValues && this.valueTypes.length !== 1) throw new RangeError('unitValues needs exactly one value type');
    this.sValues = this.unitValues ? [] : this.valueTypes.map(() => new Float64Array(this.cap));
  }

  intern(s: string): IndexIntoStrings {
    let i = this.stringIndex.get(s);
    if (i === undefined) {
      i = this.strings.length;
      this.strings.push(s);
      this.stringIndex.set(s, i);
    }
    return i;
  }

  /** Intern a frame by all its fields. */
  frame(spec: FrameSpec): IndexIntoFrames {
    const kind = spec.kind ?? 'python';
    const qual = spec.qualname ?? spec.name;
    const file = spec.file ?? '';
    const line = spec.line ?? 0;
    const lib = spec.lib ?? '';
    const key = `${kind}\u0000${spec.name}\u0000${qual}\u0000${file}\u0000${line}\u0000${lib}\u0000${spec.file === undefined ? 0 : 1}`;
    let f = this.frameIndex.get(key);
    if (f === undefined) {
      f = this.frames.length++;
      this.frames.name.push(this.intern(spec.name));
      this.frames.qualname.push(this.intern(qual));
      this.frames.file.push(spec.file === undefined ? -1 : this.intern(spec.file));
      this.frames.line.push(line);
      this.frames.kind.push(kind);
      this.frames.lib.push(spec.lib === undefined ? -1 : this.intern(spec.lib));
      this.frameIndex.set(key, f);
    }
    return f;
  }

  /** Intern the stack (parent, frame). parent -1 = root. */
  stack(parent: IndexIntoStacks, frame: IndexIntoFrames): IndexIntoStacks {
    const next = this.stacks.length;
    const got = this.stackInterner.getOrSet(parent, frame, next);
    if (got >= 0) return got;
    this.stacks.frame.push(frame);
    this.stacks.parent.push(parent);
    this.stacks.length++;
    return next;
  }

  /** Intern a whole stack given root-first frames. Returns -1 for an empty list. */
  stackOf(framesRootFirst: readonly IndexIntoFrames[]): IndexIntoStacks {
    let s = -1;
    for (const f of framesRootFirst) s = this.stack(s, f);
    return s;
  }

  thread(pid: number, tid: number, name?: string): IndexIntoThreads {
    const key = `${pid}/${tid}`;
    let t = this.threadIndex.get(key);
    if (t === undefined) {
      t = this.threads.length++;
      this.threads.pid.push(pid);
      this.threads.tid.push(tid);
      this.threads.name.push(name === undefined ? -1 : this.intern(name));
      this.threadIndex.set(key, t);
    } else if (name !== undefined && this.threads.name[t] === -1) {
      this.threads.name[t] = this.intern(name);
    }
    return t;
  }

  private growSamples(): void {
    // ×1.5, not ×2: a long recording's columns are the bulk of the sampler's memory
    const cap = Math.ceil(this.cap * 1.5);
    const g32 = (a: Int32Array) => { const b = new Int32Array(cap); b.set(a); return b; };
    this.sStack = g32(this.sStack);
    this.sThread = g32(this.sThread);
    const st = new Uint8Array(cap); st.set(this.sState); this.sState = st;
    if (this.sTime) { const t = new Float64Array(cap); t.set(this.sTime); this.sTime = t; }
    this.sValues = this.sValues.map((a) => { const b = new Float64Array(cap); b.set(a); return b; });
    this.cap = cap;
  }

  /**
   * Add a sample. `values` is either one number (for a single value type) or one per value type.
   * `time` is nanoseconds since profile start (ignored when the builder is untimed).
   */
  sample(stack: IndexIntoStacks, values: number | readonly number[], thread: IndexIntoThreads = 0, state: SampleState = 'unknown', time = 0): void {
    if (this.unitValues && values !== 1) throw new RangeError(`a unitValues builder takes only the value 1, not ${String(values)}`);
    if (this.n === this.cap) this.growSamples();
    const i = this.n++;
    this.sStack[i] = stack;
    this.sThread[i] = thread;
    this.sState[i] = SampleStateCode[state];
    if (this.sTime) this.sTime[i] = time;
    if (this.unitValues) {
      /* the column is made by build() */
    } else if (typeof values === 'number') {
      this.sValues[0]![i] = values;
    } else {
      for (let v = 0; v < this.sValues.length; v++) this.sValues[v]![i] = values[v] ?? 0;
    }
  }

  get sampleRows(): number {
    return this.n;
  }

  /** Finish. Ensures at least one thread row exists (pid 0, tid 0) if samples reference thread 0. */
  build(): Profile {
    if (this.threads.length === 0 && this.n > 0) this.thread(0, 0);
    const n = this.n;
    const meta: ProfileMeta = { ...this.meta };
    if (this.unitValues) this.sValues = [new Float64Array(n).fill(1)];
    if (!meta.sampleCount) {
      // Default: the sum of the "samples" column if there is one, else rows.
      const si = this.valueTypes.findIndex((v) => v.unit === 'samples');
      if (si >= 0) {
        let sum = 0;
        const col = this.sValues[si]!;
        for (let i = 0; i < n; i++) sum += col[i]!;
        meta.sampleCount = Math.round(sum);
      } else meta.sampleCount = n;
    }
    return {
      version: MODEL_VERSION,
      meta,
      valueTypes: this.valueTypes.map((v) => ({ ...v })),
      defaultValue: this.defaultValue,
      strings: this.strings,
      frames: this.frames,
      stacks: this.stacks,
      samples: {
        stack: fit(this.sStack, n),
        thread: fit(this.sThread, n),
        state: fit(this.sState, n),
        time: this.sTime ? fit(this.sTime, n) : null,
        values: this.sValues.map((a) => fit(a, n)),
        length: n,
      },
      threads: this.threads,
    };
  }
}
