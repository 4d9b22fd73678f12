// What bench/kernels asks of a child process that measures one WebAssembly implementation
// (Squall's wasm backend, TensorFlow.js's wasm backend): shapes in, one JSON line per result out.

export interface GemmShape { label: string; m: number; n: number; k: number }

/** A square-kernel, stride-1 convolution in the terms both implementations accept. */
export interface ConvRequest { label: string; batch: number; inC: number; hw: number; outC: number; k: number; pad: number }

export interface PeerRequest {
  threads: number[];
  gemm: GemmShape[];
  conv: ConvRequest[];
  /** Also measure each Squall flavour's own speed-up at this many threads over one thread, on these shapes. */
  scaling?: { threads: number; gemm: GemmShape[] };
}

export interface PeerResult {
  kind: 'gemm' | 'conv' | 'scaling' | 'info';
  label?: string;
  threads?: number;
  gflops?: number;
  [extra: string]: unknown;
}

export function convFlop(l: ConvRequest): number {
  const out = l.hw + 2 * l.pad - l.k + 1;
  return 2 * l.batch * l.outC * out * out * l.inC * l.k * l.k;
}

export function parseRequest(arg: string | undefined): PeerRequest {
  if (!arg) throw new Error('expected the request as a JSON argument');
  return JSON.parse(arg) as PeerRequest;
}
