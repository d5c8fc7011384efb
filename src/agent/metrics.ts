/**
 * The agent's `/metrics` (Prometheus text format 0.0.4) and `/healthz`: windows made, sent,
 * queued and dropped, per destination; targets and the processes that cannot be read; read
 * errors per target; the agent's own CPU time and memory.
 */
import { createServer, type Server } from 'node:http';

export interface Metric {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  /** one value, or values by label set */
  values: Array<{ labels?: Record<string, string>; value: number }>;
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** Prometheus text exposition of `metrics`. */
export function renderMetrics(metrics: Metric[]): string {
  const out: string[] = [];
  for (const m of metrics) {
    out.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`);
    for (const v of m.values) {
      const labels = v.labels && Object.keys(v.labels).length ? `{${Object.entries(v.labels).map(([k, x]) => `${k}="${esc(x)}"`).join(',')}}` : '';
      out.push(`${m.name}${labels} ${Number.isFinite(v.value) ? v.value : 0}`);
    }
  }
  return out.join('\n') + '\n';
}

/** The agent's own CPU time (s) and resident memory (bytes). */
export function selfMetrics(): Metric[] {
  const cpu = process.cpuUsage();
  return [
    { name: 'pylens_agent_cpu_seconds_total', help: "the agent's own CPU time (user + system)", type: 'counter', values: [{ value: (cpu.user + cpu.system) / 1e6 }] },
    { name: 'pylens_agent_resident_memory_bytes', help: "the agent's resident memory", type: 'gauge', values: [{ value: process.memoryUsage.rss() }] },
  ];
}

/** Serve /metrics (from `collect`) and /healthz on host:port; port 0 picks one. */
export function serveMetrics(host: string, port: number, collect: () => Metric[]): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/metrics') {
      let body: string;
      try {
        body = renderMetrics([...collect(), ...selfMetrics()]);
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(e as Error).message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body);
    } else if (path === '/healthz') res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: /metrics or /healthz\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
