"""High-dimensional Gaussian filtering on the permutohedral lattice (Adams, Baek & Davis, 2010), in plain torch.

The fully connected CRF of Krähenbühl & Koltun (2011) needs, at every mean-field step and for every
pixel i, the sum over *all* pixels j of ``k(f_i, f_j) q_j`` with the Gaussian kernel

    k(f_i, f_j) = exp(-|f_i - f_j|^2 / 2),     e.g. f = (x / sxy, y / sxy, r / srgb, g / srgb, b / srgb),

which costs O(N^2) written out. The permutohedral lattice makes it O(N d^2): feature vectors are lifted
onto the hyperplane sum(x) = 0 of R^{d+1}, which is tiled by simplices whose corners form a lattice;

1. **splat**: each pixel adds its value to the d+1 corners of its enclosing simplex, weighted by its
   barycentric coordinates (a sparse (M, N) matrix, M = number of lattice vertices in use);
2. **blur**: along each of the d+1 lattice directions every vertex becomes
   ``v + (v_prev + v_next) / 2`` (the [1 2 1] kernel; missing neighbours count as zero);
3. **slice**: each pixel reads back the barycentric-weighted sum of its corners, times
   ``alpha = 1 / (1 + 2^-d)`` (the transpose of the splat matrix).

The result approximates the Gaussian sum with the pixel itself included (its weight is ~0.4-0.9, not
exactly 1); every pixel still interacts with every other one, there is no window. The approximation is
the one Krähenbühl's C++ code (and so pydensecrf) uses, and this module follows that code step by step
(scale factors, rounding to the nearest remainder-0 point, rank ties, vertex order, blur order, alpha):
on the same features our filter and pydensecrf's agree to ~1e-6 relative (float32 rounding).

Where the C++ code keeps a hash table, we encode each integer vertex key as one int64 (mixed radix, one
digit per coordinate), find the distinct vertices with one sort and a vertex's blur neighbours with
``torch.searchsorted`` on the sorted codes. Splat and slice are sparse-dense products (CSR matrices on
CUDA, ``embedding_bag`` sums on the CPU), the blur is two row gathers per direction: plain torch ops,
so the same code runs on CPU and CUDA without a compile step. Everything is vectorised over pixels,
vertices and channels; the lattice is built once and reused for every signal (all classes, all
mean-field iterations).

Several images can share one lattice: pass each point's image index as ``batch``; it becomes the most
significant digit of the code, so vertices of different images never meet.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F


class PermutohedralLattice:
    """A permutohedral lattice built once from features, then applied to any number of signals.

    features: float (N, d), already divided by the kernel's standard deviations.
    batch: optional long (N,), the image index of each point; points of different images never interact.

    Attributes: ``offsets`` long (N, d+1), vertex id of each point's simplex corners; ``weights`` float32
    (N, d+1), barycentric coordinates (rows sum to 1); ``neighbours`` long (d+1, 2, M+1), per direction
    the previous / next vertex of each vertex (M = missing: row M of a grid is kept at zero);
    ``n_vertices`` M; ``alpha`` the slice constant.
    """

    def __init__(self, features: torch.Tensor, batch: torch.Tensor | None = None):
        if features.ndim != 2 or features.shape[1] < 1:
            raise ValueError(f"features must be (N, d), got shape {tuple(features.shape)}")
        self.n_points, self.d = features.shape
        self.device = features.device
        self.alpha = 1.0 / (1.0 + 2.0 ** (-self.d))
        rem0, rank, self.weights = self._enclosing_simplex(features.float())
        codes, delta = self._vertex_codes(rem0, rank, batch)                 # (N, d+1), (d+1,)
        self._index_vertices(codes)
        self._find_neighbours(delta)
        self._operators: dict = {}

    # -- construction ---------------------------------------------------------------------------
    def _enclosing_simplex(self, f: torch.Tensor):
        """Remainder-0 corner ``rem0`` (N, d+1), ``rank`` (N, d+1) and barycentric weights (N, d+1).

        Sec. 3.1 of Adams et al.: elevate with the matrix E, scaled so that the blur below has standard
        deviation 1 in feature units; round to the nearest point whose coordinates are multiples of d+1;
        the order (rank) of the residuals tells which simplex holds the point.
        """
        n, d = f.shape
        dev = f.device
        k = torch.arange(d, device=dev, dtype=torch.float32)
        # scale_k = sqrt(2/3) (d+1) / sqrt((k+1)(k+2))      (diagonal of E, p. 5-6 of Adams et al.)
        cf = f * (math.sqrt(2.0 / 3.0) * (d + 1) / torch.sqrt((k + 1) * (k + 2)))
        # elevated_0 = sum_k cf_k ;  elevated_j = sum_{k >= j} cf_k - j cf_{j-1}   (j = 1..d)
        suffix = cf.flip(1).cumsum(1).flip(1)
        zero = cf.new_zeros(n, 1)
        elevated = torch.cat([suffix, zero], 1) - torch.cat([zero, (k + 1) * cf], 1)    # (N, d+1)
        # nearest multiple of d+1 per coordinate (a tie rounds down, as in the C++ code)
        up = torch.ceil(elevated / (d + 1)) * (d + 1)
        down = torch.floor(elevated / (d + 1)) * (d + 1)
        rem0 = torch.where(up - elevated < elevated - down, up, down)
        off_plane = torch.round(rem0.sum(1) / (d + 1)).long()              # sum of the rounded point / (d+1)
        # rank_i = number of coordinates with a larger residual (ties: the lower index counts as larger)
        res = elevated - rem0
        rank = [off_plane.clone() for _ in range(d + 1)]
        for i in range(d):
            for j in range(i + 1, d + 1):
                smaller = res[:, i] < res[:, j]
                rank[i] += smaller
                rank[j] += ~smaller
        rank = torch.stack(rank, 1)                                        # (N, d+1), shifted by off_plane
        # bring the point back onto the plane sum = 0: wrap ranks into 0..d, moving rem0 by d+1
        wrap = (rank < 0).long() - (rank > d).long()
        rank = rank + (d + 1) * wrap
        rem0 = rem0 + (d + 1) * wrap.float()
        # barycentric coordinates (Adams et al., p. 10)
        b = (elevated - rem0) / (d + 1)
        bary = cf.new_zeros(n, d + 2)
        bary.scatter_add_(1, d - rank, b)
        bary.scatter_add_(1, d - rank + 1, -b)
        bary[:, 0] += 1.0 + bary[:, d + 1]
        return rem0.long(), rank, bary[:, :d + 1].contiguous()

    def _vertex_codes(self, rem0: torch.Tensor, rank: torch.Tensor, batch: torch.Tensor | None):
        """int64 code of every simplex corner (N, d+1) and the code step to the blur neighbour per direction (d+1,).

        Corner r of the simplex has key ``rem0_i + r - (d+1) [rank_i > d - r]`` (the canonical simplex
        permuted by rank); only coordinates 0..d-1 are encoded, the last one follows from sum = 0.
        Codes are linear in the key, so each corner's code is computed without building the keys:
        code_r = base + r sum(stride) - (d+1) sum_{i: rank_i > d-r} stride_i.
        A margin of 2(d+1) per digit keeps all corners and their blur neighbours inside the radix.
        """
        d = self.d
        lo = rem0[:, :d].amin(0) - 2 * (d + 1)
        span = rem0[:, :d].amax(0) - lo + 2 * (d + 1) + 1
        strides, total = [], 1
        for s in span.tolist():
            strides.append(total)
            total *= int(s)
        n_images = int(batch.max()) + 1 if batch is not None and batch.numel() else 1
        if total * n_images >= 2 ** 62:
            raise ValueError("permutohedral lattice keys do not fit in int64: the features span too many "
                             "kernel widths (is sxy or srgb far too small for this image?)")
        stride = torch.tensor(strides, dtype=torch.long, device=rem0.device)          # (d,)
        base = ((rem0[:, :d] - lo) * stride).sum(1, keepdim=True)                      # (N, 1)
        # stride of the coordinate holding each rank (the last coordinate is not encoded: 0)
        by_rank = torch.zeros_like(rank).scatter_(1, rank, torch.cat([stride, stride.new_zeros(1)])
                                                  .expand_as(rank).contiguous())
        at_least = by_rank.flip(1).cumsum(1).flip(1)                      # [k] = sum of strides of rank >= k
        r = torch.arange(d + 1, device=rem0.device)
        moved = torch.cat([torch.zeros_like(base), at_least[:, 1:].flip(1)], 1)   # [r] = at_least[d-r+1]
        codes = base + r * stride.sum() - (d + 1) * moved
        if batch is not None:
            codes = codes + batch.to(codes.device, torch.long)[:, None] * total
        # previous vertex along direction j: all coordinates -1 and coordinate j +(d+1);
        # along direction d only the implicit last coordinate gains d+1, so the d encoded ones drop by 1
        delta = -stride.sum().repeat(d + 1)
        delta[:d] += (d + 1) * stride
        return codes, delta

    def _index_vertices(self, codes: torch.Tensor) -> None:
        """Distinct vertices (sorted codes), each point's corner ids, and the splat layout."""
        n, k = codes.shape
        sorted_codes, order = torch.sort(codes.reshape(-1))
        self.codes, ids, counts = torch.unique_consecutive(sorted_codes, return_inverse=True,
                                                           return_counts=True)
        self.n_vertices = self.codes.numel()
        self.offsets = torch.empty_like(ids).scatter_(0, order, ids).reshape(n, k)     # (N, d+1)
        # splat layout (vertices x points): vertex v holds entries _splat_crow[v]:_splat_crow[v+1] of
        # ``order`` (flat index into (N, d+1)) and of _splat_col (their points); row M stays empty.
        self._splat_order = order
        self._splat_crow = torch.cat([counts.new_zeros(1), counts.cumsum(0), counts.sum().view(1)])
        self._splat_col = torch.div(order, k, rounding_mode="floor")
        self._slice_order = None              # see sort_layout()

    def sort_layout(self) -> None:
        """Sort each vertex's points and each point's vertices by index, as a CSR matrix (cuSPARSE) wants.

        The ``embedding_bag`` sums take any order, so this is done only on demand.
        """
        if self._slice_order is None:
            n, k = self.offsets.shape
            point = torch.div(torch.arange(n * k, device=self.device), k, rounding_mode="floor")
            self._splat_order = torch.argsort(self.offsets.reshape(-1) * n + point)
            self._splat_col = torch.div(self._splat_order, k, rounding_mode="floor")
            self._slice_order = self.offsets.argsort(1)

    def slice_layout(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each point's corner vertices (N, d+1), and the permutation of its columns used (or None)."""
        if self._slice_order is None:
            return self.offsets, None
        return self.offsets.gather(1, self._slice_order), self._slice_order

    def _find_neighbours(self, delta: torch.Tensor) -> None:
        m = self.n_vertices
        targets = self.codes[None, None, :] + torch.stack([delta, -delta], 1)[..., None]     # (d+1, 2, M)
        pos = torch.searchsorted(self.codes, targets.reshape(-1)).reshape(targets.shape).clamp_(max=m - 1)
        found = self.codes[pos] == targets
        nbr = torch.where(found, pos, torch.full_like(pos, m))
        self.neighbours = torch.cat([nbr, nbr.new_full((self.d + 1, 2, 1), m)], 2)         # (d+1, 2, M+1)

    # -- filtering ------------------------------------------------------------------------------
    def filter(self, values: torch.Tensor, *, reverse: bool = False) -> torch.Tensor:
        """Gaussian filter: out_i ~ sum_j exp(-|f_i - f_j|^2 / 2) values_j, pixel i included.

        values: (N, C) -> (N, C), float32 or float64. ``reverse=True`` applies the transposed operator
        (blur directions in reverse order; each 1-D blur is symmetric). No autograd: see
        :func:`lattice_filter`.
        """
        if values.dtype not in self._operators:
            self._operators[values.dtype] = LatticeOperator([self], dtype=values.dtype)
        return self._operators[values.dtype](values, reverse=reverse)


class LatticeOperator:
    """x -> sum_m diag(scale_out_m) K_m diag(scale_in_m) x, with K_m the filter of lattice m: (N, C) -> (N, C).

    All lattices must be built over the same N points. Their vertex grids are stacked, so a sum of
    kernels (the CRF's Gaussian and bilateral terms) costs one splat, one blur pass and one slice. A
    lattice with fewer directions than the others takes identity steps for the missing ones (its
    neighbours there are its empty row). The barycentric weights, the per-point scales and alpha are
    folded into the splat and slice weights.

    Splat and slice are sparse-dense products. On CUDA they are CSR products (cuSPARSE); on the CPU
    they are ``embedding_bag`` sums with per-sample weights (each vertex, resp. each pixel, is a bag),
    which measured 2-3x faster there than torch's CSR product (scripts/bench_crf.py development runs).
    ``method`` ("csr" or "bag") overrides the choice.
    """

    def __init__(self, lattices, scales_in=None, scales_out=None, dtype: torch.dtype = torch.float32,
                 method: str | None = None):
        n = lattices[0].n_points
        if any(lat.n_points != n for lat in lattices):
            raise ValueError("all lattices of an operator must be built over the same points")
        scales_in = scales_in or [None] * len(lattices)
        scales_out = scales_out or [None] * len(lattices)
        self.n_points, self.device = n, lattices[0].device
        self.method = method or ("csr" if self.device.type == "cuda" else "bag")
        if self.method not in ("csr", "bag"):
            raise ValueError(f"method={method!r} is not known; choose 'csr' or 'bag'")
        self.n_directions = max(lat.d + 1 for lat in lattices)
        splat_start, splat_point, slice_vertex, nbrs = [], [], [], []
        weights = {"splat": [], "slice": [], "splat_t": [], "slice_t": []}
        base = nnz = 0
        for lat, s_in, s_out in zip(lattices, scales_in, scales_out):
            if self.method == "csr":
                lat.sort_layout()
            corners, perm = lat.slice_layout()
            m = lat.n_vertices + 1                                             # its rows, with the empty one
            w = lat.weights.to(dtype)                                          # (N, d+1)
            w_in = w if s_in is None else w * s_in.to(dtype)[:, None]
            w_out = w * lat.alpha if s_out is None else w * (lat.alpha * s_out.to(dtype))[:, None]
            splat_start.append(lat._splat_crow[:-1] + nnz)
            splat_point.append(lat._splat_col)
            slice_vertex.append(corners + base)
            # forward: splat with w_in, slice with w_out; transposed: the other way round
            for name, w_splat, w_slice in (("", w_in, w_out), ("_t", w_out, w_in)):
                weights["splat" + name].append(w_splat.reshape(-1)[lat._splat_order])
                weights["slice" + name].append(w_slice if perm is None else w_slice.gather(1, perm))
            empty = lat.neighbours.new_full((self.n_directions - lat.d - 1, 2, m), lat.n_vertices)
            nbrs.append(torch.cat([lat.neighbours, empty]) + base)
            base, nnz = base + m, nnz + lat.weights.numel()
        self.n_rows, self.nnz = base, nnz
        self.neighbours = torch.cat(nbrs, 2)                                   # (D, 2, rows)
        # splat: row v (a vertex) sums the points splat_point[start_v:start_{v+1}], weighted; (rows, N)
        self.splat_start, self.splat_point = torch.cat(splat_start), torch.cat(splat_point)
        # slice: pixel i sums its k corner vertices, weighted; (N, rows)
        self.slice_vertex = torch.cat(slice_vertex, 1)
        self.weights = {name: torch.cat(ws, 1 if name.startswith("slice") else 0) for name, ws in weights.items()}
        self._csr: dict = {}

    def _csr_matrices(self, reverse: bool):
        """CSR splat (rows, N) and slice (N, rows) matrices, built once per direction (and dtype)."""
        if reverse not in self._csr:
            tag = "_t" if reverse else ""
            n, k = self.slice_vertex.shape
            with warnings.catch_warnings():     # "sparse CSR support is in beta": we use only mm
                warnings.simplefilter("ignore")
                splat = torch.sparse_csr_tensor(
                    torch.cat([self.splat_start, self.splat_start.new_tensor([self.nnz])]), self.splat_point,
                    self.weights["splat" + tag], (self.n_rows, n), check_invariants=False)
                slice_ = torch.sparse_csr_tensor(
                    torch.arange(0, n * k + 1, k, device=self.device), self.slice_vertex.reshape(-1),
                    self.weights["slice" + tag].reshape(-1), (n, self.n_rows), check_invariants=False)
            self._csr[reverse] = splat, slice_
        return self._csr[reverse]

    def blur(self, grid: torch.Tensor, *, reverse: bool = False) -> torch.Tensor:
        """[1 2 1] blur of vertex values (rows, C) along each lattice direction (reversed: the transpose)."""
        for j in (range(self.n_directions - 1, -1, -1) if reverse else range(self.n_directions)):
            prev, nxt = self.neighbours[j]
            # v <- v + (v_prev + v_next) / 2      (missing neighbours read an empty row: 0)
            grid = torch.add(grid, torch.index_select(grid, 0, prev).add_(torch.index_select(grid, 0, nxt)),
                             alpha=0.5)
        return grid

    def __call__(self, values: torch.Tensor, *, reverse: bool = False) -> torch.Tensor:
        """slice(blur(splat(values))): (N, C) -> (N, C); ``reverse=True`` applies the transposed operator.

        The transpose runs the blur directions in reverse order (each 1-D blur is symmetric) and swaps
        the in and out scales. No autograd (see :func:`lattice_filter`).
        """
        if values.ndim != 2 or values.shape[0] != self.n_points:
            raise ValueError(f"values must be ({self.n_points}, C), got {tuple(values.shape)}")
        with torch.no_grad():
            values = values.contiguous()
            if self.method == "csr":
                splat, slice_ = self._csr_matrices(reverse)
                grid = torch.sparse.mm(splat, values)                                # splat (rows, C)
                grid = self.blur(grid, reverse=reverse)                              # blur
                return torch.sparse.mm(slice_, grid)                                 # slice (N, C)
            tag = "_t" if reverse else ""
            grid = F.embedding_bag(self.splat_point, values, self.splat_start, mode="sum",
                                   per_sample_weights=self.weights["splat" + tag].to(values.dtype))
            grid = self.blur(grid, reverse=reverse)
            return F.embedding_bag(self.slice_vertex, grid, mode="sum",
                                   per_sample_weights=self.weights["slice" + tag].to(values.dtype))


class _LatticeFilter(torch.autograd.Function):
    """Autograd for the (linear) lattice filter: the backward pass is the transposed filter."""

    @staticmethod
    def forward(ctx, values, lattice):
        ctx.lattice = lattice
        return lattice.filter(values)

    @staticmethod
    def backward(ctx, grad):
        return ctx.lattice.filter(grad, reverse=True), None


def lattice_filter(lattice: PermutohedralLattice, values: torch.Tensor) -> torch.Tensor:
    """Differentiable :meth:`PermutohedralLattice.filter`: values (N, C) -> (N, C)."""
    return _LatticeFilter.apply(values, lattice)
