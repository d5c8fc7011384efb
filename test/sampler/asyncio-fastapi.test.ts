/**
 * record --async on a real framework: Debian's python3-fastapi and python3-uvicorn (on Debian's
 * python3 3.11), with asyncio's loop and with uvloop's. The service waits for a 2-connection
 * pool (scripts/fastapi_pool.py) under 16 concurrent requests; the answer to "where do
 * requests wait" — the endpoint coroutine's share of task time at its pool wait and at its
 * query — must be within 5 points of what the service timed itself over the same window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstLine } from './pythons.ts';

const SCRIPTS = join(import.meta.dirname, 'scripts');
const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const PY = '/usr/bin/python3';
const has = (mod: string) => spawnSync(PY, ['-c', `import ${mod}`]).status === 0;
const skip = !has('fastapi') || !has('uvicorn') ? 'needs python3-fastapi and python3-uvicorn (apt)' : false;

function truth(port: number): Promise<{ pool: number; query: number; requests: number }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/truth' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(JSON.parse(body)));
    }).on('error', reject);
  });
}

async function serve(loop: string): Promise<{ server: ChildProcess; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const server = spawn(PY, ['-m', 'uvicorn', 'fastapi_pool:app', '--port', String(port), '--loop', loop, '--log-level', 'warning'], { cwd: SCRIPTS, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    server.stderr!.on('data', (d) => (err += d));
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      if (server.exitCode !== null) break;
      try {
        await truth(port);
        return { server, port };
      } catch {
        // not listening yet
      }
    }
    server.kill('SIGKILL');
    if (attempt >= 3) throw new Error(`uvicorn did not start: ${err}`);
  }
}

for (const loop of ['asyncio', 'uvloop']) {
  test(`FastAPI + uvicorn (${loop} loop): record --async says the requests wait for the pool, within 5 points of the service's own timing`, { skip: skip || (loop === 'uvloop' && !has('uvloop') ? 'needs python3-uvloop (apt)' : false), timeout: 90_000 }, async (t) => {
    const { server, port } = await serve(loop);
    const load = spawn(PY, [join(SCRIPTS, 'http_load.py'), String(port), '/item', '16'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const dir = mkdtempSync(join(tmpdir(), 'pylens-fastapi-'));
    try {
      await firstLine(load, 'http_load.py');
      await new Promise((r) => setTimeout(r, 500));
      const out = join(dir, 'api.pylens');
      const before = await truth(port);
      const r = spawnSync(process.execPath, [MAIN, 'record', '--async', '-p', String(server.pid), '-d', '3', '-o', out], { encoding: 'utf8' });
      const after = await truth(port);
      assert.equal(r.status, 0, r.stderr);
      const pool = after.pool - before.pool;
      const query = after.query - before.query;
      const rep = JSON.parse(spawnSync(process.execPath, [MAIN, 'report', out, '--json'], { encoding: 'utf8' }).stdout);
      const w = rep.asyncio;
      assert.ok(w, 'the report has an asyncio section');
      const endpoint = w.coroutines.find((c: { name: string }) => c.name === 'get_item');
      assert.ok(endpoint, JSON.stringify(w.coroutines.map((c: { name: string }) => c.name)));
      const site = (re: RegExp) => endpoint.sites.filter((s: { awaits: string | null }) => s.awaits !== null && re.test(s.awaits)).reduce((a: number, s: { value: number }) => a + s.value, 0) / endpoint.value;
      const sampledPool = site(/__aenter__$|acquire$/);
      const sampledQuery = site(/^query$/);
      const truthPool = pool / (pool + query);
      const line = `pool ${(100 * truthPool).toFixed(1)} % true / ${(100 * sampledPool).toFixed(1)} % sampled; query ${(100 * (1 - truthPool)).toFixed(1)} / ${(100 * sampledQuery).toFixed(1)} %; ${after.requests - before.requests} requests; get_item ${(100 * endpoint.share).toFixed(1)} % of task time`;
      t.diagnostic(line);
      assert.ok(Math.abs(sampledPool - truthPool) <= 0.05, line);
      assert.ok(Math.abs(sampledQuery - (1 - truthPool)) <= 0.05, line);
      // the innermost wait the report names first is the semaphore's
      assert.match(w.innermost[0].name, /acquire$/, JSON.stringify(w.innermost.slice(0, 3)));
    } finally {
      load.kill('SIGKILL');
      server.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
