/*
 * SSIM maps and per-token SSIM on the CPU; see ssim.h for the definition and border policy.
 *
 * The batch is cut into work items (an image, a band of its output rows) that OpenMP
 * threads take in turn. An item walks its rows; for each row and channel, the horizontal
 * pass filters the five moment rows (a, b, a^2, b^2, ab) of the newly needed source row
 * into the channel's ring of 11 rows, and the vertical pass, fused with the SSIM formula,
 * turns the ring into that row's SSIM, summed over channels and handed to the sink (map
 * row, token sums or point samples). Point mode skips the rows and columns no token
 * samples. Memory per thread is O(C * W), independent of H.
 *
 * Bands keep both cores busy when a batch has few images; each costs a warm-up of 2R
 * source rows. Token sums never cross bands (a band holds whole token rows), so results
 * do not depend on the banding, the batch or the thread count.
 *
 * Precision: moments and the formula are double. float32 moments lose E[x^2] - E[x]^2 to
 * cancellation: on a smooth bright patch the variance error reaches ~1e-7, which C2 = 9e-4
 * turns into SSIM errors near 1e-4, ten times the tolerance against skimage (the test
 * "smooth bright patch" checks this case). Inputs are read as float32.
 */
#include "ssim.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define R EG_SSIM_RADIUS
#define TAPS (2 * R + 1)
#define NMOM 5 /* E[a], E[b], E[a^2], E[b^2], E[ab] */

/* Items per thread to aim for, and the fewest rows a band may have (warm-up <= 2R / 32). */
#define ITEMS_PER_THREAD 4
#define MIN_BAND_ROWS 32
#define CHUNK 64 /* columns per vertical pass: five moment rows of CHUNK stay in L1 */


/* skimage: C1 = (K1 * data_range)^2, C2 = (K2 * data_range)^2 with data_range 1. */
static const double C1 = 0.01 * 0.01;
static const double C2 = 0.03 * 0.03;

enum { SINK_MAP = -1 }; /* besides EG_TOKENS_MEAN and EG_TOKENS_POINT */

/* Everything about one call that all threads share, read-only. */
typedef struct {
    int c, h, w;
    double wt[TAPS];
    const int* col;  /* padded column q (0 <= q < w + 2R) -> source column of q - R */
    const int* row;  /* padded row q (0 <= q < h + 2R) -> source row of q - R */
    int sink;        /* SINK_MAP, EG_TOKENS_MEAN or EG_TOKENS_POINT */
    int gh, gw;
    const int* prow; /* point mode: map row sampled by each token row */
    const int* pcol; /* point mode: map column sampled by each token column */
    int band_rows;   /* output rows per work item */
    int bands;       /* work items per image */
} plan_t;

/* scipy.ndimage._gaussian_kernel1d(sigma=1.5, order=0, radius=5). */
static void gaussian_weights(double* wt)
{
    double sum = 0.0;
    for (int k = 0; k < TAPS; ++k) {
        const double x = k - R;
        wt[k] = exp(-0.5 / (EG_SSIM_SIGMA * EG_SSIM_SIGMA) * x * x);
        sum += wt[k];
    }
    for (int k = 0; k < TAPS; ++k) wt[k] /= sum;
}

static int border_index(int i, int n, int border)
{
    if (border == EG_BORDER_REPLICATE) return i < 0 ? 0 : (i >= n ? n - 1 : i);
    const int period = 2 * n; /* reflect: d c b a | a b c d | d c b a | ... */
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - 1 - i;
}

/* torch.nn.functional.interpolate(mode='nearest') source index, float32 arithmetic. */
static void nearest_index(int out_size, int in_size, int* idx)
{
    const float scale = (float)in_size / (float)out_size;
    for (int i = 0; i < out_size; ++i) {
        const float pos = (float)i * scale;
        const int v = (int)floorf(pos);
        idx[i] = v < in_size - 1 ? v : in_size - 1;
    }
}

/* Horizontal pass of one source row pair into one ring slot (NMOM rows of w). */
static inline void horizontal(const plan_t* p, const float* ra, const float* rb,
                              double* restrict pad, double* restrict slot)
{
    const int w = p->w, pw = w + 2 * R;
    double wt[TAPS];
    for (int k = 0; k < TAPS; ++k) wt[k] = p->wt[k];
    for (int q = 0; q < pw; ++q) {
        const double va = ra[p->col[q]], vb = rb[p->col[q]];
        pad[q] = va;
        pad[pw + q] = vb;
        pad[2 * pw + q] = va * va;
        pad[3 * pw + q] = vb * vb;
        pad[4 * pw + q] = va * vb;
    }
    for (int m = 0; m < NMOM; ++m) {
        const double* src = pad + (size_t)m * pw + R;
        double* dst = slot + (size_t)m * w;
        for (int x = 0; x < w; ++x) {
            double acc = wt[R] * src[x];
            for (int d = 1; d <= R; ++d) acc += wt[R - d] * (src[x - d] + src[x + d]);
            dst[x] = acc;
        }
    }
}

