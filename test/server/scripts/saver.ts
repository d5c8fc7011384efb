/**
 * One of many concurrent writers for the store's durability test: saves COUNT profiles of
 * ~20 k samples into the store at argv[2], printing "saved ID" after each commit. The test
 * kills it with SIGKILL at some moment.
 */
import { ProfileBuilder } from '../../../src/model/builder.ts';
import { ProfileStore } from '../../../src/store/store.ts';

const [path, countArg, seedArg] = process.argv.slice(2);
const store = ProfileStore.open(path!);
let seed = Number(seedArg) || 1;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
for (let k = 0; k < Number(countArg); k++) {
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'pylens-sampler', mode: 'cpu', name: `saver ${seedArg} #${k}`, startTime: new Date().toISOString(), durationNs: 2e9 }, unitValues: true });
  const th = b.thread(1, 1, 'MainThread');
  const leaves: number[] = [];
  for (let i = 0; i < 200; i++) {
    let s = b.stack(-1, b.frame({ name: '<module>', file: '/app/main.py', line: 1 }));
    for (let d = 0; d < 8; d++) s = b.stack(s, b.frame({ name: `f${(i + d) % 37}`, file: `/app/m${d}.py`, line: 10 + d }));
    leaves.push(s);
  }
  for (let i = 0; i < 20_000; i++) b.sample(leaves[Math.floor(rnd() * leaves.length)]!, 1, th, 'on-cpu', i * 1e5);
  const row = store.add(b.build(), { labels: { saver: String(seedArg), k: String(k) } });
  process.stdout.write(`saved ${row.id} ${row.samples}\n`);
}
store.close();
