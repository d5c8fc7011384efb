/**
 * `pylens agent --config agent.toml`: the agent's settings as TOML (smol-toml), the same
 * names as its flags; a flag given on the command line wins. Every error names the file,
 * the line and the key (exit 2).
 *
 *   match = "gunicorn|uvicorn"      # or pid = [1234], all-python = true, unit = "app", cgroup = "/kubepods"
 *   rate = 19
 *   mode = "cpu"                    # or "wall"
 *   window = 10
 *   service = "orders"
 *   host = "node-7"                 # the host label (default: this machine's name)
 *   labels = { env = "prod", region = "eu-1" }
 *   queue = "/var/lib/pylens/queue"
 *   queue-max-mb = 256
 *   queue-max-age = "6h"
 *   metrics = "127.0.0.1:8375"
 *   store = "/var/lib/pylens/profiles.db"
 *   [pyroscope]
 *   url = "http://pyroscope:4040"
 *   org-id = "team-a"               # X-Scope-OrgID
 *   user = "…" ; password-file = "/run/secrets/pyroscope"   # or token-file / token
 *   [parca]
 *   url = "http://parca:7070"
 *   token-file = "/run/secrets/parca"
 *   insecure = true
 */
import { readFileSync } from 'node:fs';
import { ConfigError, lineOf, nearest } from './check-config.ts';

export interface AgentConfig {
  pid?: number[];
  match?: string;
  'all-python'?: boolean;
  unit?: string;
  cgroup?: string;
  rate?: number;
  mode?: 'cpu' | 'wall';
  gil?: boolean;
  window?: number;
  service?: string;
  host?: string;
  labels?: Record<string, string>;
  queue?: string;
  'queue-max-mb'?: number;
  'queue-max-age'?: string;
  metrics?: string;
  store?: string;
  pyroscope?: { url: string; 'org-id'?: string; user?: string; password?: string; 'password-file'?: string; token?: string; 'token-file'?: string };
  parca?: { url: string; token?: string; 'token-file'?: string; insecure?: boolean };
}

type Kind = 'string' | 'number' | 'boolean' | 'numbers' | 'table';
const TOP: Record<string, Kind> = {
  pid: 'numbers',
  match: 'string',
  'all-python': 'boolean',
  unit: 'string',
  cgroup: 'string',
  rate: 'number',
  mode: 'string',
  gil: 'boolean',
  window: 'number',
  service: 'string',
  host: 'string',
  labels: 'table',
  queue: 'string',
  'queue-max-mb': 'number',
  'queue-max-age': 'string',
  metrics: 'string',
  store: 'string',
  pyroscope: 'table',
  parca: 'table',
};
const PYROSCOPE: Record<string, Kind> = { url: 'string', 'org-id': 'string', user: 'string', password: 'string', 'password-file': 'string', token: 'string', 'token-file': 'string' };
const PARCA: Record<string, Kind> = { url: 'string', token: 'string', 'token-file': 'string', insecure: 'boolean' };

function kindOf(v: unknown): Kind | 'other' {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number' || typeof v === 'bigint') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (Array.isArray(v)) return v.every((x) => typeof x === 'number' || typeof x === 'bigint') ? 'numbers' : 'other';
  if (v && typeof v === 'object') return 'table';
  return 'other';
}

/** Read and check an agent config file. */
export async function readAgentConfig(path: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, 0, undefined, `cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'give the path of an agent.toml (pylens agent --help shows its keys)');
  }
  const { parse, TomlError } = await import('smol-toml');
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    const line = e instanceof TomlError ? e.line : 0;
    throw new ConfigError(path, line, undefined, `not valid TOML: ${(e as Error).message.split('\n')[0]}`, 'fix the TOML syntax at that line');
  }
  const lines = text.split('\n');
  const where = (key: string, section?: string): number => {
    const from = section ? (lineOf(lines, new RegExp(`^\\s*\\[${section}\\]`), 1) ?? 1) : 1;
    return lineOf(lines, new RegExp(`^\\s*["']?${key.replace(/[-]/g, '\\-')}["']?\\s*=`), from) ?? from;
  };
  const check = (obj: Record<string, unknown>, keys: Record<string, Kind>, section?: string) => {
    for (const [k, v] of Object.entries(obj)) {
      const want = keys[k];
      const name = section ? `${section}.${k}` : k;
      if (want === undefined) throw new ConfigError(path, where(k, section), name, `unknown key${nearest(k, Object.keys(keys))}`, `the keys are: ${Object.keys(keys).join(', ')}`);
      const got = kindOf(v);
      if (got !== want) throw new ConfigError(path, where(k, section), name, `must be ${want === 'numbers' ? 'a list of numbers' : want === 'table' ? 'a table' : `a ${want}`}, not ${got === 'other' ? typeof v : got}`, `e.g. ${name} = ${want === 'string' ? '"…"' : want === 'number' ? '10' : want === 'boolean' ? 'true' : want === 'numbers' ? '[1234]' : '{ … }'}`);
    }
  };
  check(doc, TOP);
  if (doc.pyroscope) {
    check(doc.pyroscope as Record<string, unknown>, PYROSCOPE, 'pyroscope');
    if (!(doc.pyroscope as { url?: string }).url) throw new ConfigError(path, where('pyroscope', undefined), 'pyroscope.url', 'missing', 'e.g. url = "http://pyroscope:4040"');
  }
  if (doc.parca) {
    check(doc.parca as Record<string, unknown>, PARCA, 'parca');
    if (!(doc.parca as { url?: string }).url) throw new ConfigError(path, where('parca', undefined), 'parca.url', 'missing', 'e.g. url = "http://parca:7070"');
  }
  if (doc.labels) {
    for (const [k, v] of Object.entries(doc.labels as Record<string, unknown>)) {
      if (typeof v !== 'string') throw new ConfigError(path, where('labels'), `labels.${k}`, `must be a string, not ${kindOf(v)}`, `e.g. labels = { ${k} = "…" }`);
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k)) throw new ConfigError(path, where('labels'), `labels.${k}`, 'not a valid label name', 'letters, digits and _ only, not starting with a digit');
    }
  }
  if (doc.mode !== undefined && doc.mode !== 'cpu' && doc.mode !== 'wall') throw new ConfigError(path, where('mode'), 'mode', `must be "cpu" or "wall", not "${doc.mode}"`, 'mode = "cpu"');
  if (doc.pid) doc.pid = (doc.pid as Array<number | bigint>).map(Number);
  for (const k of ['rate', 'window', 'queue-max-mb']) if (doc[k] !== undefined) doc[k] = Number(doc[k]);
  return doc as AgentConfig;
}