/* Adds to line[0 .. count) the SSIM at columns x0 .. x0 + count - 1 (count <= CHUNK) of
   the output row whose padded row y + k sits at ring + off[k]. */
static inline void ssim_span(const double* restrict ring, const size_t* off, size_t w, size_t x0,
                             int count, const double* wt, double* restrict line)
{
    double m[NMOM][CHUNK];
    for (int k = 0; k < NMOM; ++k) {
        const double* col = ring + k * w + x0;
        for (int i = 0; i < count; ++i) {
            double acc = wt[R] * col[off[R] + i];
            for (int d = 1; d <= R; ++d) acc += wt[R - d] * (col[off[R - d] + i] + col[off[R + d] + i]);
            m[k][i] = acc;
        }
    }
    for (int i = 0; i < count; ++i) {
        const double ua = m[0][i], ub = m[1][i];
        const double va = m[2][i] - ua * ua, vb = m[3][i] - ub * ub, vab = m[4][i] - ua * ub;
        line[i] += ((2.0 * ua * ub + C1) * (2.0 * vab + C2)) /
                   ((ua * ua + ub * ub + C1) * (va + vb + C2));
    }
}

/* Adds the SSIM of output row y (one channel's ring) to line: every column, or the
   sampled columns of point mode. */
static inline void ssim_row(const plan_t* p, const double* restrict ring, int y,
                            double* restrict line)
{
    const size_t w = (size_t)p->w;
    double wt[TAPS];
    size_t off[TAPS];
    for (int k = 0; k < TAPS; ++k) {
        wt[k] = p->wt[k];
        off[k] = (size_t)((y + k) % TAPS) * NMOM * w;
    }
    if (p->sink == EG_TOKENS_POINT) {
        for (int j = 0; j < p->gw; ++j) ssim_span(ring, off, w, (size_t)p->pcol[j], 1, wt, line + j);
    } else {
        for (size_t x = 0; x < w; x += CHUNK) {
            const int count = w - x < CHUNK ? (int)(w - x) : CHUNK;
            ssim_span(ring, off, w, x, count, wt, line + x);
        }
    }
}

/* Hands one finished row (summed over channels) to the sink of the call. */
static void emit_row(const plan_t* p, int y, const double* line, double* tok, float* out)
{
    const int c = p->c, w = p->w, gw = p->gw;
    if (p->sink == SINK_MAP) {
        for (int x = 0; x < w; ++x) out[(size_t)y * w + x] = (float)(line[x] / c);
    } else if (p->sink == EG_TOKENS_MEAN) {
        const int th = p->h / p->gh, tw = w / gw;
        if (y % th == 0)
            for (int j = 0; j < gw; ++j) tok[j] = 0.0;
        for (int j = 0; j < gw; ++j)
            for (int x = j * tw; x < (j + 1) * tw; ++x) tok[j] += line[x];
        if (y % th == th - 1) {
            const double count = (double)c * th * tw;
            for (int j = 0; j < gw; ++j) out[(size_t)(y / th) * gw + j] = (float)(tok[j] / count);
        }
    } else {
        for (int i = 0; i < p->gh; ++i)
            if (p->prow[i] == y)
                for (int j = 0; j < gw; ++j) out[(size_t)i * gw + j] = (float)(line[j] / c);
    }
}

static int row_needed(const plan_t* p, int y)
{
    if (p->sink != EG_TOKENS_POINT) return 1;
    for (int i = 0; i < p->gh; ++i)
        if (p->prow[i] == y) return 1;
    return 0;
}

static size_t workspace_len(const plan_t* p)
{
    const size_t w = (size_t)p->w;
    return (size_t)p->c * TAPS * NMOM * w /* ring per channel */
           + NMOM * (w + 2 * R)           /* padded moment rows */
           + w                            /* channel-summed row */
           + (size_t)p->gw;               /* token sums of one band */
}

/* Output rows [y0, y1) of one (c, h, w) image pair -> its sink output. */
EG_CPU_CLONES
static void process_item(const plan_t* p, const float* a, const float* b, int y0, int y1,
                         double* ws, float* out)
{
    const int c = p->c, h = p->h, w = p->w;
    const size_t plane = (size_t)h * w, ring_len = (size_t)TAPS * NMOM * w;
    double* ring = ws;
    double* pad = ring + (size_t)c * ring_len;
    double* line = pad + (size_t)NMOM * (w + 2 * R);
    double* tok = line + w;

    int next = y0; /* the first padded row the ring does not hold yet */
    for (int y = y0; y < y1; ++y) {
        if (!row_needed(p, y)) continue;
        memset(line, 0, sizeof(double) * w);
        /* Output row y reads padded rows y .. y + 2R; those below `next` are in the ring. */
        const int first = next > y ? next : y;
        for (int ch = 0; ch < c; ++ch) {
            double* rch = ring + (size_t)ch * ring_len;
            const float* ach = a + ch * plane;
            const float* bch = b + ch * plane;
            for (int q = first; q <= y + 2 * R; ++q)
                horizontal(p, ach + (size_t)p->row[q] * w, bch + (size_t)p->row[q] * w, pad,
                           rch + (size_t)(q % TAPS) * NMOM * w);
            ssim_row(p, rch, y, line);
        }
        next = y + 2 * R + 1;
        emit_row(p, y, line, tok, out);
    }
}

