// Softmax and log-softmax over the last dimension, forward and backward, against the
// float64 reference, including rows of one column, long rows, and logits large enough to
// overflow exp() without the max subtraction; backward also against finite differences.
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import * as ref from './reference.js';
import { Rng, close, closeToFD, dot, filled, finiteDiff, forEachBackend, randArray, sampleIndices, toF64, type Tap } from './util.js';

const shapes: [number, number][] = [[1, 1], [4, 1], [1, 3], [3, 7], [17, 33], [5, 1000], [64, 10], [2, 4099]];

function check(t: Tap, be: Backend, rng: Rng, rows: number, cols: number, lo: number, hi: number): void {
  const n = rows * cols;
  const name = `rows=${rows} cols=${cols} logits in [${lo}, ${hi})`;
  const x = randArray(rng, n, lo, hi);
  const y = filled(n, NaN);
  be.softmaxForward(rows, cols, x, y);
  close(t, y, ref.softmax(rows, cols, x), `softmax forward ${name}`);
  const ly = filled(n, NaN);
  be.logSoftmaxForward(rows, cols, x, ly);
  close(t, ly, ref.logSoftmax(rows, cols, x), `log-softmax forward ${name}`);
  const g = randArray(rng, n);
  const gi = filled(n, NaN);
  be.softmaxBackward(rows, cols, y, g, gi);
  close(t, gi, ref.softmaxBackward(rows, cols, y, g), `softmax backward ${name}`);
  const lgi = filled(n, NaN);
  be.logSoftmaxBackward(rows, cols, ly, g, lgi);
  close(t, lgi, ref.logSoftmaxBackward(rows, cols, ly, g), `log-softmax backward ${name}`);
}

function checkFD(t: Tap, be: Backend, rng: Rng, rows: number, cols: number): void {
  const n = rows * cols;
  const x = randArray(rng, n, -3, 3);
  const g = randArray(rng, n);
  const x64 = toF64(x);
  const idx = sampleIndices(rng, n, 40);
  const y = new Float32Array(n);
  be.softmaxForward(rows, cols, x, y);
  const gi = new Float32Array(n);
  be.softmaxBackward(rows, cols, y, g, gi);
  closeToFD(t, gi, finiteDiff((xx) => dot(g, ref.softmax(rows, cols, xx)), x64, 1e-6, idx), `softmax backward rows=${rows} cols=${cols}`);
  const ly = new Float32Array(n);
  be.logSoftmaxForward(rows, cols, x, ly);
  const lgi = new Float32Array(n);
  be.logSoftmaxBackward(rows, cols, ly, g, lgi);
  closeToFD(t, lgi, finiteDiff((xx) => dot(g, ref.logSoftmax(rows, cols, xx)), x64, 1e-6, idx), `log-softmax backward rows=${rows} cols=${cols}`);
}

forEachBackend(t, async (t, be) => {
  const rng = new Rng(6);
  t.test('forward and backward', (t) => {
    for (const [rows, cols] of shapes) check(t, be, rng, rows, cols, -3, 3);
    t.end();
  });
  t.test('large logits (exp overflows without the max subtraction)', (t) => {
    for (const [rows, cols] of [[3, 7], [5, 1000]] as const) {
      check(t, be, rng, rows, cols, 80, 120);
      check(t, be, rng, rows, cols, -200, 100);
    }
    t.end();
  });
  t.test('backward vs finite differences', (t) => {
    for (const [rows, cols] of [[1, 5], [3, 7], [4, 33]] as const) checkFD(t, be, rng, rows, cols);
    t.end();
  });
  t.test('rows are independent and sum to one', (t) => {
    const rows = 9, cols = 13;
    const x = randArray(rng, rows * cols, -5, 5);
    const y = new Float32Array(rows * cols);
    be.softmaxForward(rows, cols, x, y);
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += y[r * cols + c]!;
      worst = Math.max(worst, Math.abs(s - 1));
    }
    t.ok(worst < 1e-5, `every row sums to 1 (worst |sum - 1| = ${worst.toExponential(2)})`);
    t.end();
  });
});
