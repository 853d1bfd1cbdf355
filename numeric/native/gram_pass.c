/* The one pass of numeric.one_pass.gram_one_pass over a float64 H, compiled on first use by
 * numeric.native (the C compiler of the machine, -O3 -march=native, no fast-math: IEEE
 * semantics, NaN and Inf propagate as in the NumPy pass).
 *
 * Why C: the pass is a product of H with the columns [1, y_hat, g_known], memory-bound in
 * principle; the BLAS routes NumPy has measure 1.8x (OpenBLAS, 4 columns in row blocks) to 5.5x
 * (MKL through torch) the time of reading H once, because a general GEMM with 3-4 columns is
 * not a streaming kernel.  Here each row of H is read once, contiguously, and its three dot
 * products are formed in one sweep.
 *
 * Per instance (H m x m row-major and symmetric; y_hat, b of length m; gamma, beta scalars):
 *     H1 = H 1,  Hy = H y_hat,  g = gamma Hy + beta H1 + b  (= H z + b, z = gamma y_hat + beta 1),
 *     s_i = sum_{j<i} H_ij g_j,  gg = sum_i g_i (2 s_i + H_ii g_i)  (= g^T H g for symmetric H).
 * Row i is read after rows 0..i-1, so g_j (j < i) is known; g starts at 0, so the dot product of
 * row i with g over all j is s_i (0 * H_ij for j >= i, as in the NumPy pass: a non-finite H_ij
 * there makes s_i NaN in both).
 */
#include <stddef.h>

#define LANES 8             /* doubles per vector: one AVX-512 register, two AVX2 or four NEON */
#define UNROLL 2            /* vectors per row step: two independent accumulator chains each */
typedef double vec __attribute__((vector_size(8 * LANES)));

static inline vec load(const double *p) { vec v; __builtin_memcpy(&v, p, sizeof v); return v; }

static inline double lane_sum(vec a)
{
    double s = 0.0;
    for (int k = 0; k < LANES; k++) s += a[k];
    return s;
}

static void gram_pass_one(ptrdiff_t m, const double *H, const double *y_hat, const double *b,
                          double gamma, double beta, double *H1, double *Hy, double *g, double *s,
                          double *gg_out)
{
    const ptrdiff_t step = LANES * UNROLL;
    double gg = 0.0;
    for (ptrdiff_t j = 0; j < m; j++) g[j] = 0.0;
    for (ptrdiff_t i = 0; i < m; i++) {
        const double *row = H + i * m;
        vec a1[UNROLL], ay[UNROLL], ag[UNROLL];
        for (int u = 0; u < UNROLL; u++) { a1[u] = (vec){0}; ay[u] = (vec){0}; ag[u] = (vec){0}; }
        ptrdiff_t j = 0;
        for (; j + step <= m; j += step) {
            for (int u = 0; u < UNROLL; u++) {
                vec h = load(row + j + LANES * u);
                a1[u] += h;
                ay[u] += h * load(y_hat + j + LANES * u);
                ag[u] += h * load(g + j + LANES * u);
            }
        }
        for (int u = 1; u < UNROLL; u++) { a1[0] += a1[u]; ay[0] += ay[u]; ag[0] += ag[u]; }
        double r1 = lane_sum(a1[0]), ry = lane_sum(ay[0]), rg = lane_sum(ag[0]);
        for (; j < m; j++) { r1 += row[j]; ry += row[j] * y_hat[j]; rg += row[j] * g[j]; }
        double gi = gamma * ry + beta * r1 + b[i];
        H1[i] = r1; Hy[i] = ry; s[i] = rg; g[i] = gi;
        gg += gi * (2.0 * rg + row[i] * gi);
    }
    *gg_out = gg;
}

/* n instances, each array C-contiguous: H (n, m, m); y_hat, b, H1, Hy, g, s (n, m); gamma,
 * beta, gg (n). */
void gram_pass(ptrdiff_t n, ptrdiff_t m, const double *H, const double *y_hat, const double *b,
               const double *gamma, const double *beta, double *H1, double *Hy, double *g,
               double *s, double *gg)
{
    for (ptrdiff_t q = 0; q < n; q++)
        gram_pass_one(m, H + q * m * m, y_hat + q * m, b + q * m, gamma[q], beta[q],
                      H1 + q * m, Hy + q * m, g + q * m, s + q * m, gg + q);
}
