// The WASI build of the kernels (build/wasm/squall-wasi.wasm).
//
// What it is for: the same kernels as squall.wasm, packaged as a self-contained WASI
// preview1 command module (memory exported, no imports but wasi_snapshot_preview1, no
// threads, no JavaScript host). Any WASI runtime can run it: `squall selftest --wasi` runs
// it under Node's node:wasi, and wasmtime / wasmer / WasmEdge / a browser WASI polyfill run
// it as it is (`wasmtime build/wasm/squall-wasi.wasm`). Its _start runs a kernel self-check
// (GEMM with every transpose, convolution forward (im2col and Winograd) and both backward
// passes, pooling)
// against plain float64 loops, prints one line per check through fd_write, and exits with
// status 0 when every check passes, 1 otherwise. That tells a user whether the kernels
// compute correctly on a runtime and CPU before wasm workers are trusted with training.
// The kernel exports are re-exported, so a WASI host can also call them directly.
export * from './index';
import { sgemm, sgemmWorkspace } from './gemm';
import { conv2dForward, conv2dBackwardData, conv2dBackwardFilter, conv2dWorkspace } from './conv';
import { maxPool2dForward } from './pool';
import { ConvShape, PoolShape } from './shapes';

let seed: u32 = 20261122;
function rnd(): f32 {
  seed = seed * 1664525 + 1013904223;
  return <f32>(seed >> 8) * <f32>(1.0 / 16777216.0) * 2 - 1;
}

function randomF32(n: i32): usize {
  const p = heap.alloc(<usize>n << 2);
  for (let i = 0; i < n; i++) store<f32>(p + (<usize>i << 2), rnd());
  return p;
}

function zerosF32(n: i32): usize {
  const p = heap.alloc(<usize>max(n, 1) << 2);
  memory.fill(p, 0, <usize>n << 2);
  return p;
}

function f(p: usize, i: i32): f64 {
  return <f64>load<f32>(p + (<usize>i << 2));
}

/** max |got - want| / max(1, max |want|) */
function relErr(got: usize, want: StaticArray<f64>): f64 {
  let diff: f64 = 0;
  let scale: f64 = 1;
  for (let i = 0; i < want.length; i++) {
    const w = unchecked(want[i]);
    const d = Math.abs(f(got, i) - w);
    diff = d > diff || d != d ? d : diff;
    scale = Math.max(scale, Math.abs(w));
  }
  return diff / scale;
}

/** x in the form 1.23e-7 (2 decimals). */
function sci(x: f64): string {
  if (x == 0) return '0';
  if (!isFinite(x)) return x.toString();
  let e = <i32>Math.floor(Math.log10(x));
  let m = Math.round(x / Math.pow(10, e) * 100) / 100;
  if (m >= 10) {
    m /= 10;
    e++;
  }
  let digits = (<i32>Math.round(m * 100)).toString();
  return digits.charAt(0) + '.' + digits.substr(1, 2) + 'e' + e.toString();
}

let failures = 0;
function report(name: string, err: f64): void {
  const ok = err <= 1e-4;
  if (!ok) failures++;
  console.log('wasi selftest: ' + (ok ? 'ok   ' : 'FAIL ') + name + ': max relative error ' + sci(err));
}

function checkGemm(transA: bool, transB: bool): void {
  const m = 37;
  const n = 41;
  const k = 129;
  const a = randomF32(m * k);
  const b = randomF32(k * n);
  const c = randomF32(m * n);
  const want = new StaticArray<f64>(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc: f64 = 0;
      for (let p = 0; p < k; p++) {
        acc += (transA ? f(a, p * m + i) : f(a, i * k + p)) * (transB ? f(b, j * k + p) : f(b, p * n + j));
      }
      want[i * n + j] = 1.5 * acc + 0.5 * f(c, i * n + j);
    }
  }
  const ws = heap.alloc(<usize>sgemmWorkspace(m, n, k, 1));
  sgemm(0, 1, transA, transB, m, n, k, 1.5, a, transA ? m : k, b, transB ? k : n, 0.5, c, n, ws, 0);
  report('sgemm ' + (transA ? 'T' : 'N') + (transB ? 'T' : 'N') + ' 37x41x129', relErr(c, want));
}

