/**
 * The local store of `pylens serve` as a destination: each window is read back from its
 * pprof (pylens's metadata rides along in it, formats/carried-meta.ts) and kept with its
 * labels, so the workbench shows a service's windows over time.
 */
import { importProfile } from '../formats/index.ts';
import { InputFile } from '../formats/types.ts';
import { ProfileStore } from '../store/store.ts';
import { SendError, type AgentWindow, type Destination } from './window.ts';

export class StoreDestination implements Destination {
  readonly name = 'store';
  private store: ProfileStore;

  constructor(path: string) {
    this.store = ProfileStore.open(path, { create: true });
  }

  get path(): string {
    return this.store.path;
  }

  async send(w: AgentWindow): Promise<void> {
    let profile;
    try {
      profile = importProfile(new InputFile(w.pprof, `${w.id}.pb.gz`), 'pprof').profile;
    } catch (e) {
      throw new SendError(`window ${w.id} is not a readable pprof: ${(e as Error).message}`, false);
    }
    try {
      this.store.add(profile, { labels: { ...w.labels, service: w.service }, source: 'pylens agent', name: `${w.service} ${new Date(w.fromMs).toISOString()}` });
    } catch (e) {
      // a busy or locked database is worth another try; anything else is not
      throw new SendError(`store ${this.store.path}: ${(e as Error).message}`, /busy|locked/i.test((e as Error).message));
    }
  }

  close(): void {
    this.store.close();
  }
}