/* Bands per image: enough items for every thread, whole token rows, at least
   MIN_BAND_ROWS rows each. */
static void choose_bands(plan_t* p, int n)
{
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    const int align = p->sink == EG_TOKENS_MEAN ? p->h / p->gh : 1;
    int bands = 1;
    if (threads > 1 && n < ITEMS_PER_THREAD * threads) {
        bands = (ITEMS_PER_THREAD * threads + n - 1) / n;
        const int most = p->h / MIN_BAND_ROWS;
        if (bands > most) bands = most > 1 ? most : 1;
    }
    int rows = (p->h + bands - 1) / bands;
    rows = (rows + align - 1) / align * align;
    p->band_rows = rows;
    p->bands = (p->h + rows - 1) / rows;
}

static int run(plan_t* p, const float* a, const float* b, int n, int border, float* out,
               size_t out_stride)
{
    const int h = p->h, w = p->w;
    int* tables = malloc(sizeof(int) * ((size_t)w + 2 * R + h + 2 * R + p->gh + p->gw));
    if (tables == NULL) return EG_ERR_NOMEM;
    int* col = tables;
    int* row = col + w + 2 * R;
    int* prow = row + h + 2 * R;
    int* pcol = prow + p->gh;
    for (int q = 0; q < w + 2 * R; ++q) col[q] = border_index(q - R, w, border);
    for (int q = 0; q < h + 2 * R; ++q) row[q] = border_index(q - R, h, border);
    if (p->sink == EG_TOKENS_POINT) {
        nearest_index(p->gh, h, prow);
        nearest_index(p->gw, w, pcol);
    }
    p->col = col;
    p->row = row;
    p->prow = prow;
    p->pcol = pcol;
    gaussian_weights(p->wt);
    choose_bands(p, n);

    const size_t in_stride = (size_t)p->c * h * w;
    const size_t ws_len = workspace_len(p);
    const long long items = (long long)n * p->bands;
    int status = EG_OK;
#pragma omp parallel if (items > 1 && 8LL * n * (long long)in_stride >= EG_PARALLEL_MIN_WORK)
    {
        double* ws = malloc(sizeof(double) * ws_len);
        if (ws == NULL) {
#pragma omp atomic write
            status = EG_ERR_NOMEM;
        }
#pragma omp for schedule(dynamic)
        for (long long item = 0; item < items; ++item) {
            if (ws == NULL) continue;
            const int i = (int)(item / p->bands);
            const int y0 = (int)(item % p->bands) * p->band_rows;
            const int y1 = y0 + p->band_rows < h ? y0 + p->band_rows : h;
            process_item(p, a + i * in_stride, b + i * in_stride, y0, y1, ws, out + i * out_stride);
        }
        free(ws);
    }
    free(tables);
    return status;
}

/* Bounds keep 2 * size + 2R and the index tables within int. */
static int valid_common(const float* a, const float* b, int n, int c, int h, int w, int border,
                        const float* out)
{
    if (n < 0 || c < 1 || h < 1 || w < 1) return 0;
    if (h > INT_MAX / 4 || w > INT_MAX / 4) return 0;
    if (border != EG_BORDER_REFLECT && border != EG_BORDER_REPLICATE) return 0;
    return n == 0 || (a != NULL && b != NULL && out != NULL);
}

int eg_ssim_map(const float* a, const float* b, int n, int c, int h, int w, int border,
                float* out_map)
{
    if (!valid_common(a, b, n, c, h, w, border, out_map)) return EG_ERR_ARG;
    if (n == 0) return EG_OK;
    plan_t p = {0};
    p.c = c;
    p.h = h;
    p.w = w;
    p.sink = SINK_MAP;
    return run(&p, a, b, n, border, out_map, (size_t)h * w);
}

int eg_ssim_tokens(const float* a, const float* b, int n, int c, int h, int w, int border,
                   int grid_h, int grid_w, int mode, float* out_tokens)
{
    if (!valid_common(a, b, n, c, h, w, border, out_tokens)) return EG_ERR_ARG;
    if (grid_h < 1 || grid_w < 1) return EG_ERR_ARG;
    if (mode == EG_TOKENS_MEAN) {
        if (h % grid_h != 0 || w % grid_w != 0) return EG_ERR_ARG;
    } else if (mode == EG_TOKENS_POINT) {
        if (grid_h > h || grid_w > w) return EG_ERR_ARG;
    } else {
        return EG_ERR_ARG;
    }
    if (n == 0) return EG_OK;
    plan_t p = {0};
    p.c = c;
    p.h = h;
    p.w = w;
    p.sink = mode;
    p.gh = grid_h;
    p.gw = grid_w;
    return run(&p, a, b, n, border, out_tokens, (size_t)grid_h * grid_w);
}
