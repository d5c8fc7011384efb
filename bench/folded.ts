/**
 * Benchmark: Gregg folded text → profile model, goal ≥ 2 M lines/s on the dev machine.
 *
 * Generates a folded file in memory: PYLENS_BENCH_LINES lines (default 2 M, ~180 bytes
 * each) over PYLENS_BENCH_STACKS distinct stacks (default 100 k; every one appears) built
 * as a tree from a vocabulary of Python-, native- and kernel-looking frames (depth 5–14,
 * shared prefixes, some `_[k]` / `_[i]` suffixes, `name (file.py:line)` labels), lines in
 * random order with random counts. Then it imports the UTF-8 bytes with foldedImporter
 * (from bytes: decoding is part of the import) PYLENS_BENCH_RUNS times and prints lines/s,
 * MB/s and the peak RSS of the process.
 *
 *   node bench/folded.ts            # zipf popularity (typical)
 *   PYLENS_BENCH_OUT=/tmp/b.folded node bench/folded.ts; PYLENS_BENCH_IN=/tmp/b.folded node bench/folded.ts
 *   node bench/folded.ts flat       # flat popularity (harsh)
 *   PYLENS_BENCH_LINES=5000000 PYLENS_BENCH_STACKS=500000 node bench/folded.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { foldedImporter } from '../src/formats/folded.ts';
import { InputFile, NOT_MINE } from '../src/formats/types.ts';
import type { Profile } from '../src/model/profile.ts';
import { seededRandom } from '../src/analysis/random.ts';

const LINES = Number(process.env.PYLENS_BENCH_LINES ?? 2_000_000);
const STACKS = Number(process.env.PYLENS_BENCH_STACKS ?? 100_000);
const RUNS = Number(process.env.PYLENS_BENCH_RUNS ?? 3);
const GOAL_LINES_S = 2_000_000;
/**
 * zipf — typical: stack popularity follows Zipf(1) (a few hot stacks take most samples,
 *        as in real profiles); flat — harsh: popularity ∝ 1/√rank, so most lines hit cold
 *        stacks and the distinct-stack table is used all over (cache and TLB misses).
 */
const SCENARIO = (process.argv[2] ?? 'zipf') as 'zipf' | 'flat';
if (SCENARIO !== 'zipf' && SCENARIO !== 'flat') throw new Error('scenario: zipf | flat');


function readInput(path: string): { bytes: Uint8Array; lines: number } {
  const bytes = readFileSync(path);
  let lines = 0;
  for (let p = bytes.indexOf(10); p >= 0; p = bytes.indexOf(10, p + 1)) lines++;
  return { bytes, lines };
}

function generate(): { bytes: Uint8Array; lines: number } {
  const r = seededRandom(42);
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)]!;
  const vocab: string[] = [];
  const files = ['main.py', 'handlers.py', 'threading.py', 'models.py', 'größe.py'];
  for (let i = 0; i < 400; i++) vocab.push(`${pick(['handle', 'parse', 'run', 'compute', 'render', 'fetch'])}${i} (${pick(files)}:${1 + Math.floor(r() * 900)})`);
  for (let i = 0; i < 200; i++) vocab.push(pick(['PyObject_Call', 'method_call', 'deflate', 'memcpy', 'malloc']) + (i % 7 === 0 ? '_[i]' : `${i}`));
  for (let i = 0; i < 60; i++) vocab.push(`${pick(['vfs_read', 'schedule', 'futex_wait'])}${i}_[k]`);
  // Distinct stacks as a tree: each new stack extends a random earlier one's prefix.
  const stacks: string[] = [];
  const roots = ['python3.12;_start;Py_BytesMain;<module> (main.py:1)', 'python3.12;clone3;start_thread;Thread.run (threading.py:992)'];
  const seen = new Set<string>();
  while (stacks.length < STACKS) {
    let s: string;
    if (stacks.length < 50 || r() < 0.05) s = pick(roots);
    else {
      const base = stacks[Math.floor(r() * stacks.length)]!.split(';');
      s = base.slice(0, Math.max(2, Math.floor(r() * base.length))).join(';');
    }
    const depth = 5 + Math.floor(r() * 10);
    let parts = s.split(';').length;
    while (parts < depth) {
      s += ';' + pick(vocab);
      parts++;
    }
    if (seen.has(s)) continue;
    seen.add(s);
    stacks.push(s);
  }
  // Which stack each line gets: every stack once, the other lines drawn by popularity
  // (rank → stack is a random permutation), then shuffled: no runs of equal lines.
  const perm = Int32Array.from({ length: stacks.length }, (_, i) => i);
  for (let i = perm.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const cdf = new Float64Array(stacks.length);
  let acc = 0;
  for (let k = 0; k < stacks.length; k++) {
    acc += SCENARIO === 'zipf' ? 1 / (k + 1) : 1 / Math.sqrt(k + 1);
    cdf[k] = acc;
  }
  const order = new Int32Array(LINES);
  for (let i = 0; i < LINES; i++) {
    if (i < stacks.length) {
      order[i] = i;
      continue;
    }
    const x = r() * acc;
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    order[i] = perm[lo]!;
  }
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  let chunk: string[] = [];
  for (let i = 0; i < LINES; i++) {
    chunk.push(`${stacks[order[i]!]} ${1 + Math.floor(r() * 50)}\n`);
    if (chunk.length === 50_000) {
      chunks.push(enc.encode(chunk.join('')));
      chunk = [];
    }
  }
  chunks.push(enc.encode(chunk.join('')));
  return { bytes: Buffer.concat(chunks), lines: LINES };
}

