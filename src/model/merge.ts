/**
 * Many profiles as one (a service over an hour): frames, stacks and threads interned
 * together, samples concatenated in time.
 *
 * - Value types: the first profile's; another profile's columns are matched by name (a
 *   missing one adds 0). Profiles whose value types share no name with the first are refused.
 * - Time: when every profile has a wall-clock start, each one's sample times are shifted by
 *   its start's distance from the earliest; otherwise the profiles follow each other, each
 *   after the last one's duration. Profiles without sample times give an untimed result.
 * - Threads: one per (pid, tid) across the profiles, like the builder's; a name fills in.
 * - Meta: sample and error counts summed, the earliest start, the span as the duration; the
 *   lens, mode and backend when all agree (else 'import' / 'unknown' / 'merged'); the merged
 *   profiles' count in extra.mergedProfiles.
 */
import { ProfileBuilder } from './builder.ts';
import { frameInfo, SAMPLE_STATES, type Profile, type ProfileMeta } from './profile.ts';

export class MergeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MergeError';
  }
}

export function mergeProfiles(profiles: readonly Profile[], o: { name?: string } = {}): Profile {
  if (profiles.length === 0) throw new MergeError('nothing to merge');
  const first = profiles[0]!;
  const timed = profiles.every((p) => p.samples.time !== null);
  const starts = profiles.map((p) => (p.meta.startTime ? Date.parse(p.meta.startTime) : NaN));
  const byClock = starts.every((s) => Number.isFinite(s));
  const t0 = byClock ? Math.min(...starts) : 0;
  const same = <K extends keyof ProfileMeta>(k: K): ProfileMeta[K] | undefined => (profiles.every((p) => p.meta[k] === first.meta[k]) ? first.meta[k] : undefined);
  const b = new ProfileBuilder({ valueTypes: first.valueTypes.map((v) => ({ ...v })), defaultValue: first.defaultValue, timed });
  let offsetNs = 0;
  let endNs = 0;
  let sampleCount = 0;
  let errorCount = 0;
  profiles.forEach((p, k) => {
    const cols = first.valueTypes.map((v) => p.valueTypes.findIndex((w) => w.name === v.name));
    if (cols.every((c) => c < 0)) throw new MergeError(`profile ${k + 1} has no value type of the first one's (${first.valueTypes.map((v) => v.name).join(', ')}; it has ${p.valueTypes.map((v) => v.name).join(', ')})`);
    const frameMap = new Int32Array(p.frames.length);
    for (let f = 0; f < p.frames.length; f++) {
      const fi = frameInfo(p, f);
      frameMap[f] = b.frame({ name: fi.name, qualname: fi.qualname, kind: fi.kind, line: fi.line, ...(fi.file !== null ? { file: fi.file } : {}), ...(fi.lib !== null ? { lib: fi.lib } : {}) });
    }
    const stackMap = new Int32Array(p.stacks.length);
    for (let s = 0; s < p.stacks.length; s++) {
      const parent = p.stacks.parent[s]!;
      stackMap[s] = b.stack(parent < 0 ? -1 : stackMap[parent]!, frameMap[p.stacks.frame[s]!]!);
    }
    const threadMap = new Int32Array(p.threads.length);
    for (let t = 0; t < p.threads.length; t++) {
      const nm = p.threads.name[t]!;
      threadMap[t] = b.thread(p.threads.pid[t]!, p.threads.tid[t]!, nm >= 0 ? p.strings[nm] : undefined);
    }
    const shift = byClock ? (starts[k]! - t0) * 1e6 : offsetNs;
    const values = new Array<number>(cols.length);
    const time = p.samples.time;
    let last = 0;
    for (let i = 0; i < p.samples.length; i++) {
      for (let v = 0; v < cols.length; v++) values[v] = cols[v]! >= 0 ? p.samples.values[cols[v]!]![i]! : 0;
      const s = p.samples.stack[i]!;
      const t = time ? time[i]! : 0;
      if (t > last) last = t;
      b.sample(s < 0 ? -1 : stackMap[s]!, values, threadMap[p.samples.thread[i]!] ?? 0, SAMPLE_STATES[p.samples.state[i]!] ?? 'unknown', shift + t);
    }
    const dur = p.meta.durationNs ?? last;
    offsetNs = shift + dur;
    endNs = Math.max(endNs, shift + dur);
    sampleCount += p.meta.sampleCount;
    errorCount += p.meta.errorCount;
  });
  b.meta = {
    name: o.name ?? `${profiles.length} profiles merged`,
    lens: same('lens') ?? 'import',
    mode: same('mode') ?? 'unknown',
    backend: same('backend') ?? 'merged',
    sampleCount,
    errorCount,
    durationNs: endNs,
    environment: profiles.every((p) => JSON.stringify(p.meta.environment) === JSON.stringify(first.meta.environment)) ? first.meta.environment : {},
    ...(byClock ? { startTime: new Date(t0).toISOString() } : {}),
    ...(same('rateHz') !== undefined ? { rateHz: first.meta.rateHz! } : {}),
    extra: { mergedProfiles: profiles.length },
  };
  return b.build();
}
