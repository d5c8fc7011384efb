// PLACEHOLDER: being written now; replaced before this lands.
import { NOT_MINE, type Exporter, type Importer } from './types.ts';

export const bpftraceImporter: Importer = { id: 'bpftrace', extensions: ['.bt.txt', '.bpftrace'], detect: () => false, parse: () => NOT_MINE };
