/**
 * The `mem` lens's result (python/pylens/_lens_mem.py, tracemalloc) → a pylens profile of
 * live bytes by allocation traceback. The helper's data, the memory report and the growth
 * rule are analysis's (src/analysis/mem.ts), kept importable from here.
 */
import { ProfileBuilder } from '../../model/builder.ts';
import type { Profile, ProfileMeta } from '../../model/profile.ts';
import { CUT_FRAME, OTHER_FRAME, type MemData, type MemStack } from '../../analysis/mem.ts';

export { CUT_FRAME, OTHER_FRAME, GROWTH_RULE, detectGrowth, growthIndices, memReport } from '../../analysis/mem.ts';
export type { GrowthOptions, GrowthVerdict, MemData, MemGrowthLine, MemLine, MemLineRow, MemReport, MemSnapshot, MemSnapshotRow, MemStack } from '../../analysis/mem.ts';

/**
 * Live bytes (default value) and blocks by allocation traceback, root → leaf. `at`: the
 * exit snapshot, or the largest snapshot taken while running ('peak'; the exit one when
 * it is larger or there is none). Returns which one it used.
 */
export function memProfile(data: MemData, meta: Partial<ProfileMeta>, at: 'exit' | 'peak' = 'exit'): { profile: Profile; used: 'exit' | 'peak' } {
  const ps = data.peak_snapshot;
  const used: 'exit' | 'peak' = at === 'peak' && ps && data.stacks.peak && ps.traced > (data.current ?? 0) ? 'peak' : 'exit';
  const stacks = (used === 'peak' ? data.stacks.peak : data.stacks.exit) ?? [];
  const b = new ProfileBuilder({
    meta: { ...meta, lens: 'interpreter', backend: 'tracemalloc', mode: 'allocations' },
    valueTypes: [
      { name: 'bytes', unit: 'bytes' },
      { name: 'allocations', unit: 'calls' },
    ],
    defaultValue: 0,
    timed: false,
  });
  const frameIds = data.frames.map(([file, line, fn]) => b.frame({ name: fn.slice(fn.lastIndexOf('.') + 1) || fn, qualname: fn, file, line, kind: 'python' }));
  const cut = b.frame({ name: `[older frames: tracebacks cut at ${data.options.frames}]`, kind: 'marker' });
  const other = b.frame({ name: '[smaller tracebacks]', kind: 'marker' });
  const thread = b.thread(meta.pid ?? 0, 0, 'python');
  let blocks = 0;
  for (const [ids, bytes, count] of stacks) {
    const fs = ids.map((i) => (i === CUT_FRAME ? cut : i === OTHER_FRAME ? other : frameIds[i]!));
    b.sample(b.stackOf(fs), [bytes, count], thread);
    blocks += count;
  }
  b.meta.sampleCount = blocks;
  b.meta.extra = {
    ...(b.meta.extra ?? {}),
    snapshot: used === 'peak' ? `largest snapshot seen while running (t=${ps!.t.toFixed(2)} s)` : 'alive at exit',
    tracebackFrames: data.options.frames,
    peakBytes: data.peak,
    ...(data.current !== null ? { currentBytes: data.current } : {}),
    ...(data.rss_peak !== null ? { rssPeakBytes: data.rss_peak } : {}),
  };
  return { profile: b.build(), used };
}
