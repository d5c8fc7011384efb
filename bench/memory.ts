/**
 * Benchmark: memory of the profile model. Goal: a 1 M-sample profile with 100 k distinct
 * stacks (depth 20–40, Python frames over a native interpreter base) fits in ≤ 300 MB
 * peak RSS, built through ProfileBuilder; and the same profile imported back from folded
 * text (src/formats/folded.ts).
 *
 * Each part runs in its own process so that each peak RSS is its own:
 *   builder  — intern frames, stacks (per sample, as an importer without a stack cache
 *              would) and 1 M samples over 8 threads; build()
 *   folded   — the same profile exported as folded text (one line per distinct path) to a
 *              temporary file by one process, imported with foldedImporter.parse by
 *              another, whose peak RSS (file bytes included) is reported
 *
 *   node bench/memory.ts            # both parts
 *   node bench/memory.ts builder    # one part
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProfileBuilder } from '../src/model/builder.ts';
import type { Profile } from '../src/model/profile.ts';
import { foldedStacks } from '../src/model/query.ts';
import { InputFile, NOT_MINE } from '../src/formats/types.ts';
import { seededRandom } from '../src/analysis/random.ts';

const SAMPLES = 1_000_000;
const STACKS = 100_000;
const GOAL_MB = 300;
const PARTS = ['builder', 'folded', 'folded-write'] as const;
type Part = (typeof PARTS)[number];


const rssMB = () => process.resourceUsage().maxRSS / 1024;

/**
 * 100 k distinct call paths as a growing call tree, kept compactly (one Int32Array): the
 * first 200 are trunks (a native interpreter base plus Python frames with the
 * interpreter frame between them); each later path copies a random earlier one up to a
 * point within its last 8 frames and continues with new Python frames to depth 20–40, so
 * paths share their callers the way real ones do. Every 8th path ends in a native leaf.
 */
function makePaths(b: ProfileBuilder): { frames: Int32Array; offsets: Int32Array } {
  const r = seededRandom(7);
  const files = Array.from({ length: 300 }, (_, i) => `/srv/app/pkg${i % 17}/module_${i}.py`);
  const py = Array.from({ length: 6000 }, (_, i) => {
    const name = `func_${i}`;
    return b.frame({ name, qualname: i % 3 ? `Class${i % 97}.${name}` : name, file: files[i % files.length]!, line: 1 + (i % 900) });
  });
  const evalFrame = b.frame({ name: '_PyEval_EvalFrameDefault', kind: 'native', lib: 'libpython3.12.so.1.0' });
  const base = ['_start', '__libc_start_main', 'Py_BytesMain', 'pymain_run_python', 'PyEval_EvalCode'].map((n) => b.frame({ name: n, kind: 'native', lib: 'libpython3.12.so.1.0' }));
  const leaves = Array.from({ length: 400 }, (_, i) => b.frame({ name: `native_leaf_${i}`, kind: 'native', lib: i % 2 ? 'libc.so.6' : 'libz.so.1' }));
  const frames = new Int32Array(STACKS * 40);
  const offsets = new Int32Array(STACKS + 1);
  const seen = new Set<number>();
  let n = 0;
  const path: number[] = [];
  for (let s = 0; s < STACKS; ) {
    path.length = 0;
    if (s < 200) path.push(...base);
    else {
      const from = Math.floor(r() * s);
      const len = offsets[from + 1]! - offsets[from]!;
      const keep = Math.max(base.length, len - 1 - Math.floor(r() * 8));
      for (let k = 0; k < keep; k++) path.push(frames[offsets[from]! + k]!);
    }
    const depth = Math.max(path.length + 1, 20 + Math.floor(r() * 21));
    while (path.length < depth) path.push(path.length % 2 ? evalFrame : py[Math.floor(r() * py.length)]!);
    if (s % 8 === 0) path[path.length - 1] = leaves[Math.floor(r() * leaves.length)]!;
    // distinct paths (a 32-bit hash collision only costs one more try)
    let h = 0;
    for (const f of path) h = Math.imul(h ^ f, 0x9e3779b1) ^ (h >>> 15);
    if (seen.has(h)) continue;
    seen.add(h);
    for (const f of path) frames[n++] = f;
    offsets[++s] = n;
  }
  return { frames: frames.subarray(0, n), offsets };
}

