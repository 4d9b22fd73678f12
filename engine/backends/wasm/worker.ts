// The body of a wasm backend worker thread under Node (worker_threads): everything it
// does is in core.ts's runWorker, which a browser worker calls the same way.
import { workerData } from 'node:worker_threads';
import { runWorker, type WorkerInit } from './core.js';

runWorker(workerData as WorkerInit);
