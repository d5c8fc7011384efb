/**
 * One test at a time across test files (node --test runs files in parallel), for live
 * tests that disturb each other's measurements: two bpftrace programs sampling at once, or
 * the io tests' busy loops on every CPU next to a test comparing sampled CPU time with the
 * workload's own ('timing'). A lock directory made with mkdir (atomic), holding the
 * owner's pid; a lock whose owner is gone is taken over.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function exclusive<T>(name: string, fn: () => Promise<T>, timeoutMs = 600_000): Promise<T> {
  const dir = join(tmpdir(), `pylens-test-lock-${name}`);
  const t0 = Date.now();
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, 'pid'), String(process.pid));
      break;
    } catch {
      let owner = 0;
      try {
        owner = Number(readFileSync(join(dir, 'pid'), 'utf8'));
      } catch {
        // being created or removed right now
      }
      if (owner > 0 && !alive(owner)) rmSync(dir, { recursive: true, force: true });
      else if (Date.now() - t0 > timeoutMs) throw new Error(`waited ${timeoutMs / 1000} s for the test lock ${dir} (held by pid ${owner})`);
      else await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