function buildProfile(): { profile: Profile; seconds: number } {
  const t0 = performance.now();
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'bench', mode: 'cpu', rateHz: 100 } });
  const { frames, offsets } = makePaths(b);
  const r = seededRandom(11);
  const threads = Array.from({ length: 8 }, (_, t) => b.thread(4242, 4242 + t, t ? `worker-${t}` : 'MainThread'));
  for (let i = 0; i < SAMPLES; i++) {
    // skewed: a few hot paths, a long tail (every path is hit: the first STACKS samples go round)
    const p = i < STACKS ? i : Math.floor(STACKS * r() ** 3);
    let s = -1;
    for (let k = offsets[p]!; k < offsets[p + 1]!; k++) s = b.stack(s, frames[k]!);
    b.sample(s, 1, threads[i % threads.length]!, 'on-cpu', i * 1e7);
  }
  const profile = b.build();
  return { profile, seconds: (performance.now() - t0) / 1000 };
}

async function runPart(part: Part): Promise<void> {
  if (part === 'builder') {
    const { profile: p, seconds } = buildProfile();
    const rss = rssMB();
    console.log(
      `builder: ${p.samples.length.toLocaleString('en')} samples, ${p.stacks.length.toLocaleString('en')} stack nodes (${STACKS.toLocaleString('en')} distinct paths of depth 20–40 as a call tree), ` +
        `${p.frames.length.toLocaleString('en')} frames in ${seconds.toFixed(2)} s; peak RSS ${rss.toFixed(0)} MB — ${rss <= GOAL_MB ? 'meets' : 'MISSES'} the ${GOAL_MB} MB goal`,
    );
    return;
  }
  const { foldedExporter, foldedImporter } = await import('../src/formats/folded.ts');
  const file = process.env.PYLENS_BENCH_FOLDED!;
  if (part === 'folded-write') {
    const { profile } = buildProfile();
    try {
      writeFileSync(file, foldedExporter.write(profile));
    } catch (e) {
      writeFileSync(file, '');
      console.log(`folded: skipped (${(e as Error).message})`);
    }
    return;
  }
  const bytes = readFileSync(file);
  if (bytes.length === 0) return;
  const t0 = performance.now();
  const r = foldedImporter.parse(new InputFile(bytes, 'bench.folded'));
  const seconds = (performance.now() - t0) / 1000;
  if (r === NOT_MINE) {
    console.log('folded: skipped (the folded importer did not take its own export)');
    return;
  }
  const rss = rssMB();
  console.log(
    `folded: ${(bytes.length / 1e6).toFixed(0)} MB of folded text (the profile above, one line per distinct path) → ${r.samples.length.toLocaleString('en')} rows, ` +
      `${r.stacks.length.toLocaleString('en')} stack nodes, ${r.meta.sampleCount.toLocaleString('en')} samples in ${seconds.toFixed(2)} s ` +
      `(${(bytes.length / 1e6 / seconds).toFixed(0)} MB/s); peak RSS ${rss.toFixed(0)} MB (text included) — ${rss <= GOAL_MB ? 'meets' : 'MISSES'} the ${GOAL_MB} MB goal`,
  );
}

const asked = process.argv[2] as Part | undefined;
if (asked) {
  if (!PARTS.includes(asked)) throw new Error(`unknown part ${asked}; one of ${PARTS.join(', ')}`);
  if (asked === 'folded' && !process.env.PYLENS_BENCH_FOLDED) run(['folded']);
  else await runPart(asked);
} else {
  console.log(`memory benchmark — goal ≤ ${GOAL_MB} MB peak RSS; Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  run(['builder', 'folded']);
}

/** Each part in a child process; the folded text is written by one child and imported by the next. */
function run(parts: Part[]): void {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-bench-'));
  const env = { ...process.env, PYLENS_BENCH_FOLDED: join(dir, 'bench.folded') };
  try {
    for (const part of parts) {
      const steps: string[] = part === 'folded' ? ['folded-write', 'folded'] : [part];
      for (const step of steps) {
        const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), step], { stdio: 'inherit', env });
        if (r.status !== 0) process.exitCode = 1;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
