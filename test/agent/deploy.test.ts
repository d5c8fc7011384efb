/**
 * deploy/agent/: `pylens agent` as a systemd service, a Kubernetes DaemonSet and a sidecar
 * hold what deploy/README.md says, without systemd running it or a cluster. The unit has
 * CAP_SYS_PTRACE alone, NoNewPrivileges, ProtectSystem=strict with the queue in its
 * StateDirectory, a restart policy that does not loop on a bad config, and passes
 * `systemd-analyze verify`; agent.toml and the ConfigMap's agent.toml are read by the agent's
 * own config reader; the manifests parse (PyYAML) with hostPID / shareProcessNamespace,
 * SYS_PTRACE the only capability, a queue volume under the configured queue, secrets as env,
 * /metrics on the probed port, and args the agent's own parser takes. That an unprivileged
 * user with CAP_SYS_PTRACE alone samples another user's CPython: agent-cli.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { readAgentConfig } from '../../src/cli/agent-config.ts';
import { agentSpec } from '../../src/cli/agent-spec.ts';
import { parseArgs } from '../../src/cli/args.ts';

const DIR = join(ROOT, 'deploy', 'agent');
const noYaml = spawnSync('python3', ['-c', 'import yaml'], { encoding: 'utf8' }).status !== 0 && "python3's yaml module (PyYAML) is not installed";
const noAnalyze = spawnSync('systemd-analyze', ['--version']).status !== 0 && 'systemd-analyze is not installed';

function loadYaml(file: string): any[] {
  const r = spawnSync('python3', ['-c', 'import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${file} does not parse: ${r.stderr}`);
  return JSON.parse(r.stdout) as any[];
}

/** the unit file as section → key → values (a key may repeat) */
function unit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (!l || l.startsWith('#') || l.startsWith(';')) continue;
    const s = /^\[(\w+)\]$/.exec(l);
    if (s) {
      section = s[1]!;
      out[section] = {};
      continue;
    }
    const eq = l.indexOf('=');
    assert.ok(eq > 0 && section, `not KEY=VALUE in a section: ${l}`);
    (out[section]![l.slice(0, eq)] ??= []).push(l.slice(eq + 1));
  }
  return out;
}

