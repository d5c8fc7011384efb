/**
 * Benchmark: `pylens diff` of two 1 M-sample profiles (issue 13: < 1 s). Two recordings
 * of a made-up service: 400 leaf functions under 40 handlers, stacks 12–30 frames deep
 * (about 20 k distinct stacks each), samples 10 ms apart with sample times, one side with
 * three handlers 20 % heavier. Times the analysis (functions and call paths, 20 time
 * blocks per side), then the text and the differential flamegraph, and prints the
 * significant changes found.
 *
 *   node_modules/.bin/node bench/diff.ts [--samples N]
 */
import { diffProfiles } from '../src/analysis/diff.ts';
import { seededRandom } from '../src/analysis/random.ts';
import { ProfileBuilder } from '../src/model/builder.ts';
import type { Profile } from '../src/model/profile.ts';
import { renderDiffHtml, renderDiffText } from '../src/render/diff.ts';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const N = Number(arg('--samples') ?? 1_000_000);

function service(heavier: ReadonlySet<number>, seed: number): Profile {
  const r = seededRandom(seed);
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'pylens-sampler', mode: 'cpu', rateHz: 100, durationNs: N * 1e7 }, unitValues: true });
  const th = b.thread(1, 1, 'MainThread');
  const fr = (name: string, file: string, line: number) => b.frame({ kind: 'python', name, qualname: name, file, line });
  // framework frames, then a handler, then a chain of helpers, then a leaf
  let root = -1;
  for (let d = 0; d < 10; d++) root = b.stack(root, fr(`framework_${d}`, `/usr/lib/python3/dist-packages/fw/layer${d}.py`, 10 + d));
  const stacks: number[] = [];
  const weights: number[] = [];
  for (let h = 0; h < 40; h++) {
    const hs = b.stack(root, fr(`handler_${h}`, `/srv/app/handlers/h${h}.py`, 5));
    for (let l = 0; l < 10; l++) {
      let s = hs;
      const depth = 1 + ((h * 7 + l * 3) % 18);
      for (let d = 0; d < depth; d++) s = b.stack(s, fr(`helper_${(h + d) % 60}`, `/srv/app/lib/helpers${(h + d) % 6}.py`, 20 + d));
      for (let v = 0; v < 50; v++) {
        stacks.push(b.stack(s, fr(`leaf_${l}`, `/srv/app/lib/leaf${l}.py`, 30 + v)));
        weights.push((1 + ((h * 13 + l * 5 + v) % 17)) * (heavier.has(h) ? 1.2 : 1));
      }
    }
  }
  const cum: number[] = [];
  let acc = 0;
  for (const w of weights) cum.push((acc += w));
  let cur = 0;
  for (let i = 0; i < N; i++) {
    if (i === 0 || r() > 0.7) {
      const u = r() * acc;
      let lo = 0;
      let hi = cum.length - 1;
      while (lo < hi) {
        const m = (lo + hi) >> 1;
        if (cum[m]! < u) lo = m + 1;
        else hi = m;
      }
      cur = lo;
    }
    b.sample(stacks[cur]!, 1, th, 'on-cpu', i * 1e7);
  }
  return b.build();
}

const t0 = performance.now();
const base = service(new Set(), 1);
const neu = service(new Set([3, 17, 29]), 2);
const t1 = performance.now();
console.log(`two profiles of ${N.toLocaleString('en-US')} samples, ${base.stacks.length.toLocaleString('en-US')} / ${neu.stacks.length.toLocaleString('en-US')} stacks (built in ${((t1 - t0) / 1000).toFixed(1)} s)`);
for (let round = 0; round < 3; round++) {
  const a = performance.now();
  const d = diffProfiles([base], [neu]);
  const b = performance.now();
  const text = renderDiffText(d);
  const c = performance.now();
  const html = renderDiffHtml(d);
  const e = performance.now();
  const sig = d.functions.filter((f) => f.significant);
  console.log(
    `round ${round + 1}: diff ${((b - a) / 1000).toFixed(3)} s (goal < 1 s${b - a < 1000 ? '' : ' — MISSES'}), text ${((c - b) / 1000).toFixed(3)} s, flamegraph ${((e - c) / 1000).toFixed(3)} s (${(html.length / 1e6).toFixed(1)} MB); ` +
      `${d.functions.length} functions, ${d.paths.length.toLocaleString('en-US')} call paths; significant: ${sig.map((f) => `${f.name} ${f.delta > 0 ? '+' : ''}${f.delta.toFixed(2)}`).slice(0, 6).join(', ')}${sig.length > 6 ? ', …' : ''} (${sig.length})`,
  );
  if (round === 0) console.log(text.split('\n').slice(0, 3).join('\n'));
}
