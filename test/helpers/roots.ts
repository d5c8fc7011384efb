/**
 * Whole, marked or cut: where each sample's stack ends (its root frame). Whole stacks end at
 * their thread's base — `<module>` of the main script or threading's `_bootstrap` — marked
 * ones at the sampler's `[truncated]` root; anything else is a stack cut without a mark.
 * Used by test/sampler/trust.test.ts and bench/sampler-cuts.ts.
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
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples.stack[i]!;
    let root = memo.get(s);
    if (root === undefined) {
      const fr = stackFrames(p, s);
      root = fr.length ? frameInfo(p, fr[0]!).name : '';
      memo.set(s, root);
      if (root !== '<module>' && root !== '_bootstrap' && root !== '[truncated]' && out.examples.length < maxExamples) out.examples.push(fr.map((f) => frameInfo(p, f).name).join(' > '));
    }
    if (root === '[truncated]') out.marked++;
    else if (root === '<module>' || root === '_bootstrap') out.whole++;
    else out.cut++;
  }
  return out;
}