function convShape(): ConvShape {
  const s = changetype<ConvShape>(heap.alloc(offsetof<ConvShape>()));
  s.batch = 2; s.inC = 6; s.inH = 11; s.inW = 9; s.outC = 4; s.kH = 3; s.kW = 3;
  s.strideH = 2; s.strideW = 1; s.padH = 1; s.padW = 2; s.dilationH = 1; s.dilationW = 2; s.groups = 2;
  s.outH = (s.inH + 2 * s.padH - s.dilationH * (s.kH - 1) - 1) / s.strideH + 1;
  s.outW = (s.inW + 2 * s.padW - s.dilationW * (s.kW - 1) - 1) / s.strideW + 1;
  s.algo = 0;
  return s;
}

/** Calls fn(n, o, c, y, x, ky, kx, inIndex, weightIndex, outIndex) for every valid tap of the convolution. */
function forEachTap(s: ConvShape, fn: (x: i32, w: i32, o: i32) => void): void {
  const cin = s.inC / s.groups;
  const cout = s.outC / s.groups;
  for (let nb = 0; nb < s.batch; nb++) {
    for (let o = 0; o < s.outC; o++) {
      const g = o / cout;
      for (let y = 0; y < s.outH; y++) {
        for (let xo = 0; xo < s.outW; xo++) {
          for (let c = 0; c < cin; c++) {
            for (let ky = 0; ky < s.kH; ky++) {
              for (let kx = 0; kx < s.kW; kx++) {
                const iy = y * s.strideH - s.padH + ky * s.dilationH;
                const ix = xo * s.strideW - s.padW + kx * s.dilationW;
                if (iy < 0 || iy >= s.inH || ix < 0 || ix >= s.inW) continue;
                fn(((nb * s.inC + g * cin + c) * s.inH + iy) * s.inW + ix, ((o * cin + c) * s.kH + ky) * s.kW + kx,
                  ((nb * s.outC + o) * s.outH + y) * s.outW + xo);
              }
            }
          }
        }
      }
    }
  }
}

let tapA: usize = 0;
let tapB: usize = 0;
let tapOut: StaticArray<f64> = new StaticArray<f64>(0);

function checkConv(): void {
  const s = convShape();
  const sp = changetype<usize>(s);
  const inLen = s.batch * s.inC * s.inH * s.inW;
  const wLen = s.outC * (s.inC / s.groups) * s.kH * s.kW;
  const outLen = s.batch * s.outC * s.outH * s.outW;
  const x = randomF32(inLen);
  const w = randomF32(wLen);
  const bias = randomF32(s.outC);
  const gy = randomF32(outLen);

  // forward
  tapA = x;
  tapB = w;
  tapOut = new StaticArray<f64>(outLen);
  const ohw = s.outH * s.outW;
  for (let i = 0; i < outLen; i++) tapOut[i] = f(bias, (i / ohw) % s.outC);
  forEachTap(s, (xi: i32, wi: i32, oi: i32): void => {
    unchecked(tapOut[oi] += f(tapA, xi) * f(tapB, wi));
  });
  const y = zerosF32(outLen);
  let ws = heap.alloc(<usize>conv2dWorkspace(0, sp) + 64);
  conv2dForward(0, 1, sp, x, w, bias, y, ws, 0);
  report('conv2d forward (groups, stride, pad, dilation)', relErr(y, tapOut));

  // backward data: gx[xi] += gy[oi] * w[wi]
  tapA = gy;
  tapB = w;
  tapOut = new StaticArray<f64>(inLen);
  forEachTap(s, (xi: i32, wi: i32, oi: i32): void => {
    unchecked(tapOut[xi] += f(tapA, oi) * f(tapB, wi));
  });
  const gx = randomF32(inLen); // overwritten
  ws = heap.alloc(<usize>conv2dWorkspace(1, sp) + 64);
  conv2dBackwardData(0, 1, sp, gy, w, gx, ws, 0);
  report('conv2d backward data', relErr(gx, tapOut));

  // backward filter: gw[wi] += gy[oi] * x[xi] (accumulating onto gw0), gb += sum gy
  const gw = randomF32(wLen);
  const gb = randomF32(s.outC);
  tapA = gy;
  tapB = x;
  tapOut = new StaticArray<f64>(wLen);
  for (let i = 0; i < wLen; i++) tapOut[i] = f(gw, i);
  forEachTap(s, (xi: i32, wi: i32, oi: i32): void => {
    unchecked(tapOut[wi] += f(tapA, oi) * f(tapB, xi));
  });
  const wantB = new StaticArray<f64>(s.outC);
  for (let o = 0; o < s.outC; o++) wantB[o] = f(gb, o);
  for (let i = 0; i < outLen; i++) wantB[(i / ohw) % s.outC] += f(gy, i);
  ws = heap.alloc(<usize>conv2dWorkspace(2, sp) + 64);
  conv2dBackwardFilter(0, 1, sp, x, gy, gw, gb, ws, 0);
  report('conv2d backward filter (weight)', relErr(gw, tapOut));
  report('conv2d backward filter (bias)', relErr(gb, wantB));
}

