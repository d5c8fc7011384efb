/**
 * The host environment recorded on every profile pylens captures or converts.
 * Reads /proc/cpuinfo and os facts; the reader is injectable for tests.
 */
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import type { Environment } from './profile.ts';
import { PYLENS_VERSION } from '../version.ts';

export interface HostReader {
  readFile(path: string): string | undefined;
  cpus(): number;
  release(): string;
  hostname(): string;
}

export const realHost: HostReader = {
  readFile(path) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  cpus: () => os.availableParallelism(),
  release: () => os.release(),
  hostname: () => os.hostname(),
};

export function hostEnvironment(host: HostReader = realHost): Environment {
  const cpuinfo = host.readFile('/proc/cpuinfo') ?? '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim();
  const osRelease = host.readFile('/etc/os-release') ?? '';
  const pretty = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(osRelease)?.[1];
  const env: Environment = {
    cpuCores: host.cpus(),
    kernel: `Linux ${host.release()}`,
    hostname: host.hostname(),
    pylensVersion: PYLENS_VERSION,
  };
  if (model) env.cpuModel = model;
  if (pretty) env.os = pretty;
  return env;
}
