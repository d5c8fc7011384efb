/**
 * deploy/: the recipes for containers hold what deploy/README.md says, without a Docker
 * daemon or a cluster. Each Kubernetes manifest parses (python3's PyYAML, skipped when it is
 * missing) into one object of the expected kind, with shareProcessNamespace and a pylens
 * container running as root with SYS_PTRACE as its only added capability and nothing
 * privileged; the Dockerfile installs the npm tarball on a Node 22+ Debian base with python3.
 * The namespace mechanics themselves are namespaces.test.ts's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';

const DEPLOY = join(ROOT, 'deploy');
const noYaml = spawnSync('python3', ['-c', 'import yaml'], { encoding: 'utf8' }).status !== 0 && "python3's yaml module (PyYAML) is not installed";

/** every YAML document of `file`, as JSON through python3 */
function loadYaml(file: string): unknown[] {
  const r = spawnSync('python3', ['-c', 'import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${file} does not parse: ${r.stderr}`);
  return JSON.parse(r.stdout) as unknown[];
}

interface Container {
  name: string;
  image: string;
  securityContext?: { privileged?: boolean; runAsUser?: number; allowPrivilegeEscalation?: boolean; capabilities?: { add?: string[]; drop?: string[] } };
}
interface PodSpec {
  shareProcessNamespace?: boolean;
  hostPID?: boolean;
  containers: Container[];
}

const manifests: Record<string, { kind: string; spec: (o: any) => PodSpec }> = {
  'debug-pod.yaml': { kind: 'Pod', spec: (o) => o.spec },
  'sidecar.yaml': { kind: 'Deployment', spec: (o) => o.spec.template.spec },
};

test('deploy/k8s: every manifest is listed here', () => {
  assert.deepEqual(readdirSync(join(DEPLOY, 'k8s')).sort(), Object.keys(manifests).sort());
});

for (const [file, want] of Object.entries(manifests)) {
  test(`deploy/k8s/${file}: a ${want.kind} sharing its PID namespace, pylens with SYS_PTRACE alone`, { skip: noYaml }, () => {
    const docs = loadYaml(join(DEPLOY, 'k8s', file));
    assert.equal(docs.length, 1);
    const o = docs[0] as { apiVersion: string; kind: string; metadata: { name: string } };
    assert.equal(o.kind, want.kind);
    assert.equal(o.apiVersion, want.kind === 'Pod' ? 'v1' : 'apps/v1');
    assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    if (want.kind === 'Deployment') {
      const d = o as unknown as { spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> } } } };
      for (const [k, v] of Object.entries(d.spec.selector.matchLabels)) assert.equal(d.spec.template.metadata.labels[k], v, 'the selector matches the template');
    }
    const spec = want.spec(o);
    assert.equal(spec.shareProcessNamespace, true);
    assert.notEqual(spec.hostPID, true);
    const pylens = spec.containers.find((c) => c.name === 'pylens');
    assert.ok(pylens, 'a container named pylens');
    assert.match(pylens.image, /^pylens:/);
    const sc = pylens.securityContext!;
    assert.deepEqual(sc.capabilities?.add, ['SYS_PTRACE']);
    assert.deepEqual(sc.capabilities?.drop, ['ALL']);
    assert.equal(sc.runAsUser, 0, 'added capabilities reach root only');
    assert.notEqual(sc.privileged, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    for (const c of spec.containers) assert.notEqual(c.securityContext?.privileged, true, `${c.name} is not privileged`);
    assert.ok(spec.containers.some((c) => c.name !== 'pylens'), 'the app beside it');
  });
}

test('deploy/Dockerfile: the npm tarball installed globally on a Node 22+ Debian base with python3', () => {
  const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  const from = /^FROM\s+node:(\d+)-(bookworm|bullseye|trixie)(-slim)?\s*$/m.exec(text);
  assert.ok(from && Number(from[1]) >= 22, `FROM node:22+ on Debian: ${from?.[0]}`);
  assert.match(text, /^COPY pylens-\*\.tgz /m);
  assert.match(text, /npm install -g \/tmp\/pylens-\*\.tgz/);
  assert.match(text, /apt-get install[^\n]*\bpython3\b/);
  assert.doesNotMatch(text, /--privileged|SYS_ADMIN/, 'no more than SYS_PTRACE anywhere');
  const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
  assert.match(engines, /^>=22(\.|$)/, `the base's Node ${from![1]} meets package.json's engines ${engines}`);
});

test('deploy/README.md: every file named exists, the namespace test is named', () => {
  const text = readFileSync(join(DEPLOY, 'README.md'), 'utf8');
  const named = [...text.matchAll(/`([\w./-]+\.(?:yaml|ts)|Dockerfile)`/g)].map((m) => m[1]!);
  assert.ok(named.length >= 5, `files named: ${named}`);
  for (const f of named) {
    const path = f.startsWith('test/') ? join(ROOT, f) : join(DEPLOY, f);
    assert.doesNotThrow(() => readFileSync(path), `${f} (${path})`);
  }
  assert.match(text, /test\/launch\/namespaces\.test\.ts/);
});
