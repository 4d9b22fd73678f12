// Squall's normalisation of Fashion-MNIST against numpy's in fashion_lenet_train.py.
// Squall: meanStd accumulates in float64 (two passes) and normalise computes (x - mean) / std
// in float64 and rounds once to float32. numpy: xtr.mean() and xtr.std() of the float32 array
// are float32 (pairwise float32 sums), and (xtr - mean) / std rounds to float32 twice.
// Every pixel is one of the 256 values fround(v / 255), so comparing the 256 normalised values
// compares the two normalised data sets exactly.

export interface NormalisationCheck {
  squallMean: number;
  squallStd: number;
  numpyMean: number;
  numpyStd: number;
  /** max over the 256 pixel values of |squall - numpy| of the normalised value. */
  maxAbsDiff: number;
  /** max over the 256 pixel values of |numpy|: the scale of maxAbsDiff. */
  maxAbsValue: number;
}

export function compareNormalisation(squall: { mean: number; std: number }, numpy: { mean: number; std: number }): NormalisationCheck {
  const m32 = Math.fround(numpy.mean);
  const s32 = Math.fround(numpy.std);
  let maxAbsDiff = 0;
  let maxAbsValue = 0;
  for (let v = 0; v < 256; v++) {
    const x = Math.fround(v / 255);
    const ours = Math.fround((x - squall.mean) / squall.std);
    const theirs = Math.fround(Math.fround(x - m32) / s32);
    const d = Math.abs(ours - theirs);
    maxAbsDiff = Math.max(maxAbsDiff, d);
    maxAbsValue = Math.max(maxAbsValue, Math.abs(theirs));
  }
  return { squallMean: squall.mean, squallStd: squall.std, numpyMean: numpy.mean, numpyStd: numpy.std, maxAbsDiff, maxAbsValue };
}
