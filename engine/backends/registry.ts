// Backends by name. Each loader throws a clear error when its build is missing, so a
// caller asking for one backend learns why it cannot have it; availableBackends() lists
// the ones that load here.
import type { Backend, BackendName } from './backend.js';
import { loadNativeBackend } from './native.js';
import { loadWasmBackend } from './wasm/node.js';

export class BackendUnavailableError extends Error {
  constructor(readonly backend: string, reason: string) {
    super(`backend '${backend}' is not available: ${reason}`);
    this.name = 'BackendUnavailableError';
  }
}

const loaders: Record<BackendName, () => Backend> = {
  native: loadNativeBackend,
  wasm: () => loadWasmBackend(),
};

const cache = new Map<BackendName, Backend>();

export const backendNames: readonly BackendName[] = ['native', 'wasm'];

export function isBackendName(name: string): name is BackendName {
  return (backendNames as readonly string[]).includes(name);
}

export function loadBackend(name: string): Backend {
  if (!isBackendName(name)) {
    throw new BackendUnavailableError(name, `unknown backend name; choose one of ${backendNames.join(', ')}`);
  }
  let backend = cache.get(name);
  if (!backend) {
    try {
      backend = loaders[name]();
    } catch (err) {
      if (err instanceof BackendUnavailableError) throw err;
      throw new BackendUnavailableError(name, (err as Error).message);
    }
    cache.set(name, backend);
  }
  return backend;
}

/** The backends that load on this machine, each with the reason the others do not. */
export function probeBackends(): { available: Backend[]; unavailable: { name: BackendName; reason: string }[] } {
  const available: Backend[] = [];
  const unavailable: { name: BackendName; reason: string }[] = [];
  for (const name of backendNames) {
    try {
      available.push(loadBackend(name));
    } catch (err) {
      unavailable.push({ name, reason: (err as Error).message });
    }
  }
  return { available, unavailable };
}

export function availableBackends(): Backend[] {
  return probeBackends().available;
}

/** The first backend that loads here, in preference order (native, then wasm), loading no other; undefined if none does. */
export function firstAvailableBackend(): Backend | undefined {
  for (const name of backendNames) {
    try {
      return loadBackend(name);
    } catch {
      // try the next one
    }
  }
  return undefined;
}
