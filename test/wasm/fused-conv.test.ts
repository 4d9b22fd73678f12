// The forward convolution's two ways of forming B: the column matrix (im2col, then packing)
// and packing straight from the image (used for large images). Both must pack the same
// values, so their results are identical bit for bit, on every geometry: strides,
// dilations, padding, groups, odd widths whose 8-pixel slivers wrap across output rows,
// several threads.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { convOutputSize } from '../../engine/backends/backend.js';
import { wasmBuildDir } from '../../engine/backends/wasm/node.js';

interface Exports {
  heapBase(): number;
  conv2dWorkspace(kind: number, shape: number): number;
  conv2dForward(tid: number, nthreads: number, shape: number, input: number, weight: number, bias: number, output: number,
    ws: number, wsStride: number): void;
  convSetFusedIm2col(mode: number): void;
  convSetWinograd(mode: number): void;
}

const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
const module = new WebAssembly.Module(readFileSync(join(wasmBuildDir(), 'squall.wasm')));
const ex = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Exports;

let top = 0;
function alloc(bytes: number): number {
  const p = top;
  top = Math.ceil((top + bytes + 64) / 64) * 64;
  const need = Math.ceil(top / 65536) - memory.buffer.byteLength / 65536;
  if (need > 0) memory.grow(need);
  return p;
}

let seed = 7;
function rand(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32 - 0.5;
}

// batch, inC, inH, inW, outC, kH, kW, sH, sW, pH, pW, dH, dW, groups
const shapes: number[][] = [
  [2, 3, 17, 23, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1],
  [1, 3, 29, 31, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1],
  [3, 4, 13, 10, 6, 3, 2, 2, 1, 0, 1, 2, 1, 2],
  [1, 6, 9, 9, 6, 5, 5, 1, 1, 2, 2, 1, 1, 3],
  [2, 8, 11, 19, 4, 1, 3, 1, 1, 0, 1, 1, 2, 1],
  [1, 5, 8, 8, 7, 3, 3, 3, 3, 2, 2, 1, 1, 1],
  [2, 16, 15, 15, 16, 3, 3, 1, 1, 1, 1, 1, 1, 4],
];

t.test('fused and im2col forward convolutions agree bit for bit', (t) => {
  top = Math.ceil(ex.heapBase() / 64) * 64;
  ex.convSetWinograd(0); // the 3x3 stride-1 shapes here are about im2col, not Winograd
  for (const sh of shapes) {
    const [batch, inC, inH, inW, outC, kH, kW, sH, sW, pH, pW, dH, dW, groups] = sh as [number, number, number, number,
      number, number, number, number, number, number, number, number, number, number];
    const oh = convOutputSize(inH, kH, sH, pH, dH);
    const ow = convOutputSize(inW, kW, sW, pW, dW);
    const shape = alloc(68);
    new Int32Array(memory.buffer, shape, 17).set([...sh, oh, ow, 0]);
    const nIn = batch * inC * inH * inW;
    const nW = outC * (inC / groups) * kH * kW;
    const nOut = batch * outC * oh * ow;
    const x = alloc(nIn * 4);
    const w = alloc(nW * 4);
    const b = alloc(outC * 4);
    const f = new Float32Array(memory.buffer);
    for (let i = 0; i < nIn; i++) f[x / 4 + i] = rand();
    for (let i = 0; i < nW; i++) f[w / 4 + i] = rand();
    for (let i = 0; i < outC; i++) f[b / 4 + i] = rand();
    const wsBytes = Math.ceil(ex.conv2dWorkspace(0, shape) / 64) * 64;
    const results: Float32Array[] = [];
    for (const [mode, threads] of [[0, 1], [1, 1], [1, 3]] as const) {
      const y = alloc(nOut * 4);
      const ws = alloc(wsBytes * threads);
      ex.convSetFusedIm2col(mode);
      for (let tid = 0; tid < threads; tid++) ex.conv2dForward(tid, threads, shape, x, w, b, y, ws, wsBytes);
      results.push(new Float32Array(memory.buffer, y, nOut).slice());
    }
    const same = (a: Float32Array, c: Float32Array): boolean => a.every((v, i) => Object.is(v, c[i]));
    t.ok(same(results[0]!, results[1]!), `${sh.join(',')}: fused == im2col`);
    t.ok(same(results[0]!, results[2]!), `${sh.join(',')}: fused on 3 threads == im2col`);
  }
  ex.convSetFusedIm2col(-1);
  ex.convSetWinograd(-1);
  t.end();
});
