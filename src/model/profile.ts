/**
 * The pylens profile model: one columnar, versioned representation that every lens
 * converts into and every exporter and renderer reads from.
 *
 * Shape (structure of arrays, like the Firefox Profiler's processed profile):
 *   strings  — interned string array; every name/file in the tables is an index into it.
 *   frames   — one row per distinct (name, qualname, file, line, kind, lib).
 *   stacks   — one row per distinct call path: (frame, parent stack or -1). Root first.
 *   samples  — one row per sample: stack, thread, state, time, and one value per value type.
 *   threads  — one row per (pid, tid): name.
 *
 * Indexes are plain numbers; the alias types below only document intent.
 */

export type IndexIntoStrings = number;
export type IndexIntoFrames = number;
export type IndexIntoStacks = number;
export type IndexIntoThreads = number;
export type Nanoseconds = number;

/** Kind of a frame. `marker` is a synthetic frame: idle, GIL, GC, thread or process roots. */
export type FrameKind = 'python' | 'native' | 'kernel' | 'marker';
export const FRAME_KINDS: readonly FrameKind[] = ['python', 'native', 'kernel', 'marker'];
export const FrameKindCode = { python: 0, native: 1, kernel: 2, marker: 3 } as const;

/** What the thread was doing when sampled, where the capture knows it. */
export type SampleState = 'unknown' | 'on-cpu' | 'off-cpu' | 'idle' | 'gil';
export const SAMPLE_STATES: readonly SampleState[] = ['unknown', 'on-cpu', 'off-cpu', 'idle', 'gil'];
export const SampleStateCode = { unknown: 0, 'on-cpu': 1, 'off-cpu': 2, idle: 3, gil: 4 } as const;

/** Units values can carry. */
export type ValueUnit = 'samples' | 'nanoseconds' | 'bytes' | 'calls';
export const VALUE_UNITS: readonly ValueUnit[] = ['samples', 'nanoseconds', 'bytes', 'calls'];

/** One column of sample values, e.g. {name:'samples', unit:'samples'} or {name:'cpu', unit:'nanoseconds'}. */
export interface ValueType {
  name: string;
  unit: ValueUnit;
}

export type Lens = 'sampling' | 'perf' | 'ebpf' | 'interpreter' | 'import';
export type ProfileMode = 'cpu' | 'wall' | 'off-cpu' | 'calls' | 'allocations' | 'unknown';

export interface PythonInfo {
  version?: string;
  implementation?: string;
  /** e.g. "--enable-shared", "no frame pointers", sysconfig CONFIG_ARGS. */
  buildFlags?: string;
  executable?: string;
}

/** Where the profile was captured (or converted, for imports that carry none). */
export interface Environment {
  cpuModel?: string;
  cpuCores?: number;
  kernel?: string;
  os?: string;
  hostname?: string;
  python?: PythonInfo;
  pylensVersion?: string;
}

export interface Overhead {
  /** Profiler cost as a fraction of the target's time (0.02 = 2 %). */
  fraction?: number;
  /** How it was measured, in words. */
  method: string;
}

export interface ProfileMeta {
  /** Display name, e.g. the program or the input file. */
  name?: string;
  lens: Lens;
  /** The tool behind the data: 'pylens-sampler', 'perf', 'bpftrace', 'cProfile', 'py-spy', … */
  backend: string;
  mode: ProfileMode;
  /** Sampling rate in Hz, when the data is sampled at a fixed rate. */
  rateHz?: number;
  durationNs?: Nanoseconds;
  /** Wall-clock start, ISO 8601. */
  startTime?: string;
  command?: string[];
  pid?: number;
  /** Samples taken (may exceed rows when rows are aggregated). */
  sampleCount: number;
  /** Samples that failed to be taken or parsed. */
  errorCount: number;
  overhead?: Overhead;
  environment: Environment;
  /** Format and file this profile was imported from, when imported. */
  source?: { format: string; file?: string };
  /** Anything else a lens wants to keep (string or number values only). */
  extra?: Record<string, string | number>;
}

export interface FrameTable {
  name: IndexIntoStrings[];
  qualname: IndexIntoStrings[];
  /** -1 when unknown. */
  file: IndexIntoStrings[];
  /** 0 when unknown. */
  line: number[];
  kind: FrameKind[];
  /** Shared object / module of native and kernel frames; -1 when unknown or not applicable. */
  lib: IndexIntoStrings[];
  length: number;
}

export interface StackTable {
  frame: IndexIntoFrames[];
  /** -1 for a root. A parent always has a smaller index than its children. */
  parent: IndexIntoStacks[];
  length: number;
}

export interface SampleTable {
  stack: Int32Array;
  thread: Int32Array;
  /** SampleStateCode per sample. */
  state: Uint8Array;
  /** Nanoseconds since the profile start; null when the source has no times (aggregated formats). */
  time: Float64Array | null;
  /** values[v][i] = value of value type v for sample i. */
  values: Float64Array[];
  length: number;
}

export interface ThreadTable {
  tid: number[];
  pid: number[];
  /** -1 when unnamed. */
  name: IndexIntoStrings[];
  length: number;
}

export interface Profile {
  /** Model version this object conforms to (see src/model/versioning.ts). */
  version: number;
  meta: ProfileMeta;
  valueTypes: ValueType[];
  /** Index into valueTypes shown by default. */
  defaultValue: number;
  strings: string[];
  frames: FrameTable;
  stacks: StackTable;
  samples: SampleTable;
  threads: ThreadTable;
}

export const MODEL_VERSION = 1;

/** The fields a caller gives to describe a frame. */
export interface FrameSpec {
  name: string;
  qualname?: string;
  file?: string;
  line?: number;
  kind?: FrameKind;
  lib?: string;
}

/** A frame read back as plain values. */
export interface FrameInfo {
  name: string;
  qualname: string;
  file: string | null;
  line: number;
  kind: FrameKind;
  lib: string | null;
}

export function frameInfo(p: Profile, f: IndexIntoFrames): FrameInfo {
  const fr = p.frames;
  return {
    name: p.strings[fr.name[f]!]!,
    qualname: p.strings[fr.qualname[f]!]!,
    file: fr.file[f]! >= 0 ? p.strings[fr.file[f]!]! : null,
    line: fr.line[f]!,
    kind: fr.kind[f]!,
    lib: fr.lib[f]! >= 0 ? p.strings[fr.lib[f]!]! : null,
  };
}

/** Frames of a stack, root first. */
export function stackFrames(p: Profile, stack: IndexIntoStacks): IndexIntoFrames[] {
  const out: IndexIntoFrames[] = [];
  for (let s = stack; s >= 0; s = p.stacks.parent[s]!) out.push(p.stacks.frame[s]!);
  return out.reverse();
}

export function threadLabel(p: Profile, t: IndexIntoThreads): string {
  const name = p.threads.name[t]!;
  const base = `${p.threads.pid[t]}/${p.threads.tid[t]}`;
  return name >= 0 ? `${p.strings[name]} (${base})` : base;
}

export function sampleState(p: Profile, i: number): SampleState {
  return SAMPLE_STATES[p.samples.state[i]!]!;
}

/** Sum of a value column. */
export function totalValue(p: Profile, valueIndex = p.defaultValue): number {
  const col = p.samples.values[valueIndex]!;
  let sum = 0;
  for (let i = 0; i < p.samples.length; i++) sum += col[i]!;
  return sum;
}
