/**
 * Where asyncio tasks spend their time (record --async profiles) — waiting mostly, running when
 * the loop runs them: the typed answer every view reads.
 *
 * A task sample hangs under a `task NAME` root (model/query.ts `taskRoots`), its await chain
 * below it from the task's own coroutine to the innermost await; its value is task time (a
 * task read every Nth tick weighs N). From those:
 * - each task (by root name): its task time and share of all task time;
 * - each coroutine (function) on the chains: its inclusive task time — the time tasks spent
 *   waiting somewhere under it, e.g. an endpoint coroutine — and its awaited call sites (the
 *   line it waits on and what it awaits there), each with its share of the coroutine's time;
 * - what is awaited innermost (asyncio's sleep, a lock's or queue's wait, a future...).
 */
import { frameInfo, SAMPLE_STATES, type Profile } from '../model/profile.ts';
import { taskRoots } from '../model/query.ts';

export interface AwaitSite {
  /** the line of the coroutine the task waits on */
  line: number | null;
  /** what it awaits there: the next coroutine inward, or null when the chain ends there */
  awaits: string | null;
  value: number;
  /** of which running (a running task's samples: not idle) */
  running: number;
  /** of the coroutine's inclusive value */
  share: number;
}

export interface CoroutineWaits {
  name: string;
  file: string | null;
  value: number;
  /** of which running */
  running: number;
  /** of all task time */
  share: number;
  /** tasks whose chains pass through it */
  tasks: number;
  sites: AwaitSite[];
}

export interface TaskWaitsRow {
  task: string;
  value: number;
  /** of which running */
  running: number;
  share: number;
}

export interface InnermostWait {
  name: string;
  file: string | null;
  line: number | null;
  value: number;
  /** of which running */
  running: number;
  share: number;
}

export interface AsyncWaits {
  /** all task time (the default value column summed over task samples) */
  total: number;
  /** the task samples' rows */
  samples: number;
  tasks: TaskWaitsRow[];
  coroutines: CoroutineWaits[];
  innermost: InnermostWait[];
}

/** The asyncio section of a profile, or null when it has no task samples. */
export function asyncWaits(p: Profile, opts: { limit?: number; sitesPerCoroutine?: number } = {}): AsyncWaits | null {
  const roots = taskRoots(p);
  if (!roots.some((r) => r !== null)) return null;
  const limit = opts.limit ?? 20;
  const perCoro = opts.sitesPerCoroutine ?? 3;
  const col = p.samples.values[p.defaultValue]!;
  // per stack: its frames root first, cached (task chains repeat)
  // a task's own chain: from its root to the innermost frame, or to an `awaits task NAME`
  // marker (the awaited task's chain below it is that task's time, counted under its own root)
  const chainOf = new Map<number, { task: string; frames: number[]; awaitsTask: string | null } | null>();
  const chain = (stack: number): { task: string; frames: number[]; awaitsTask: string | null } | null => {
    let c = chainOf.get(stack);
    if (c !== undefined) return c;
    const frames: number[] = [];
    for (let s = stack; s >= 0; s = p.stacks.parent[s]!) frames.push(p.stacks.frame[s]!);
    frames.reverse();
    const at = frames.findIndex((f) => roots[f] !== null);
    if (at < 0) c = null;
    else {
      const own = frames.slice(at + 1);
      const cut = own.findIndex((f) => p.frames.kind[f] === 'marker');
      const awaitsTask = cut >= 0 ? p.strings[p.frames.name[own[cut]!]!]! : null;
      c = { task: roots[frames[at]!]!, frames: cut >= 0 ? own.slice(0, cut) : own, awaitsTask };
    }
    chainOf.set(stack, c);
    return c;
  };
  let total = 0;
  let samples = 0;
  const byTask = new Map<string, { value: number; running: number }>();
  /** function key → inclusive value, tasks seen, site key → value */
  const byCoro = new Map<string, { name: string; file: string | null; value: number; running: number; tasks: Set<string>; sites: Map<string, AwaitSite> }>();
  const IDLE = SAMPLE_STATES.indexOf('idle');
  const byLeaf = new Map<string, InnermostWait>();
  const info = new Map<number, ReturnType<typeof frameInfo>>();
  const fi = (f: number) => {
    let x = info.get(f);
    if (x === undefined) info.set(f, (x = frameInfo(p, f)));
    return x;
  };
  for (let i = 0; i < p.samples.length; i++) {
    const c = chain(p.samples.stack[i]!);
    if (c === null) continue;
    const v = col[i]!;
    if (v === 0) continue;
    total += v;
    samples++;
    const run = p.samples.state[i] !== IDLE ? v : 0;
    const te = byTask.get(c.task);
    if (te) (te.value += v), (te.running += run);
    else byTask.set(c.task, { value: v, running: run });
    const seen = new Set<string>();
    for (let j = 0; j < c.frames.length; j++) {
      const f = fi(c.frames[j]!);
      const key = `${f.qualname ?? f.name}\u0000${f.file ?? ''}`;
      let e = byCoro.get(key);
      if (e === undefined) byCoro.set(key, (e = { name: f.qualname ?? f.name, file: f.file ?? null, value: 0, running: 0, tasks: new Set(), sites: new Map() }));
      e.tasks.add(c.task);
      // a recursive coroutine counts once per sample, at its outermost call
      if (seen.has(key)) continue;
      seen.add(key);
      e.value += v;
      e.running += run;
      const next = j + 1 < c.frames.length ? fi(c.frames[j + 1]!) : null;
      const awaits = next ? (next.qualname ?? next.name) : c.awaitsTask;
      const sk = `${f.line ?? ''}\u0000${awaits ?? ''}`;
      const site = e.sites.get(sk);
      if (site) (site.value += v), (site.running += run);
      else e.sites.set(sk, { line: f.line ?? null, awaits, value: v, running: run, share: 0 });
    }
    if (c.frames.length > 0) {
      const f = fi(c.frames.at(-1)!);
      const key = `${f.qualname ?? f.name}\u0000${f.file ?? ''}\u0000${f.line ?? ''}`;
      const e = byLeaf.get(key);
      if (e) (e.value += v), (e.running += run);
      else byLeaf.set(key, { name: f.qualname ?? f.name, file: f.file ?? null, line: f.line ?? null, value: v, running: run, share: 0 });
    }
  }
  if (total === 0) return null;
  const share = (v: number) => v / total;
  const tasks = [...byTask].map(([task, e]) => ({ task, value: e.value, running: e.running, share: share(e.value) })).sort((a, b) => b.value - a.value).slice(0, limit);
  const coroutines = [...byCoro.values()]
    .map((e) => ({
      name: e.name,
      file: e.file,
      value: e.value,
      running: e.running,
      share: share(e.value),
      tasks: e.tasks.size,
      sites: [...e.sites.values()].sort((a, b) => b.value - a.value).slice(0, perCoro).map((s) => ({ ...s, share: s.value / e.value })),
    }))
    .sort((a, b) => b.value - a.value)
    .slice(0, limit);
  const innermost = [...byLeaf.values()].map((l) => ({ ...l, share: share(l.value) })).sort((a, b) => b.value - a.value).slice(0, limit);
  return { total, samples, tasks, coroutines, innermost };
}
