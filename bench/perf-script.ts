/**
 * Benchmark: `perf script` text → profile model, goal ≥ 500 MB/s on the dev machine.
 *
 * Builds a large perf script text in memory from the real fixtures (fixtures/perf/), with
 * new pids/tids/cpus/times per sample and, depending on the scenario, varied stacks:
 *   repeat     — fixture samples as they are (whole stacks repeat: the block cache answers)
 *   realistic  — a third of the samples get a new leaf offset (another instruction in the
 *                same function), 8 % are spliced from two samples (a new call path). This
 *                mix (about 62 % whole-block hits, 33 % new leaf under a known caller chain,
 *                5 % new paths) is what a real 20 s `-X perf_jit` capture of
 *                fixtures/workloads/mixed.py showed.
 *   distinct   — every sample gets a leaf offset never seen before (no whole-block hits)
 * then imports it with perfScriptImporter and prints MB/s (wall and CPU time), samples/s
 * and peak RSS. PYLENS_BENCH_INPUT=file benchmarks a capture of your own instead.
 *
 *   node bench/perf-script.ts                 # all scenarios, 1000 MB each
 *   PYLENS_BENCH_MB=300 node bench/perf-script.ts realistic
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { perfScriptImporter } from '../src/formats/perf-script.ts';
import { InputFile } from '../src/formats/types.ts';
import type { Profile } from '../src/model/profile.ts';
import { seededRandom } from '../src/analysis/random.ts';

const ROOT = join(import.meta.dirname, '..');
const SOURCES = ['fixtures/perf/3.13/perf-script-jit.txt', 'fixtures/perf/3.12/perf-script.txt'];
const GOAL_MB_S = 500;
const TARGET_MB = Number(process.env.PYLENS_BENCH_MB ?? 1000);
const RUNS = Number(process.env.PYLENS_BENCH_RUNS ?? 3);

type Scenario = 'repeat' | 'realistic' | 'distinct';
const SCENARIOS: Scenario[] = (process.argv.slice(2).length ? process.argv.slice(2) : ['repeat', 'realistic', 'distinct']) as Scenario[];

interface FixtureSample {
  comm: string;
  period: string;
  event: string;
  /** Callchain lines, leaf first, each without its newline. */
  lines: Buffer[];
}


/** Samples of the real fixtures: header fields and callchain lines. */
function loadSamples(): FixtureSample[] {
  const out: FixtureSample[] = [];
  for (const rel of SOURCES) {
    const text = readFileSync(join(ROOT, rel));
    let pos = 0;
    while (pos < text.length) {
      let end = text.indexOf('\n\n', pos);
      if (end < 0) end = text.length;
      const block = text.subarray(pos, end);
      pos = end + 2;
      const nl = block.indexOf(10);
      if (nl < 0 || block[0] === 35) continue;
      const header = block.toString('utf8', 0, nl);
      const m = /^(.*?)\s+\d+(?:\/\d+)?\s+(?:\[\d+\]\s+)?\d+\.\d+:\s+(\d+)\s+(\S+:)/.exec(header);
      if (!m) continue;
      const lines: Buffer[] = [];
      for (let p = nl + 1; p < block.length; ) {
        let e = block.indexOf(10, p);
        if (e < 0) e = block.length;
        lines.push(block.subarray(p, e));
        p = e + 1;
      }
      if (lines.length) out.push({ comm: m[1]!, period: m[2]!, event: m[3]!, lines });
    }
  }
  return out;
}

/** Replace the leaf line's offset and address with new ones (same function, another instruction). */
function newLeaf(line: Buffer, offset: number): Buffer {
  const s = line.toString('utf8');
  const m = /^(\t\s*)([0-9a-f]+) (.*)\+0x[0-9a-f]+ (\(.*\))$/.exec(s);
  if (!m) return line;
  const addr = (BigInt('0x' + m[2]!) + BigInt(offset)).toString(16);
  return Buffer.from(`${m[1]}${addr} ${m[3]}+0x${offset.toString(16)} ${m[4]}`);
}