// PYLENS_BENCH_OUT=path writes the generated file; PYLENS_BENCH_IN=path imports that file
// instead of generating one (then the peak RSS is the input plus the import alone).
const t0 = performance.now();
const { bytes, lines } = process.env.PYLENS_BENCH_IN ? readInput(process.env.PYLENS_BENCH_IN) : generate();
if (process.env.PYLENS_BENCH_OUT) writeFileSync(process.env.PYLENS_BENCH_OUT, bytes);
const genMs = performance.now() - t0;
const mb = bytes.length / 1e6;
console.log(`folded bench (${SCENARIO}): ${lines.toLocaleString('en')} lines, ${STACKS.toLocaleString('en')} distinct stacks, ${mb.toFixed(1)} MB (${process.env.PYLENS_BENCH_IN ? 'read' : 'generated'} in ${(genMs / 1000).toFixed(1)} s)`);

// Start every timed run from a collected heap (the generator leaves ~1 GB of garbage).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let best = Infinity;
let last: Profile | undefined;
for (let run = 0; run < RUNS; run++) {
  last = undefined;
  gc();
  const input = new InputFile(bytes, 'bench.folded');
  const s = performance.now();
  const c0 = process.cpuUsage();
  const p = foldedImporter.parse(input);
  const ms = performance.now() - s;
  const cpu = process.cpuUsage(c0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  if (p === NOT_MINE) throw new Error('folded importer did not accept the generated file');
  last = p;
  best = Math.min(best, ms);
  console.log(`  run ${run + 1}: ${(ms / 1000).toFixed(3)} s  ${((lines / ms) * 1000 / 1e6).toFixed(2)} M lines/s  ${((mb / ms) * 1000).toFixed(0)} MB/s  (CPU ${(cpuMs / 1000).toFixed(3)} s)`);
}
const linesPerS = (lines / best) * 1000;
const rssMb = process.resourceUsage().maxRSS / 1024;
const mem = process.memoryUsage();
console.log(`best: ${(linesPerS / 1e6).toFixed(2)} M lines/s, ${((mb / best) * 1000).toFixed(0)} MB/s; peak RSS ${rssMb.toFixed(0)} MB (whole process, the ${mb.toFixed(0)} MB input${process.env.PYLENS_BENCH_IN ? '' : ' and the generator'} included)`);
console.log(`after the last import, with the profile alive: heap used ${(mem.heapUsed / 1e6).toFixed(0)} MB, array buffers ${(mem.arrayBuffers / 1e6).toFixed(0)} MB (the input is ${mb.toFixed(0)} MB of that)`);
console.log(`profile: ${last!.samples.length.toLocaleString('en')} sample rows, ${last!.stacks.length.toLocaleString('en')} stack nodes, ${last!.frames.length} frames`);
console.log(linesPerS >= GOAL_LINES_S ? `OK: ≥ ${GOAL_LINES_S / 1e6} M lines/s` : `BELOW GOAL: < ${GOAL_LINES_S / 1e6} M lines/s`);