/** The forward pass by Winograd F(2x2, 3x3) (forced), odd output sizes, with padding and without. */
function checkWinograd(pad: i32): void {
  const s = changetype<ConvShape>(heap.alloc(offsetof<ConvShape>()));
  s.batch = 2; s.inC = 9; s.inH = 7; s.inW = 10; s.outC = 6; s.kH = 3; s.kW = 3;
  s.strideH = 1; s.strideW = 1; s.padH = pad; s.padW = pad; s.dilationH = 1; s.dilationW = 1; s.groups = 1;
  s.outH = s.inH + 2 * pad - 2;
  s.outW = s.inW + 2 * pad - 2;
  s.algo = 2;
  const sp = changetype<usize>(s);
  const outLen = s.batch * s.outC * s.outH * s.outW;
  const x = randomF32(s.batch * s.inC * s.inH * s.inW);
  const w = randomF32(s.outC * s.inC * 9);
  const bias = randomF32(s.outC);
  tapA = x;
  tapB = w;
  tapOut = new StaticArray<f64>(outLen);
  const ohw = s.outH * s.outW;
  for (let i = 0; i < outLen; i++) tapOut[i] = f(bias, (i / ohw) % s.outC);
  forEachTap(s, (xi: i32, wi: i32, oi: i32): void => {
    unchecked(tapOut[oi] += f(tapA, xi) * f(tapB, wi));
  });
  const y = zerosF32(outLen);
  const ws = heap.alloc(<usize>conv2dWorkspace(0, sp) + 64);
  conv2dForward(0, 1, sp, x, w, bias, y, ws, 0);
  report('conv2d forward, Winograd F(2x2,3x3), pad ' + pad.toString(), relErr(y, tapOut));
}

function checkMaxPool(): void {
  // 3x3 stride 2 ceil mode, pad 1, on 2 x 3 x 10 x 7 (Caffe/GoogLeNet style).
  const s = changetype<PoolShape>(heap.alloc(offsetof<PoolShape>()));
  s.batch = 2; s.channels = 3; s.inH = 10; s.inW = 7; s.kH = 3; s.kW = 3; s.strideH = 2; s.strideW = 2;
  s.padH = 1; s.padW = 1; s.ceilMode = 1; s.countIncludePad = 0;
  s.outH = 6; s.outW = 4; // ceil((10 + 2 - 3) / 2) + 1 = 6 (last window starts at 9 < 10 + 1), ceil(6/2) + 1 = 4 (6 < 8)
  const planes = s.batch * s.channels;
  const x = randomF32(planes * s.inH * s.inW);
  const want = new StaticArray<f64>(planes * s.outH * s.outW);
  for (let pl = 0; pl < planes; pl++) {
    for (let oy = 0; oy < s.outH; oy++) {
      for (let ox = 0; ox < s.outW; ox++) {
        let best: f64 = -Infinity;
        for (let ky = 0; ky < s.kH; ky++) {
          for (let kx = 0; kx < s.kW; kx++) {
            const iy = oy * s.strideH - s.padH + ky;
            const ix = ox * s.strideW - s.padW + kx;
            if (iy < 0 || iy >= s.inH || ix < 0 || ix >= s.inW) continue;
            best = Math.max(best, f(x, (pl * s.inH + iy) * s.inW + ix));
          }
        }
        want[(pl * s.outH + oy) * s.outW + ox] = best;
      }
    }
  }
  const y = zerosF32(want.length);
  const idx = heap.alloc(<usize>want.length << 2);
  maxPool2dForward(changetype<usize>(s), x, y, idx);
  report('max pooling 3x3/2 pad 1, ceil mode', relErr(y, want));
}

checkGemm(false, false);
checkGemm(false, true);
checkGemm(true, false);
checkGemm(true, true);
checkConv();
checkWinograd(1);
checkWinograd(0);
checkMaxPool();
if (failures) {
  console.log('wasi selftest: FAILED (' + failures.toString() + ' checks)');
  process.exit(1);
}
console.log('wasi selftest: all kernels agree with the float64 reference');
