"""numba kernels of the exact time-blocked simulator (docs/performance.md).

Imported only through `synsim.blocked.numba_kernels()`, which returns None when numba is missing
(the pure-array fallback in `synsim.blocked` then runs the same schedule). Every kernel is
`@njit(cache=True)`: the first call in a fresh environment compiles (a few seconds, reported by the
benchmark), later processes load the machine code from numba's cache beside this file.

Bitwise contract with `NGAIModel.step` (docs/model.md §5.1): each kernel performs, per synapse and
step, the very floating-point operations of the step in the same order and with the same constants
(`StepConstants`), and never lets LLVM contract a*b + c into an FMA (fastmath is off). Loops are
reordered only across independent synapses (clamp) or independent neurons (LIF), and sums over the
synapses of one neuron run in increasing synapse index, as `np.bincount` does in the step.

Index ranges of the hot loops are unsigned so that numba drops its negative-index wrap-around and
LLVM vectorises them (AVX2 / AVX-512).

The kernels are serial and release the GIL (`nogil`); `synsim.blocked` runs blocks on a pool of
Python threads. No OpenMP runtime is involved, so they are safe to call from several threads at
once (Dask) and in forked processes, and they compile faster than `prange` loops.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_OPTS = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_OPTS)
def source_chunk(r_a, d_a, r_n, d_n, n0, T, rel_ptr, rel_src, rel_amp,
                 a_ampa_rise, a_ampa_decay, a_nmda_rise, a_nmda_decay, rise_coef, decay_coef,
                 eta_ampa, eta_nmda, XT, need_s, SAT, SNT):
    """Advance the presynaptic traces over steps n0 .. n0+T-1, writing per source and step the
    calcium drive XT[s, t] (and the open fractions SAT, SNT when need_s) at t_n, before the
    step's decay and releases (docs/model.md §5.1 steps 5, 6, 8). rel_ptr[t] .. rel_ptr[t+1]
    index the releases of step n0 + t in the order the step adds them. One source at a time, so
    that its row of each table is written contiguously; its releases are added one by one in
    that order (a sum of amplitudes would round differently)."""
    ns = r_a.size
    k0 = rel_ptr[0]
    k1 = rel_ptr[T]
    # the chunk's releases grouped by source, in step order within a source (counting sort)
    start = np.zeros(ns + 1, np.int64)
    for k in range(k0, k1):
        start[rel_src[k] + 1] += 1
    for s in range(ns):
        start[s + 1] += start[s]
    fill = start[:ns].copy()
    which = np.empty(k1 - k0, np.int64)
    when = np.empty(k1 - k0, np.int64)
    t = 0
    for k in range(k0, k1):
        while rel_ptr[t + 1] <= k:
            t += 1
        s = rel_src[k]
        which[fill[s]] = k
        when[fill[s]] = t
        fill[s] += 1
    for s in range(ns):
        ra = r_a[s]
        da = d_a[s]
        rn = r_n[s]
        dn = d_n[s]
        q = start[s]
        q1 = start[s + 1]
        for t in range(T):
            XT[s, t] = decay_coef * dn + rise_coef * rn
            if need_s:
                SAT[s, t] = eta_ampa * (da - ra)
                SNT[s, t] = eta_nmda * (dn - rn)
            ra = ra * a_ampa_rise
            da = da * a_ampa_decay
            rn = rn * a_nmda_rise
            dn = dn * a_nmda_decay
            while q < q1 and when[q] == t:
                a = rel_amp[which[q]]
                ra = ra + a
                da = da + a
                rn = rn + a
                dn = dn + a
                q += 1
        r_a[s] = ra
        d_a[s] = da
        r_n[s] = rn
        d_n[s] = dn


@njit(**_OPTS)
def bap_chunk(bap, T, spk_ptr, spk_post, a_bap, bap_amplitude, bap_tab, spk, spk_any):
    """Clamped neurons: b at t_n for the T steps of a chunk (bap_tab[p, t]), and the imposed
    spikes as a (post, step) table; b then decays and jumps as in the step. One neuron at a
    time (rows written contiguously)."""
    npost = bap.size
    for p in range(npost):
        for t in range(T):
            spk[p, t] = 0
    for t in range(T):
        spk_any[t] = 0
        for k in range(spk_ptr[t], spk_ptr[t + 1]):
            spk[spk_post[k], t] = 1
            spk_any[t] = 1
    for p in range(npost):
        b = bap[p]
        for t in range(T):
            bap_tab[p, t] = b
            b = b * a_bap
            if spk[p, t]:
                b = b + bap_amplitude
        bap[p] = b


@njit(**_OPTS)
def block_used(active, T, b_cand, b_rest, spk_any, BT):
    """The B_n the step uses in clamp mode: B(V + b) recomputed while a bAP may still matter,
    else the cached value, which equals B(V) (NGAIModel._block_now). Returns `active` after
    the chunk. Tables are walked row by row (one neuron at a time)."""
    npost = b_rest.size
    same = np.ones(T, np.bool_)  # B(V + b_n) == B(V) for every neuron
    for p in range(npost):
        for t in range(T):
            if b_cand[p, t] != b_rest[p]:
                same[t] = False
    use = np.empty(T, np.bool_)  # step t recomputes B (NGAIModel._bap_active)
    for t in range(T):
        use[t] = active
        if active:
            active = not same[t]
        if spk_any[t]:
            active = True
    for p in range(npost):
        for t in range(T):
            BT[p, t] = b_cand[p, t] if use[t] else b_rest[p]
    return active


@njit(**_OPTS)
def _record(row, lo, hi, mem_j, mem_col, lc, lr, lf, rec_c, rec_r, rec_f, want_c, want_r,
            want_f):
    """Row `row` of the recording: the recorded synapses lo..hi-1 (local index mem_j, column
    mem_col) of calcium, rho and the functional flag, as asked."""
    for q in range(lo, hi):
        jj = mem_j[q]
        col = mem_col[q]
        if want_c:
            rec_c[row, col] = lc[jj]
        if want_r:
            rec_r[row, col] = lr[jj]
        if want_f:
            rec_f[row, col] = lf[jj]


@njit(**_OPTS)
def _lower_bound(a, x):
    """First index i with a[i] >= x in the sorted array a (np.searchsorted, left)."""
    lo, hi = 0, a.size
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(**_OPTS)
def _local_order(src, n_src):
    """Stable order of a block's synapses by source (counting sort). Where sources are too many
    to count (nearly all distinct within the block) the block keeps its order: any run of equal
    consecutive sources is still one segment, so only the speed differs."""
    m = src.size
    order = np.empty(m, np.int64)
    if n_src > 4 * m:
        for j in range(m):
            order[j] = j
        return order
    counts = np.zeros(n_src + 1, np.int64)
    for j in range(m):
        counts[src[j] + 1] += 1
    for s in range(n_src):
        counts[s + 1] += counts[s]
    for j in range(m):
        s = src[j]
        order[counts[s]] = j
        counts[s] += 1
    return order


@njit(**_OPTS)
def _members(rec_sorted, rec_cols, lo_syn, hi_syn, position):
    """Recorded synapses in [lo_syn, hi_syn): their scratch positions and buffer columns,
    sorted by position (counting sort)."""
    lo = _lower_bound(rec_sorted, lo_syn)
    hi = _lower_bound(rec_sorted, hi_syn)
    m = position.size
    counts = np.zeros(m + 1, np.int64)
    for q in range(lo, hi):
        counts[position[rec_sorted[q] - lo_syn] + 1] += 1
    for j in range(m):
        counts[j + 1] += counts[j]
    mem_j = np.empty(hi - lo, np.int64)
    mem_col = np.empty(hi - lo, np.int64)
    for q in range(lo, hi):
        j = position[rec_sorted[q] - lo_syn]
        mem_j[counts[j]] = j
        mem_col[counts[j]] = rec_cols[q]
        counts[j] += 1
    return mem_j, mem_col


@njit(**_OPTS)
def clamp_chunk(c, rho, syn_source, syn_post, n_src, block_size, blocks,
                XT, T, n0, quiet, b_rest, BT, spk, spk_any,
                a_ca, rho_inf, gain_p, gain_d, theta_p, theta_d, rho_sil, c_post,
                rec_sorted, rec_cols, rec_rows, rec_c, rec_r, rec_f, want_c, want_r, want_f,
                ev_step, ev_syn, ev_kind, ev_count):
    """Clamped circuit, T steps from n0, for the synapse blocks `blocks`: each block of synapses
    is copied to scratch sorted by source; every run of synapses sharing a source is then
    advanced through all T steps while it sits in L1, with that source's drive broadcast (no
    gather) and B_n hoisted when no bAP is active (`quiet`). Events are written per block; a block
    whose events exceed the buffer (ev_count > capacity) leaves its state untouched, so the
    caller reruns it with more room."""
    n = c.size
    cap = ev_step.shape[1]
    has_rec = rec_sorted.size > 0 and (want_c or want_r or want_f)
    for bi in range(blocks.size):
        s0 = blocks[bi] * block_size
        s1 = min(n, s0 + block_size)
        m = s1 - s0
        order = _local_order(syn_source[s0:s1], n_src)
        lc = np.empty(m)
        lr = np.empty(m)
        lb = np.empty(m)
        lf = np.empty(m, np.bool_)
        lp = np.empty(m, np.int64)
        ls = np.empty(m, np.int64)
        for j in range(m):
            i = s0 + order[j]
            lc[j] = c[i]
            lr[j] = rho[i]
            lf[j] = lr[j] >= rho_sil  # the functional flag is a function of rho
            lp[j] = syn_post[i]
            ls[j] = syn_source[i]
            lb[j] = b_rest[lp[j]]
        if has_rec:
            position = np.empty(m, np.int64)
            for j in range(m):
                position[order[j]] = j
            mem_j, mem_col = _members(rec_sorted, rec_cols, s0, s1, position)
        else:
            mem_j = np.empty(0, np.int64)
            mem_col = np.empty(0, np.int64)
        evc = 0
        mp = 0
        j0 = 0
        while j0 < m:
            s = ls[j0]
            j1 = j0 + 1
            while j1 < m and ls[j1] == s:
                j1 += 1
            mq = mp
            while mq < mem_j.size and mem_j[mq] < j1:
                mq += 1
            u0 = np.uint64(j0)
            u1 = np.uint64(j1)
            for t in range(T):
                if mq > mp:
                    row = rec_rows[t]
                    if row >= 0:
                        _record(row, mp, mq, mem_j, mem_col, lc, lr, lf, rec_c, rec_r, rec_f,
                                want_c, want_r, want_f)
                x = XT[s, t]
                if not quiet:  # B_n of each synapse's neuron at this step (bAPs)
                    for j in range(u0, u1):
                        lb[j] = BT[lp[j], t]
                flipped = False  # lf[j] == (lr[j] >= rho_sil) always: compare old and new rho
                for j in range(u0, u1):  # the hot loop: rho from c_n, then c given B_n
                    cc = lc[j]
                    r0 = lr[j]
                    r = (r0 + (rho_inf - r0) * gain_p if cc > theta_p
                         else (r0 - r0 * gain_d if cc > theta_d else r0))
                    lr[j] = r
                    lc[j] = a_ca * cc + x * lb[j]
                    flipped |= (r >= rho_sil) != (r0 >= rho_sil)
                if not quiet and spk_any[t]:  # imposed spikes: c_post
                    for j in range(u0, u1):
                        if spk[lp[j], t]:
                            lc[j] = lc[j] + c_post
                if flipped:
                    for j in range(j0, j1):
                        now = lr[j] >= rho_sil
                        if now != lf[j]:
                            lf[j] = now
                            if evc < cap:
                                ev_step[bi, evc] = n0 + t + 1
                                ev_syn[bi, evc] = s0 + order[j]
                                ev_kind[bi, evc] = 1 if now else -1
                            evc += 1
            mp = mq
            j0 = j1
        ev_count[bi] = evc
        if evc <= cap:
            for j in range(m):
                i = s0 + order[j]
                c[i] = lc[j]
                rho[i] = lr[j]


@njit(**_OPTS)
def neuron_chunk(c, rho, syn_source, post_ptr, post_syn, nblk_ptr, blocks,
                 lif, v, bap, last_spike, i_ext,
                 XT, SAT, SNT, T, n0, quiet, b_rest, BT, spk,
                 a_ca, rho_inf, gain_p, gain_d, theta_p, theta_d, rho_sil, c_post,
                 g_ampa_max, g_nmda, a_bap, bap_amplitude, mgq, neg_slope,
                 g_leak, gl_el, e_glu, neg_dt, c_m, v_threshold, v_reset, refractory_steps,
                 rec_sorted, rec_cols, rec_rows, rec_c, rec_r, rec_f, want_c, want_r, want_f,
                 want_g, g_rec_a, g_rec_n, want_vb, v_rec, bap_rec,
                 ev_step, ev_syn, ev_kind, ev_count, sp_step, sp_post, sp_count):
    """One neuron with all its synapses (LIF, or clamp when currents are recorded), T steps from
    n0, for the neuron blocks `blocks` (consecutive neurons). Per step and neuron: B_n, rho, summed
    conductances (synapses in increasing index), calcium, V (exact, refractory), threshold, then
    c_post / bAP / reset on a spike, as in NGAIModel.step. A block whose events or spikes
    overflow their buffers leaves its state untouched (the caller reruns it)."""
    cap = ev_step.shape[1]
    sp_cap = sp_step.shape[1]
    has_rec = rec_sorted.size > 0 and (want_c or want_r or want_f)
    for bi in range(blocks.size):
        p0 = nblk_ptr[blocks[bi]]
        p1 = nblk_ptr[blocks[bi] + 1]
        q_base = post_ptr[p0]
        m = post_ptr[p1] - q_base
        lc = np.empty(m)
        lr = np.empty(m)
        lf = np.empty(m, np.bool_)
        ls = np.empty(m, np.int64)
        gid = np.empty(m, np.int64)
        for q in range(m):
            i = post_syn[q_base + q]
            gid[q] = i
            lc[q] = c[i]
            lr[q] = rho[i]
            lf[q] = lr[q] >= rho_sil
            ls[q] = syn_source[i]
        npb = p1 - p0
        lv = np.empty(npb)
        lbap = np.empty(npb)
        llast = np.empty(npb, np.int64)
        for k in range(npb):
            lv[k] = v[p0 + k]
            lbap[k] = bap[p0 + k]
            llast[k] = last_spike[p0 + k]
        if has_rec:  # recorded synapses of this block by scratch position
            nmem = 0
            for q in range(m):
                lo = _lower_bound(rec_sorted, gid[q])
                hi = _lower_bound(rec_sorted, gid[q] + 1)
                nmem += hi - lo
            mem_j = np.empty(nmem, np.int64)
            mem_col = np.empty(nmem, np.int64)
            k = 0
            for q in range(m):
                lo = _lower_bound(rec_sorted, gid[q])
                hi = _lower_bound(rec_sorted, gid[q] + 1)
                for r_i in range(lo, hi):
                    mem_j[k] = q
                    mem_col[k] = rec_cols[r_i]
                    k += 1
        else:
            mem_j = np.empty(0, np.int64)
            mem_col = np.empty(0, np.int64)
        evc = 0
        spc = 0
        for t in range(T):
            n = n0 + t
            row = rec_rows[t]
            if row >= 0:
                _record(row, 0, mem_j.size, mem_j, mem_col, lc, lr, lf, rec_c, rec_r, rec_f,
                        want_c, want_r, want_f)
            for k in range(npb):
                p = p0 + k
                q0 = post_ptr[p] - q_base
                q1 = post_ptr[p + 1] - q_base
                vp = lv[k]
                bp = lbap[k]
                if lif:
                    block = 1.0 / (1.0 + mgq * math.exp(neg_slope * (vp + bp)))
                elif quiet:
                    block = b_rest[p]
                else:
                    block = BT[p, t]
                if row >= 0:
                    if want_g:  # conductances at t_n (rho_n) for the current monitors
                        ga0 = 0.0
                        gn0 = 0.0
                        for q in range(q0, q1):
                            s = ls[q]
                            ga0 += g_ampa_max * lr[q] * SAT[s, t]
                            gn0 += g_nmda * SNT[s, t]
                        g_rec_a[row, p] = ga0
                        g_rec_n[row, p] = gn0
                    if want_vb:
                        v_rec[row, p] = vp
                        bap_rec[row, p] = bp
                ga = 0.0
                gn = 0.0
                flipped = False
                for q in range(q0, q1):
                    s = ls[q]
                    cc = lc[q]
                    r0 = lr[q]
                    r = (r0 + (rho_inf - r0) * gain_p if cc > theta_p
                         else (r0 - r0 * gain_d if cc > theta_d else r0))
                    lr[q] = r
                    if lif:
                        ga += g_ampa_max * r * SAT[s, t]
                        gn += g_nmda * SNT[s, t]
                    lc[q] = a_ca * cc + XT[s, t] * block
                    flipped |= (r >= rho_sil) != (r0 >= rho_sil)
                bp = bp * a_bap
                spiked = False
                if lif:
                    g_total = g_leak + ga + gn * block
                    v_inf = (gl_el + (ga + gn * block) * e_glu + i_ext[p]) / g_total
                    v_new = v_inf + (vp - v_inf) * math.exp(neg_dt * g_total / c_m)
                    act = (n - llast[k]) >= refractory_steps
                    if act:
                        vp = v_new
                    spiked = act and vp > v_threshold
                elif not quiet:
                    spiked = spk[p, t] != 0
                if spiked:
                    for q in range(q0, q1):
                        lc[q] = lc[q] + c_post
                    bp = bp + bap_amplitude
                    if lif:
                        vp = v_reset
                    llast[k] = n
                    if lif:  # imposed spikes (clamp) are known to the caller already
                        if spc < sp_cap:
                            sp_step[bi, spc] = n
                            sp_post[bi, spc] = p
                        spc += 1
                if flipped:
                    for q in range(q0, q1):
                        now = lr[q] >= rho_sil
                        if now != lf[q]:
                            lf[q] = now
                            if evc < cap:
                                ev_step[bi, evc] = n + 1
                                ev_syn[bi, evc] = gid[q]
                                ev_kind[bi, evc] = 1 if now else -1
                            evc += 1
                lv[k] = vp
                lbap[k] = bp
        ev_count[bi] = evc
        sp_count[bi] = spc
        if evc <= cap and spc <= sp_cap:
            for q in range(m):
                i = gid[q]
                c[i] = lc[q]
                rho[i] = lr[q]
            for k in range(npb):
                v[p0 + k] = lv[k]
                bap[p0 + k] = lbap[k]
                last_spike[p0 + k] = llast[k]
