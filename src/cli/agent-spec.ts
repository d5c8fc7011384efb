/** `pylens agent`'s options and help (the command itself, agent.ts, is loaded only when it runs). */
import type { CommandSpec } from './args.ts';

export const agentSpec: CommandSpec = {
  name: 'agent',
  summary: 'Always on: sample a host’s Python processes at a low rate and ship a pprof window per process to Grafana Pyroscope, Parca or the local store.',
  usage: 'pylens agent (--pid PID… | --match REGEX | --unit NAME | --cgroup PATH | --all-python) (--pyroscope URL | --parca URL | --store PATH) [options]',
  positionals: { min: 0, max: 0 },
  options: [
    { name: 'config', short: 'c', type: 'string', value: 'FILE', help: 'settings from a TOML file (same names as the flags; flags win)' },
    { name: 'pid', short: 'p', type: 'list', value: 'PID[,…]', help: 'these processes and their Python children (gunicorn, uvicorn, celery workers)' },
    { name: 'match', type: 'string', value: 'REGEX', help: 'Python processes whose command line matches' },
    { name: 'unit', type: 'string', value: 'NAME', help: 'Python processes of this systemd unit' },
    { name: 'cgroup', type: 'string', value: 'PATH', help: 'Python processes whose cgroup path starts with PATH (a container, a pod)' },
    { name: 'all-python', type: 'boolean', help: 'every CPython on the host' },
    { name: 'rate', short: 'r', type: 'number', value: 'HZ', help: 'samples per second per process (default 19)' },
    { name: 'wall', type: 'boolean', help: 'wall-clock time (every thread, running or waiting) instead of CPU' },
    { name: 'gil', type: 'boolean', help: 'only the thread holding the GIL' },
    { name: 'window', short: 'w', type: 'number', value: 'SECONDS', help: 'window length, aligned to the wall clock (default 10)' },
    { name: 'service', type: 'string', value: 'NAME', help: 'service_name of every target (default: each program’s name)' },
    { name: 'label', type: 'list', value: 'K=V[,…]', help: 'labels added to every window, e.g. --label env=prod,region=eu-1' },
    { name: 'pyroscope', type: 'string', value: 'URL', help: 'Grafana Pyroscope base URL (POST /ingest)' },
    { name: 'pyroscope-org', type: 'string', value: 'ID', help: 'X-Scope-OrgID (multi-tenant Pyroscope)' },
    { name: 'pyroscope-user', type: 'string', value: 'USER', help: 'basic auth user (password from $PYLENS_PYROSCOPE_PASSWORD)' },
    { name: 'pyroscope-token', type: 'string', value: 'TOKEN', help: 'bearer token (or $PYLENS_PYROSCOPE_TOKEN)' },
    { name: 'parca', type: 'string', value: 'URL', help: 'Parca: host:port (TLS), https://… or http://… (plaintext gRPC)' },
    { name: 'parca-token', type: 'string', value: 'TOKEN', help: 'bearer token (or $PYLENS_PARCA_TOKEN)' },
    { name: 'parca-insecure', type: 'boolean', help: 'plaintext gRPC (h2c) to a host:port' },
    { name: 'store', type: 'string', value: 'PATH', help: 'also keep every window in this profile store (pylens serve --store PATH)' },
    { name: 'queue', type: 'string', value: 'DIR', help: 'the on-disk queue (default $XDG_STATE_HOME/pylens/agent-queue)' },
    { name: 'queue-max-mb', type: 'number', value: 'MB', help: 'queue size limit; past it the oldest windows are dropped (default 256)' },
    { name: 'queue-max-age', type: 'string', value: 'AGE', help: 'windows older than this are dropped (default 6h)' },
    { name: 'metrics', type: 'string', value: 'HOST:PORT', help: '/metrics and /healthz (default 127.0.0.1:8375; "off" for none)' },
    { name: 'duration', short: 'd', type: 'number', value: 'SECONDS', help: 'stop after this long (default: until SIGTERM / Ctrl-C)' },
    { name: 'quiet', short: 'q', type: 'boolean', help: 'no log lines on stderr' },
  ],
  examples: [
    'pylens agent --match "gunicorn|uvicorn" --pyroscope http://pyroscope:4040 --label env=prod',
    'pylens agent --all-python --parca parca:7070 --parca-insecure',
    'pylens agent --pid 4242 --store ~/profiles.db -w 10     # then: pylens serve --store ~/profiles.db',
    'pylens agent --config /etc/pylens/agent.toml',
  ],
};

