// PLACEHOLDER: being written now; replaced before this lands.
import { NOT_MINE, type Exporter, type Importer } from './types.ts';

export const pprofImporter: Importer = { id: 'pprof', extensions: ['.pb.gz', '.pprof', '.pb'], detect: () => false, parse: () => NOT_MINE };
export const pprofExporter: Exporter = { id: 'pprof', extension: '.pb.gz', lossless: false, write: () => { throw new Error('not written yet'); } };
