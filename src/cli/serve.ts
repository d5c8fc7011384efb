/**
 * `pylens serve`: the workbench over the profile store (`../server/server.ts`) until Ctrl-C.
 */
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { openStore } from './store.ts';

export const serveSpec: CommandSpec = {
  name: 'serve',
  summary: 'The workbench: a local web app over the profile store — list, filter, open, compare, merge, upload.',
  usage: 'pylens serve [--store PATH] [--port N] [--host 127.0.0.1] [--token T]',
  positionals: { min: 0, max: 0 },
  options: [
    { name: 'store', type: 'string', value: 'PATH', help: `the store's database file (default $XDG_DATA_HOME/pylens/profiles.db, or $PYLENS_STORE)` },
    { name: 'port', type: 'number', value: 'N', help: 'the port (default 8374; 0 picks a free one)' },
    { name: 'host', type: 'string', value: 'ADDR', help: 'the address to listen on (default 127.0.0.1; any other needs a token)' },
    { name: 'token', type: 'string', value: 'T', help: 'the token every API request must send (X-Pylens-Token); generated for a non-loopback --host' },
    { name: 'max-upload', type: 'number', value: 'MB', help: 'the largest profile an upload may be (default 512)' },
  ],
  examples: ['pylens serve                       # http://127.0.0.1:8374/', 'pylens serve --host 0.0.0.0        # prints a URL with a generated token', 'pylens record --save -- python app.py && pylens serve'],
};

export async function runServe(args: Parsed): Promise<number> {
  const o = args.options;
  const port = (o.port as number | undefined) ?? 8374;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('serve', `--port must be 0–65535, got ${port}`);
  const host = (o.host as string | undefined) ?? '127.0.0.1';
  const token = o.token as string | undefined;
  if (token !== undefined && token.length < 8) throw new UsageError('serve', '--token must be at least 8 characters');
  const mb = (o['max-upload'] as number | undefined) ?? 512;
  if (!(mb > 0)) throw new UsageError('serve', `--max-upload must be a size in MB > 0, got ${mb}`);
  // the server's modules load only for this command
  const { serve, isLoopback } = await import('../server/server.ts');
  const store = openStore(args);
  let s;
  try {
    s = await serve({ store, host, port, ...(token !== undefined ? { token } : {}), maxUploadBytes: Math.round(mb * 1024 * 1024) });
  } catch (e) {
    store.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UsageError('serve', `port ${port} on ${host} is in use; pass --port N (0 picks a free one)`);
    if (code === 'EADDRNOTAVAIL') throw new UsageError('serve', `${host} is not an address of this machine`);
    throw e;
  }
  const { total } = store.list({ limit: 0 });
  process.stderr.write(`pylens serve: ${total} profile${total === 1 ? '' : 's'} in ${store.path}${!isLoopback(host) ? `; listening on ${host}: open the URL with its token` : ''}\n`);
  process.stdout.write(`${s.openUrl}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await s.close();
  store.close();
  return 0;
}
