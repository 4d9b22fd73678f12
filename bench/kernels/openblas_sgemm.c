// The side-by-side reference: OpenBLAS's cblas_sgemm called directly, no Squall code in
// the path. Prints one JSON line per shape: the median GFLOP/s over timed repetitions and
// the kernel OpenBLAS ran (openblas_get_corename), which depends on OPENBLAS_CORETYPE.
// usage: openblas_sgemm THREADS M N K [M N K ...]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { RowMajor = 101, NoTrans = 111 };
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
void openblas_set_num_threads(int n);
char *openblas_get_corename(void);
char *openblas_get_config(void);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

int main(int argc, char **argv) {
  if (argc < 5 || (argc - 2) % 3 != 0) {
    fprintf(stderr, "usage: %s THREADS M N K [M N K ...]\n", argv[0]);
    return 2;
  }
  int threads = atoi(argv[1]);
  openblas_set_num_threads(threads);
  for (int s = 2; s + 2 < argc; s += 3) {
    int m = atoi(argv[s]), n = atoi(argv[s + 1]), k = atoi(argv[s + 2]);
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
    for (long i = 0; i < (long)m * k; i++) a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (long i = 0; i < (long)k * n; i++) b[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
    memset(c, 0, sizeof(float) * m * n);
    double flop = 2.0 * m * n * k;
    // Repeat until ~0.3 s of samples, at least 5, after a warm-up call.
    cblas_sgemm(RowMajor, NoTrans, NoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    double samples[200];
    int count = 0;
    double start = now();
    while (count < 200 && (count < 5 || now() - start < 0.3)) {
      double t0 = now();
      cblas_sgemm(RowMajor, NoTrans, NoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
      samples[count++] = now() - t0;
    }
    qsort(samples, count, sizeof(double), cmp);
    double med = samples[count / 2];
    printf("{\"m\":%d,\"n\":%d,\"k\":%d,\"threads\":%d,\"gflops\":%.3f,\"medianSeconds\":%.9f,\"samples\":%d,\"core\":\"%s\",\"config\":\"%s\"}\n",
           m, n, k, threads, flop / med * 1e-9, med, count, openblas_get_corename(), openblas_get_config());
    free(a); free(b); free(c);
  }
  return 0;
}
