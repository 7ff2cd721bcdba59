/*
 * SSIM maps and per-token SSIM on the CPU; see ssim.h for the definition and border policy.
 *
 * Each image is processed row by row: for every channel, the horizontal pass filters the
 * five moment rows (a, b, a^2, b^2, ab) of one reflected source row into a ring of 11
 * rows; the vertical pass combines the ring into the moments of one output row, whose
 * SSIM is summed over channels and handed to the sink (map row, token sums, or point
 * samples). Memory per thread is O(C * W), independent of H.
 */
#include "ssim.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#define R EG_SSIM_RADIUS
#define TAPS (2 * R + 1)
#define NMOM 5 /* E[a], E[b], E[a^2], E[b^2], E[ab] */

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

/* dst[x] = sum_k wt[k] * src[x + k] for x < w; src holds w + 2R samples. */
static void filter_row(const double* src, double* dst, int w, const double* wt)
{
    for (int x = 0; x < w; ++x) {
        const double* s = src + x + R;
        double acc = wt[R] * s[0];
        for (int d = 1; d <= R; ++d) acc += wt[R - d] * (s[-d] + s[d]);
        dst[x] = acc;
    }
}

/* Horizontal pass of one source row pair into one ring slot (NMOM rows of w). */
static void horizontal(const plan_t* p, const float* ra, const float* rb, double* pad,
                       double* slot)
{
    const int w = p->w, pw = w + 2 * R;
    double *pa = pad, *pb = pad + pw, *paa = pad + 2 * pw, *pbb = pad + 3 * pw,
           *pab = pad + 4 * pw;
    for (int q = 0; q < pw; ++q) {
        const double va = ra[p->col[q]], vb = rb[p->col[q]];
        pa[q] = va;
        pb[q] = vb;
        paa[q] = va * va;
        pbb[q] = vb * vb;
        pab[q] = va * vb;
    }
    for (int m = 0; m < NMOM; ++m) filter_row(pad + (size_t)m * pw, slot + (size_t)m * w, w, p->wt);
}

/* Vertical pass: moments of output row y from ring slots (y .. y + 2R) mod TAPS. */
static void vertical(const plan_t* p, const double* ring, int y, double* mom)
{
    const int w = p->w;
    const double* wt = p->wt;
    for (int m = 0; m < NMOM; ++m) {
        const double* r[TAPS];
        for (int k = 0; k < TAPS; ++k) r[k] = ring + ((size_t)((y + k) % TAPS) * NMOM + m) * w;
        double* dst = mom + (size_t)m * w;
        /* Two passes over x, so each loop reads few enough rows for the compiler to
           vectorise it (runtime alias checks) while keeping loads and stores low. */
        const double *c0 = r[R], *u1 = r[R - 1], *d1 = r[R + 1], *u2 = r[R - 2], *d2 = r[R + 2];
        for (int x = 0; x < w; ++x)
            dst[x] = wt[R] * c0[x] + wt[R - 1] * (u1[x] + d1[x]) + wt[R - 2] * (u2[x] + d2[x]);
        const double *u3 = r[R - 3], *d3 = r[R + 3], *u4 = r[R - 4], *d4 = r[R + 4],
                     *u5 = r[R - 5], *d5 = r[R + 5];
        for (int x = 0; x < w; ++x)
            dst[x] += wt[R - 3] * (u3[x] + d3[x]) + wt[R - 4] * (u4[x] + d4[x]) +
                      wt[R - 5] * (u5[x] + d5[x]);
    }
}

static void accumulate_ssim(const double* mom, int w, double* line)
{
    const double *ma = mom, *mb = mom + w, *maa = mom + 2 * w, *mbb = mom + 3 * w,
                 *mab = mom + 4 * w;
    for (int x = 0; x < w; ++x) {
        const double ua = ma[x], ub = mb[x];
        const double va = maa[x] - ua * ua, vb = mbb[x] - ub * ub, vab = mab[x] - ua * ub;
        line[x] += ((2.0 * ua * ub + C1) * (2.0 * vab + C2)) /
                   ((ua * ua + ub * ub + C1) * (va + vb + C2));
    }
}

/* Hands one finished map row (summed over channels) to the sink of the call. */
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
        for (int i = 0; i < p->gh; ++i) {
            if (p->prow[i] != y) continue;
            for (int j = 0; j < gw; ++j) out[(size_t)i * gw + j] = (float)(line[p->pcol[j]] / c);
        }
    }
}

static size_t workspace_len(const plan_t* p)
{
    const size_t w = (size_t)p->w;
    return (size_t)p->c * TAPS * NMOM * w /* ring per channel */
           + NMOM * (w + 2 * R)           /* padded moment rows */
           + NMOM * w                     /* vertical moments */
           + w                            /* channel-summed map row */
           + (size_t)p->gw;               /* token sums of one band */
}

/* One (c, h, w) image pair -> its sink output. */
static void process_image(const plan_t* p, const float* a, const float* b, double* ws, float* out)
{
    const int c = p->c, h = p->h, w = p->w;
    const size_t plane = (size_t)h * w;
    double* ring = ws;
    double* pad = ring + (size_t)c * TAPS * NMOM * w;
    double* mom = pad + (size_t)NMOM * (w + 2 * R);
    double* line = mom + (size_t)NMOM * w;
    double* tok = line + w;

    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) line[x] = 0.0;
        for (int ch = 0; ch < c; ++ch) {
            double* rch = ring + (size_t)ch * TAPS * NMOM * w;
            const float* ach = a + ch * plane;
            const float* bch = b + ch * plane;
            /* Output row y needs padded rows y .. y + 2R; earlier rows already sit in the ring. */
            for (int q = (y == 0 ? 0 : y + 2 * R); q <= y + 2 * R; ++q)
                horizontal(p, ach + (size_t)p->row[q] * w, bch + (size_t)p->row[q] * w, pad,
                           rch + (size_t)(q % TAPS) * NMOM * w);
            vertical(p, rch, y, mom);
            accumulate_ssim(mom, w, line);
        }
        emit_row(p, y, line, tok, out);
    }
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

    const size_t in_stride = (size_t)p->c * h * w;
    const size_t ws_len = workspace_len(p);
    int status = EG_OK;
#pragma omp parallel if (n > 1)
    {
        double* ws = malloc(sizeof(double) * ws_len);
        if (ws == NULL) {
#pragma omp atomic write
            status = EG_ERR_NOMEM;
        }
#pragma omp for schedule(dynamic)
        for (int i = 0; i < n; ++i)
            if (ws != NULL)
                process_image(p, a + i * in_stride, b + i * in_stride, ws, out + i * out_stride);
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
