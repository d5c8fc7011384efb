/**
 * Whole, marked or cut: where each sample's stack ends (its root frame). Whole stacks end at
 * their thread's base — `<module>` of the main script or threading's `_bootstrap` — marked
 * ones at the sampler's `[truncated]` root; anything else is a stack cut without a mark.
 * Counted by weight (a weighted profile's sample counts its value).
 * Used by test/sampler/trust.test.ts and bench/sampler-cuts.ts. `apartImpossible`: stacks of
 * bench/workloads/apart.py that never existed.
 */
import { frameInfo, stackFrames, type Profile } from '../../src/model/profile.ts';

export interface RootCounts {
  whole: number;
  marked: number;
  cut: number;
  /** up to `maxExamples` cut stacks, root first, names joined by ' > ' */
  examples: string[];
}

export function stackRoots(p: Profile, maxExamples = 3): RootCounts {
  const out: RootCounts = { whole: 0, marked: 0, cut: 0, examples: [] };
  const memo = new Map<number, string>();
  // a sample's weight (the kernel walk's are counts)
  const values = p.samples.values[p.defaultValue];
  for (let i = 0; i < p.samples.length; i++) {
    const w = values?.[i] ?? 1;
    const s = p.samples.stack[i]!;
    let root = memo.get(s);
    if (root === undefined) {
      const fr = stackFrames(p, s);
      root = fr.length ? frameInfo(p, fr[0]!).name : '';
      memo.set(s, root);
      if (root !== '<module>' && root !== '_bootstrap' && root !== '[truncated]' && out.examples.length < maxExamples) out.examples.push(fr.map((f) => frameInfo(p, f).name).join(' > '));
    }
    if (root === '[truncated]') out.marked += w;
    else if (root === '<module>' || root === '_bootstrap') out.whole += w;
    else out.cut += w;
  }
  return out;
}

/**
 * Samples of bench/workloads/apart.py whose stack never existed: a() and b() together, or a()
 * / b() at another depth than 4 / 9 above leaf(), or deeper than that — a walk that mixed two
 * moments of the thread (frames reused while the picture was copied).
 */
export function apartImpossible(p: Profile, maxExamples = 3): { impossible: number; examples: string[] } {
  let impossible = 0;
  const examples: string[] = [];
  const memo = new Map<number, boolean>();
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples.stack[i]!;
    let bad = memo.get(s);
    if (bad === undefined) {
      const names = stackFrames(p, s).map((f) => frameInfo(p, f).name);
      const na = names.filter((x) => x === 'a').length;
      const nb = names.filter((x) => x === 'b').length;
      bad = (na > 0 && nb > 0) || na > 4 || nb > 9 || (names.includes('leaf') && na !== 4 && nb !== 9);
      memo.set(s, bad);
      if (bad && examples.length < maxExamples) examples.push(names.join(' > '));
    }
    if (bad) impossible++;
  }
  return { impossible, examples };
}
