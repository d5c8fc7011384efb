/**
 * Property test: random profiles survive export → import unchanged where the format is
 * lossless. What "unchanged" means depends on what the format can hold:
 *   pylens      — the whole model, deep-equal.
 *   speedscope, pprof — every thread's stacks and weights (compared with thread roots).
 *   folded      — stacks and weights (threads are not part of the format).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProfileBuilder } from '../../src/model/builder.ts';
import type { FrameKind, Profile } from '../../src/model/profile.ts';
import { foldedStacks, validateProfile, withThreadRoots } from '../../src/model/query.ts';
import { importProfile } from '../../src/formats/index.ts';
import { outputById as exporterById } from '../../src/render/outputs.ts';
import { InputFile } from '../../src/formats/types.ts';
import { rng } from '../helpers/format-checks.ts';

const NAMES = ['main', 'handle_request', 'parse', 'berechne_größe', '計算', 'run', '<module>', '<lambda>', 'Worker.run', 'a b c'];
const FILES = ['/srv/app/main.py', '/usr/lib/python3.12/threading.py', '/srv/app/ünï.py', 'app.py'];
const LIBS = ['libpython3.12.so.1.0', 'libz.so.1', 'libc.so.6'];

export function randomProfile(seed: number, o: { timed?: boolean } = {}): Profile {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)]!;
  const b = new ProfileBuilder({ meta: { backend: 'random', mode: 'cpu', name: `random-${seed}` }, timed: o.timed ?? true });
  const frames: number[] = [];
  const nFrames = 3 + Math.floor(r() * 40);
  for (let i = 0; i < nFrames; i++) {
    const kind: FrameKind = r() < 0.7 ? 'python' : r() < 0.6 ? 'native' : 'kernel';
    const name = `${pick(NAMES)}${i}`;
    if (kind === 'python') frames.push(b.frame({ name, qualname: r() < 0.5 ? `Cls.${name}` : name, file: pick(FILES), line: 1 + Math.floor(r() * 500) }));
    else if (kind === 'native') frames.push(b.frame({ name: `c_${name}`, kind, lib: pick(LIBS) }));
    else frames.push(b.frame({ name: `k_${name}`, kind }));
  }
  const threads: number[] = [];
  const nThreads = 1 + Math.floor(r() * 4);
  for (let t = 0; t < nThreads; t++) threads.push(b.thread(1000 + (t % 2), 2000 + t, r() < 0.7 ? `thread-${t}` : undefined));
  const nSamples = 1 + Math.floor(r() * 300);
  let time = 0;
  for (let s = 0; s < nSamples; s++) {
    const depth = 1 + Math.floor(r() * 12);
    const stack: number[] = [];
    for (let d = 0; d < depth; d++) stack.push(pick(frames));
    time += 1e6 * (1 + Math.floor(r() * 10));
    b.sample(b.stackOf(stack), 1 + Math.floor(r() * 5), pick(threads), pick(['on-cpu', 'idle', 'unknown'] as const), time);
  }
  const p = b.build();
  validateProfile(p);
  return p;
}

function reimport(p: Profile, format: string, name?: string): Profile {
  const out = exporterById(format)!.write(p);
  const input = typeof out === 'string' ? InputFile.fromText(out, name) : new InputFile(out, name);
  const q = importProfile(input).profile;
  validateProfile(q);
  return q;
}

const threadsAndStacks = (p: Profile) => foldedStacks(withThreadRoots(p, { processes: true, threads: true }), { lineno: true });

for (let seed = 1; seed <= 40; seed++) {
  test(`random profile ${seed} round-trips`, () => {
    const p = randomProfile(seed);
    const back = reimport(p, 'pylens');
    back.meta.source = undefined;
    delete back.meta.source;
    assert.deepEqual(back, p, 'pylens keeps the whole model');
    assert.deepEqual(foldedStacks(reimport(p, 'folded')), foldedStacks(p), 'folded keeps stacks and weights');
    assert.deepEqual(threadsAndStacks(reimport(p, 'speedscope')), threadsAndStacks(p), 'speedscope keeps threads, stacks and weights');
    assert.deepEqual(threadsAndStacks(reimport(p, 'pprof')), threadsAndStacks(p), 'pprof keeps threads, stacks and weights');
  });
}