function build(scenario: Scenario, targetBytes: number): { buf: Buffer; samples: number } {
  const src = loadSamples();
  const r = seededRandom(42);
  const buf = Buffer.allocUnsafe(targetBytes + (1 << 20));
  let off = 0;
  let n = 0;
  let timeUs = 1_000_000_000;
  let uniq = 1;
  const NL = Buffer.from('\n');
  while (off < targetBytes) {
    const s = src[Math.floor(r() * src.length)]!;
    const proc = Math.floor(r() * 64);
    const pid = 10_000 + proc * 100;
    const tid = pid + Math.floor(r() * 4);
    timeUs += 1 + Math.floor(r() * 40);
    const header = `${s.comm} ${pid}/${tid} [${String(Math.floor(r() * 64)).padStart(3, '0')}] ${Math.floor(timeUs / 1e6)}.${String(timeUs % 1e6).padStart(6, '0')}: ${s.period} ${s.event} \n`;
    off += buf.write(header, off, 'utf8');
    let lines = s.lines;
    if (scenario === 'realistic') {
      const x = r();
      if (x < 0.08) {
        const o = src[Math.floor(r() * src.length)]!;
        const cut = Math.floor(r() * Math.min(lines.length, 8));
        const join = Math.floor(r() * o.lines.length);
        lines = [...lines.slice(0, cut), ...o.lines.slice(join)];
      } else if (x < 0.41) lines = [newLeaf(lines[0]!, Math.floor(r() * 0x400)), ...lines.slice(1)];
    } else if (scenario === 'distinct') {
      lines = [newLeaf(lines[0]!, uniq++), ...lines.slice(1)];
    }
    for (const l of lines) {
      off += l.copy(buf, off);
      off += NL.copy(buf, off);
    }
    off += NL.copy(buf, off);
    n++;
  }
  return { buf: buf.subarray(0, off), samples: n };
}

const mb = (bytes: number) => bytes / 1e6;

/** Import `buf` RUNS times; best wall and CPU time (CPU time is steadier when other work shares the machine). */
function measure(buf: Buffer, label: string): { wall: number; cpu: number; first: number; p: Profile } {
  let wall = Infinity;
  let cpu = Infinity;
  let first = 0;
  let p: Profile | undefined;
  for (let run = 0; run < RUNS; run++) {
    p = undefined;
    const c0 = process.cpuUsage();
    const t = performance.now();
    const r = perfScriptImporter.parse(new InputFile(buf, label));
    const dt = (performance.now() - t) / 1000;
    const c = process.cpuUsage(c0);
    if (typeof r === 'symbol') throw new Error(`${label}: not recognised as perf script`);
    p = r;
    if (run === 0) first = dt;
    wall = Math.min(wall, dt);
    cpu = Math.min(cpu, (c.user + c.system) / 1e6);
  }
  return { wall, cpu, first, p: p! };
}

function report(name: string, buf: Buffer, samples: number, extra: string): void {
  const { wall, cpu, first, p } = measure(buf, `${name}.perf`);
  const rate = mb(buf.length) / wall;
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(
    `${name.padEnd(10)} ${mb(buf.length).toFixed(0)} MB, ${samples.toLocaleString('en')} samples${extra}: ` +
      `${wall.toFixed(2)} s best of ${RUNS} (first ${first.toFixed(2)} s) → ${rate.toFixed(0)} MB/s wall, ${(mb(buf.length) / cpu).toFixed(0)} MB/s CPU, ` +
      `${(samples / wall / 1e6).toFixed(2)} M samples/s; ${p.stacks.length.toLocaleString('en')} stacks, ${p.frames.length.toLocaleString('en')} frames, ` +
      `${p.threads.length} threads; peak RSS ${rss.toFixed(0)} MB (${(rss - buf.length / 2 ** 20).toFixed(0)} MB beyond the input buffer) — ${rate >= GOAL_MB_S ? 'meets' : 'MISSES'} ${GOAL_MB_S} MB/s`,
  );
}

if (process.env.PYLENS_BENCH_INPUT) {
  // a real capture of your own: perf script > big.txt; PYLENS_BENCH_INPUT=big.txt node bench/perf-script.ts
  const buf = readFileSync(process.env.PYLENS_BENCH_INPUT);
  const headers = buf.toString('latin1').split('\n').filter((l) => l !== '' && l[0] !== '#' && l[0] !== '\t').length;
  console.log(header());
  report('input', buf, headers, ` (${process.env.PYLENS_BENCH_INPUT})`);
} else if (process.env.PYLENS_BENCH_CHILD) {
  const scenario = SCENARIOS[0]!;
  const t0 = performance.now();
  const { buf, samples } = build(scenario, TARGET_MB * 1e6);
  report(scenario, buf, samples, ` (built in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
} else {
  // one process per scenario, so that each peak RSS is its own
  console.log(header());
  for (const scenario of SCENARIOS) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), scenario], { stdio: 'inherit', env: { ...process.env, PYLENS_BENCH_CHILD: '1' } });
    if (r.status !== 0) process.exitCode = 1;
  }
}

function header(): string {
  return `perf script import benchmark — goal ${GOAL_MB_S} MB/s text → model; Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`;
}
