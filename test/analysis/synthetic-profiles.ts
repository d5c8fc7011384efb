/**
 * Synthetic sampled profiles for the diff tests and benchmark: a program that spends given
 * shares of its time in leaf functions under `main`, sampled at 100 Hz with the correlation
 * real programs have (a phase lasts a while: each sample repeats the previous one's function
 * with probability `stay`, otherwise draws afresh from the shares — the stationary shares
 * stay the given ones).
 */
import { ProfileBuilder } from '../../src/model/builder.ts';
import type { Profile } from '../../src/model/profile.ts';

export interface SynthOptions {
  /** share per leaf function (normalised) */
  shares: readonly number[];
  samples: number;
  /** probability a sample repeats the previous function (default 0.8) */
  stay?: number;
  random: () => number;
  /** call depth above each leaf: main → mid_i → leaf_i (default true) */
  mid?: boolean;
}

export function synthProfile(o: SynthOptions): Profile {
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'pylens-sampler', mode: 'cpu', rateHz: 100, durationNs: o.samples * 1e7 }, unitValues: true });
  const th = b.thread(1, 1, 'MainThread');
  const main = b.stack(-1, b.frame({ kind: 'python', name: 'main', qualname: 'main', file: '/app/main.py', line: 1 }));
  const leaves = o.shares.map((_, i) => {
    let s = main;
    if (o.mid ?? true) s = b.stack(s, b.frame({ kind: 'python', name: `mid_${i % 3}`, qualname: `mid_${i % 3}`, file: '/app/mid.py', line: 10 + (i % 3) }));
    return b.stack(s, b.frame({ kind: 'python', name: `f${i}`, qualname: `f${i}`, file: '/app/work.py', line: 100 + i }));
  });
  const sum = o.shares.reduce((a, x) => a + x, 0);
  const cum: number[] = [];
  let acc = 0;
  for (const x of o.shares) cum.push((acc += x / sum));
  const draw = () => {
    const u = o.random();
    const i = cum.findIndex((c) => u < c);
    return i < 0 ? cum.length - 1 : i;
  };
  const stay = o.stay ?? 0.8;
  let cur = draw();
  for (let i = 0; i < o.samples; i++) {
    if (i > 0 && o.random() >= stay) cur = draw();
    b.sample(leaves[cur]!, 1, th, 'on-cpu', i * 1e7);
  }
  return b.build();
}
