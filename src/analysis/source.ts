/**
 * Source heat: which files a profile's Python frames are in, and for one file each line's
 * value — self (the line was being run) and total (a sample had the line on its stack,
 * counted once per sample) — as shares of the profile's total. The server reads the file
 * itself (server/server.ts); this is the query over the profile.
 */
import { frameInfo, type Profile } from '../model/profile.ts';

export interface SourceFile {
  /** the file as the profile names it (maybe short: relative to a path root) */
  file: string;
  /** share of the total with a frame of this file on the stack, 0–1 */
  total: number;
  self: number;
}

export interface LineHeat {
  line: number;
  self: number;
  total: number;
  /** functions seen at this line */
  functions: string[];
}

/** Files of Python frames, heaviest first. */
export function sourceFiles(p: Profile): SourceFile[] {
  const vi = p.defaultValue;
  const col = p.samples.values[vi]!;
  const fileOf = new Int32Array(p.frames.length).fill(-1);
  const names: string[] = [];
  const idx = new Map<string, number>();
  for (let f = 0; f < p.frames.length; f++) {
    const fi = frameInfo(p, f);
    if (fi.kind !== 'python' || fi.file === null || fi.file.startsWith('<')) continue;
    let i = idx.get(fi.file);
    if (i === undefined) idx.set(fi.file, (i = names.push(fi.file) - 1));
    fileOf[f] = i;
  }
  const perStack = stackValues(p, col);
  const total = new Float64Array(names.length);
  const self = new Float64Array(names.length);
  const seen = new Int32Array(names.length).fill(-1);
  let grand = 0;
  for (let s = 0; s < p.stacks.length; s++) {
    const v = perStack[s]!;
    if (v === 0) continue;
    const leaf = fileOf[p.stacks.frame[s]!]!;
    if (leaf >= 0) self[leaf] += v;
    for (let a = s; a >= 0; a = p.stacks.parent[a]!) {
      const i = fileOf[p.stacks.frame[a]!]!;
      if (i < 0 || seen[i] === s) continue;
      seen[i] = s;
      total[i] += v;
    }
  }
  for (let i = 0; i < p.samples.length; i++) grand += col[i]!;
  const g = grand || 1;
  return names.map((file, i) => ({ file, total: total[i]! / g, self: self[i]! / g })).sort((a, b) => b.total - a.total);
}

/** Per-line heat of one file (as the profile names it), lines in order. */
export function lineHeat(p: Profile, file: string): { grandTotal: number; lines: LineHeat[] } {
  const col = p.samples.values[p.defaultValue]!;
  const lineOf = new Int32Array(p.frames.length).fill(-1);
  const fnAt = new Map<number, Set<string>>();
  for (let f = 0; f < p.frames.length; f++) {
    const fi = frameInfo(p, f);
    if (fi.file !== file || fi.kind !== 'python' || fi.line <= 0) continue;
    lineOf[f] = fi.line;
    let s = fnAt.get(fi.line);
    if (!s) fnAt.set(fi.line, (s = new Set()));
    s.add(fi.qualname);
  }
  const perStack = stackValues(p, col);
  const total = new Map<number, number>();
  const self = new Map<number, number>();
  const seen = new Map<number, number>();
  for (let s = 0; s < p.stacks.length; s++) {
    const v = perStack[s]!;
    if (v === 0) continue;
    const leaf = lineOf[p.stacks.frame[s]!]!;
    if (leaf > 0) self.set(leaf, (self.get(leaf) ?? 0) + v);
    for (let a = s; a >= 0; a = p.stacks.parent[a]!) {
      const l = lineOf[p.stacks.frame[a]!]!;
      if (l <= 0 || seen.get(l) === s) continue;
      seen.set(l, s);
      total.set(l, (total.get(l) ?? 0) + v);
    }
  }
  let grand = 0;
  for (let i = 0; i < p.samples.length; i++) grand += col[i]!;
  const g = grand || 1;
  const lines = [...total.keys()].sort((a, b) => a - b).map((line) => ({ line, self: (self.get(line) ?? 0) / g, total: total.get(line)! / g, functions: [...(fnAt.get(line) ?? [])] }));
  return { grandTotal: grand, lines };
}

function stackValues(p: Profile, col: Float64Array): Float64Array {
  const per = new Float64Array(p.stacks.length);
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples.stack[i]!;
    if (s >= 0) per[s] += col[i]!;
  }
  return per;
}