async function tomlOf(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-deploy-'));
  try {
    writeFileSync(join(dir, 'agent.toml'), text);
    return await readAgentConfig(join(dir, 'agent.toml'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** the container's command line as the agent's own parser reads it ($(VAR) left as written) */
function agentArgs(c: { command: string[]; args: string[] }) {
  assert.deepEqual(c.command, ['pylens']);
  assert.equal(c.args[0], 'agent');
  return parseArgs(agentSpec, c.args.slice(1));
}

function checkAgentContainer(c: any, spec: any, queue: string | undefined, metrics: string | undefined) {
  const sc = c.securityContext;
  assert.deepEqual(sc.capabilities.add, ['SYS_PTRACE'], 'SYS_PTRACE alone');
  assert.deepEqual(sc.capabilities.drop, ['ALL']);
  assert.equal(sc.runAsUser, 0, 'added capabilities reach root only');
  assert.equal(sc.allowPrivilegeEscalation, false);
  assert.notEqual(sc.privileged, true);
  assert.match(c.image, /^pylens:/);
  // the queue on a volume
  assert.ok(queue, 'a queue folder is set');
  const mount = c.volumeMounts.find((m: any) => queue.startsWith(`${m.mountPath}/`) || queue === m.mountPath);
  assert.ok(mount, `the queue ${queue} is on a volume`);
  const vol = spec.volumes.find((v: any) => v.name === mount.name);
  assert.ok(vol.hostPath || vol.emptyDir, 'a hostPath or an emptyDir');
  if (sc.readOnlyRootFilesystem) assert.ok(c.volumeMounts.some((m: any) => m.mountPath === '/tmp'), 'a writable /tmp beside a read-only root');
  // /metrics where the probe and the port say
  assert.ok(metrics, '--metrics set');
  const [host, port] = [metrics.slice(0, metrics.lastIndexOf(':')), Number(metrics.slice(metrics.lastIndexOf(':') + 1))];
  assert.equal(host, '0.0.0.0', 'the kubelet probes the pod IP: not 127.0.0.1');
  const p = c.ports.find((x: any) => x.containerPort === port);
  assert.ok(p, `a containerPort ${port}`);
  assert.equal(c.readinessProbe.httpGet.path, '/healthz');
  assert.ok(c.readinessProbe.httpGet.port === p.name || c.readinessProbe.httpGet.port === port);
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, 'requests and a memory limit');
  // secrets from a Secret, as env the agent reads
  const secretEnv = c.env.filter((e: any) => e.valueFrom?.secretKeyRef);
  assert.ok(secretEnv.length >= 1);
  for (const e of secretEnv) assert.match(e.name, /^PYLENS_(PYROSCOPE_PASSWORD|PYROSCOPE_TOKEN|PARCA_TOKEN)$/);
  // $(VAR) in args are env the container defines
  for (const a of c.args) for (const m of (a as string).matchAll(/\$\((\w+)\)/g)) assert.ok(c.env.some((e: any) => e.name === m[1]), `$(${m[1]}) is defined`);
}

test('deploy/agent/pylens-agent.service: CAP_SYS_PTRACE alone, NoNewPrivileges, ProtectSystem=strict with the queue in its StateDirectory, restarts but not on a bad config', async () => {
  const u = unit(readFileSync(join(DIR, 'pylens-agent.service'), 'utf8'));
  const s = u.Service!;
  assert.deepEqual(s.ExecStart, ['/usr/local/bin/pylens agent --config /etc/pylens/agent.toml']);
  assert.deepEqual(s.AmbientCapabilities, ['CAP_SYS_PTRACE']);
  assert.deepEqual(s.CapabilityBoundingSet, ['CAP_SYS_PTRACE']);
  assert.deepEqual(s.NoNewPrivileges, ['yes']);
  assert.deepEqual(s.ProtectSystem, ['strict']);
  assert.deepEqual(s.Restart, ['on-failure']);
  assert.deepEqual(s.RestartPreventExitStatus, ['2'], 'a usage error (exit 2) is not restarted in a loop');
  assert.equal(s.KillSignal?.[0] ?? 'SIGTERM', 'SIGTERM', 'SIGTERM flushes the queue');
  for (const k of ['ProtectProc', 'ProcSubset', 'PrivatePIDs', 'PrivateUsers']) assert.equal(s[k], undefined, `${k} would hide the other processes`);
  assert.deepEqual(u.Install!.WantedBy, ['multi-user.target']);
  // the example config's queue is in the StateDirectory (the one place ProtectSystem=strict leaves writable)
  const state = s.StateDirectory![0]!;
  const cfg = await readAgentConfig(join(DIR, 'agent.toml'));
  assert.ok(cfg.queue!.startsWith(`/var/lib/${state}/`), `queue ${cfg.queue} under /var/lib/${state}`);
  if (cfg.store) assert.ok(cfg.store.startsWith(`/var/lib/${state}/`));
});

test('deploy/agent/pylens-agent.service: systemd-analyze verify', { skip: noAnalyze }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-unit-'));
  try {
    // verify checks that ExecStart's program exists: pylens is not installed here
    const text = readFileSync(join(DIR, 'pylens-agent.service'), 'utf8').replace('/usr/local/bin/pylens', process.execPath);
    writeFileSync(join(dir, 'pylens-agent.service'), text);
    const r = spawnSync('systemd-analyze', ['verify', join(dir, 'pylens-agent.service')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'no warning');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('deploy/agent/agent.toml: the agent reads it; its match is a regular expression; it ships somewhere', async () => {
  const cfg = await readAgentConfig(join(DIR, 'agent.toml'));
  assert.doesNotThrow(() => new RegExp(cfg.match!));
  assert.ok(cfg.pyroscope?.url || cfg.parca?.url || cfg.store);
  assert.equal(cfg.metrics, '127.0.0.1:8375');
});

test('deploy/agent/daemonset.yaml: hostPID, SYS_PTRACE alone, the queue on a hostPath, secrets as env, /metrics probed on /healthz; the ConfigMap is an agent.toml the agent reads', { skip: noYaml }, async () => {
  const docs = loadYaml(join(DIR, 'daemonset.yaml'));
  assert.deepEqual(docs.map((d) => d.kind), ['ConfigMap', 'DaemonSet']);
  const [cm, ds] = docs;
  assert.equal(ds.apiVersion, 'apps/v1');
  for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) assert.equal(ds.spec.template.metadata.labels[k], v, 'the selector matches the template');
  const spec = ds.spec.template.spec;
  assert.equal(spec.hostPID, true);
  assert.notEqual(spec.hostNetwork, true);
  assert.equal(spec.containers.length, 1);
  const c = spec.containers[0];
  const args = agentArgs(c);
  const configPath = args.options.config as string;
  const cfgMount = c.volumeMounts.find((m: any) => configPath.startsWith(`${m.mountPath}/`));
  const cfgVol = spec.volumes.find((v: any) => v.name === cfgMount.name);
  assert.equal(cfgVol.configMap.name, cm.metadata.name, 'the config comes from the ConfigMap');
  const cfg = await tomlOf(cm.data[configPath.slice(cfgMount.mountPath.length + 1)]);
  assert.ok(cfg['all-python'] || cfg.match || cfg.cgroup, 'targets set');
  assert.ok(cfg.pyroscope?.url || cfg.parca?.url);
  const queueVol = spec.volumes.find((v: any) => v.hostPath);
  assert.ok(queueVol, 'the queue survives the pod: a hostPath');
  checkAgentContainer(c, spec, cfg.queue, cfg.metrics);
  assert.ok(ds.spec.template.spec.terminationGracePeriodSeconds >= 10, 'time for the SIGTERM flush (5 s)');
});

test('deploy/agent/sidecar.yaml: shareProcessNamespace, the agent beside the app with SYS_PTRACE alone, the queue on an emptyDir', { skip: noYaml }, () => {
  const docs = loadYaml(join(DIR, 'sidecar.yaml'));
  assert.deepEqual(docs.map((d) => d.kind), ['Deployment']);
  const d = docs[0];
  for (const [k, v] of Object.entries(d.spec.selector.matchLabels)) assert.equal(d.spec.template.metadata.labels[k], v);
  const spec = d.spec.template.spec;
  assert.equal(spec.shareProcessNamespace, true);
  assert.notEqual(spec.hostPID, true);
  const c = spec.containers.find((x: any) => x.name === 'pylens-agent');
  assert.ok(c && spec.containers.some((x: any) => x.name !== 'pylens-agent'), 'the app beside the agent');
  for (const x of spec.containers) assert.notEqual(x.securityContext?.privileged, true);
  const args = agentArgs(c);
  assert.ok(args.options['all-python'] || args.options.match || args.options.pid);
  assert.ok(args.options.pyroscope || args.options.parca);
  checkAgentContainer(c, spec, args.options.queue as string, args.options.metrics as string);
});

test('deploy/README.md: names the agent files and says what to check first', () => {
  const text = readFileSync(join(ROOT, 'deploy', 'README.md'), 'utf8');
  for (const f of ['agent/pylens-agent.service', 'agent/agent.toml', 'agent/daemonset.yaml', 'agent/sidecar.yaml']) assert.ok(text.includes(`\`${f}\``), f);
  assert.match(text, /pylens doctor/);
  assert.match(text, /\/metrics/);
  assert.match(text, /ptrace_scope/);
});
