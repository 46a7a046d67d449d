"""Image operations of AutoAugment, RandAugment, TrivialAugment and AdaAug, batched with
one magnitude per sample.

torchvision applies ONE op with ONE magnitude to a whole batch tensor; a learned, per-input
policy (AdaAug) needs a different op and magnitude for every image. Each op here takes ``x``
(B, C, H, W) float in [0, 1] and ``magnitude`` (B,) and reproduces, image by image, what
``torchvision.transforms.v2`` AutoAugment's ``_apply_image_or_video_transform`` does with
that magnitude on a float image (``tests/test_transforms_ops.py`` checks each against it):

=============  ===========================================================================
op             magnitude
=============  ===========================================================================
ShearX/Y       shear coefficient s (tan of the shear angle), about the top-left corner
TranslateX/Y   pixels, truncated to an integer (torchvision's ``int(magnitude)``)
Rotate         degrees, counter-clockwise, about the image centre
Brightness     factor 1 + m: multiply by it
Color          factor 1 + m: blend with the greyscale image (saturation)
Contrast       factor 1 + m: blend with the mean grey level
Sharpness      factor 1 + m: blend with a 3x3 smoothed image (border pixels kept)
Posterize      bits kept, truncated to an integer in [0, 8]
Solarize       threshold in [0, 1]: pixels >= threshold are inverted
AutoContrast,  (ignored)
Equalize,
Invert,
Identity,
Flip
Cutout         side of a square as a fraction of the width; random centre (AdaAug)
=============  ===========================================================================

Geometric ops use nearest interpolation and fill 0 (torchvision's AutoAugment defaults).
Their sampling grid is built separably (:func:`augbench.transforms.geometry.separable_grid`)
with the float operations of torchvision's matrix product on a CPU, so nearest-neighbour
picks the same pixels; on other devices torchvision's own matrix product may round a
coordinate differently in its last bit.

Kernels. Every op makes at most one or two full-size temporaries and then works in place on
them (never on its input, so autograd stays correct): at 224 px a batch of 32 is 19 MB, and
on a CPU each fresh buffer of that size can cost more in page faults than the arithmetic.
The quantising ops work on integer levels of the narrowest type that holds them (uint8 for
Posterize; int32 indices for Equalize's histograms and lookup), the 3x3 smoothing of
Sharpness is a box filter (``avg_pool2d``) plus the centre, not a grouped convolution.

Float semantics of the two quantising ops. torchvision's float Posterize
(``floor(x * 2^bits) / 2^bits``) and float Equalize differ from what the same op does to
the uint8 image the float image came from. augbench defines both on floats as "convert
to uint8 (round(255 x)), apply torchvision's uint8 op, divide by 255", so that an image
stored as uint8 gets exactly the published (PIL / uint8) behaviour whatever its dtype.
Both are piecewise constant: no gradient flows through them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from augbench.errors import ConfigError, DataError
from augbench.transforms.geometry import separable_grid

__all__ = [
    "OpSpec",
    "OPS",
    "get_op",
    "apply_ops",
    "group_sizes",
    "draw_uniform",
    "draw_int",
    "CUTOUT_FILL",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "autocontrast",
    "equalize",
    "invert",
    "identity",
    "cutout",
    "flip",
]

# AdaAug's Cutout colour (its operation.py), close to the ImageNet mean: after the model's
# normalisation the patch is roughly zero rather than a black square.
CUTOUT_FILL: tuple[float, float, float] = (125 / 255, 123 / 255, 114 / 255)


# --------------------------------------------------------------------------- randomness


def draw_uniform(
    shape: Sequence[int], *, device: torch.device | str, generator: torch.Generator | None = None
) -> Tensor:
    """U[0, 1) float32 on ``device``.

    With a generator the numbers are drawn on the generator's own device and then moved,
    so one seeded CPU generator gives the same augmentations on CPU and on any GPU.
    """
    if generator is None:
        return torch.rand(tuple(shape), device=device)
    return torch.rand(tuple(shape), generator=generator, device=generator.device).to(device)


def draw_int(
    high: int,
    shape: Sequence[int],
    *,
    device: torch.device | str,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Uniform int64 in [0, high) on ``device``; same device rule as :func:`draw_uniform`."""
    if generator is None:
        return torch.randint(high, tuple(shape), device=device)
    return torch.randint(high, tuple(shape), generator=generator, device=generator.device).to(device)


# ---------------------------------------------------------------------------- helpers


def _per_sample(m: Tensor, x: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1) in x's dtype and device, for broadcasting against images."""
    return m.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """x * f + other * (1 - f), clamped: torchvision's ``_blend`` with a per-sample ratio.

    ``other`` may be smaller than ``x`` (a grey image, a mean): it is scaled at its own size
    and added into the one full-size temporary.
    """
    f = _per_sample(factor, x)
    return x.mul(f).add_(other * (1.0 - f)).clamp_(0.0, 1.0)


_LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601, torchvision's ``rgb_to_grayscale`` weights


def _check_channels(x: Tensor) -> None:
    if x.shape[1] not in (1, 3):
        raise DataError(f"colour ops need 1 or 3 channels, got {x.shape[1]}")


def _grey(x: Tensor) -> Tensor:
    """ITU-R 601 luma (B, 1, H, W), computed as torchvision computes it."""
    _check_channels(x)
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(dim=1)
    return r.mul(_LUMA[0]).add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2]).unsqueeze(1)


def _to_levels(x: Tensor, dtype: torch.dtype = torch.uint8) -> Tensor:
    """Float image in [0, 1] -> grey levels 0..255 (round, the inverse of /255) as ``dtype``."""
    return x.clamp(0.0, 1.0).mul_(255.0).round_().to(dtype)


def _from_levels(q: Tensor, like: Tensor) -> Tensor:
    return q.to(like.dtype).div_(255.0)


# ------------------------------------------------------------------------- geometry


def _matrix_dtype(device: torch.device) -> torch.dtype:
    # torchvision builds the matrix in Python doubles; float64 keeps us bit-identical
    # (MPS has no float64).
    return torch.float32 if device.type == "mps" else torch.float64


#: Columns of an affine op's parameters, one row per image (`_inverse_affine`).
_AFFINE_COLUMNS = ("angle", "translate_x", "translate_y", "shear_x", "shear_y", "center_x", "center_y")


def _inverse_affine(params: Tensor) -> Tensor:
    """Per-sample output->input matrices (B, 2, 3) in centred pixel coordinates.

    The batched form of torchvision's ``_get_inverse_affine_matrix`` (scale 1) on rows of
    ``_AFFINE_COLUMNS``: angles and shears in degrees, translations in pixels, the centre
    relative to the image centre.
    """
    angle, tx, ty, shear_x, shear_y, cx, cy = params.unbind(-1)
    rot = torch.deg2rad(angle)
    sx, sy = torch.deg2rad(shear_x), torch.deg2rad(shear_y)
    cos_sy = torch.cos(sy)
    tan_sx = torch.tan(sx)
    a = torch.cos(rot - sy) / cos_sy
    b = -(a * tan_sx + torch.sin(rot))
    c = torch.sin(rot - sy) / cos_sy
    d = torch.cos(rot) - c * tan_sx
    m0, m1, m3, m4 = d, -b, -c, a
    cx_tx, cy_ty = cx + tx, cy + ty
    m2 = cx - m0 * cx_tx - m1 * cy_ty
    m5 = cy - m3 * cx_tx - m4 * cy_ty
    return torch.stack((m0, m1, m2, m3, m4, m5), dim=-1).view(-1, 2, 3)


def _warp(x: Tensor, inverse: Tensor) -> Tensor:
    """Resample x with per-sample inverse matrices: nearest, fill 0, output size = input.

    The grid is torchvision's ``_affine_grid``: pixel-centred coordinates through the matrix
    divided by half the size, here built separably (`geometry.separable_grid`).
    """
    height, width = x.shape[-2:]
    half = torch.full((2, 1), 0.5 * width, dtype=x.dtype, device=x.device)  # filled on the device: a host
    half[1].fill_(0.5 * height)  # tensor copied there would cost a device sync
    xs = torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, width, dtype=x.dtype, device=x.device)
    ys = torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, height, dtype=x.dtype, device=x.device)
    grid = separable_grid(inverse.to(x.dtype) / half, xs, ys)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _params(magnitude: Tensor, x: Tensor, column: str, value: Tensor, top_left: bool = False) -> Tensor:
    """(B, 7) affine parameters, zero but ``column`` (and the centre at the top-left corner, as
    torchvision's ``center=[0, 0]``, when ``top_left``)."""
    params = torch.zeros(magnitude.shape[0], len(_AFFINE_COLUMNS), dtype=value.dtype, device=value.device)
    params[:, _AFFINE_COLUMNS.index(column)] = value
    if top_left:
        params[:, 5].fill_(-0.5 * x.shape[-1])
        params[:, 6].fill_(-0.5 * x.shape[-2])
    return params


def _magnitude64(magnitude: Tensor, x: Tensor) -> Tensor:
    return magnitude.to(device=x.device, dtype=_matrix_dtype(x.device))


def _shear_x_params(x: Tensor, magnitude: Tensor) -> Tensor:
    return _params(magnitude, x, "shear_x", torch.rad2deg(torch.atan(_magnitude64(magnitude, x))), top_left=True)


def _shear_y_params(x: Tensor, magnitude: Tensor) -> Tensor:
    return _params(magnitude, x, "shear_y", torch.rad2deg(torch.atan(_magnitude64(magnitude, x))), top_left=True)


def _translate_x_params(x: Tensor, magnitude: Tensor) -> Tensor:
    return _params(magnitude, x, "translate_x", torch.trunc(_magnitude64(magnitude, x)))


def _translate_y_params(x: Tensor, magnitude: Tensor) -> Tensor:
    return _params(magnitude, x, "translate_y", torch.trunc(_magnitude64(magnitude, x)))


def _rotate_params(x: Tensor, magnitude: Tensor) -> Tensor:
    # torchvision's rotate hands -angle to the affine matrix (its sign convention).
    return _params(magnitude, x, "angle", -torch.remainder(_magnitude64(magnitude, x), 360.0))


def shear_x(x: Tensor, magnitude: Tensor) -> Tensor:
    """Horizontal shear: input column = column + s * row, about the top-left corner."""
    return _warp(x, _inverse_affine(_shear_x_params(x, magnitude)))


def shear_y(x: Tensor, magnitude: Tensor) -> Tensor:
    """Vertical shear: input row = row + s * column, about the top-left corner."""
    return _warp(x, _inverse_affine(_shear_y_params(x, magnitude)))


def translate_x(x: Tensor, magnitude: Tensor) -> Tensor:
    """Move the content right by trunc(magnitude) pixels (left if negative)."""
    return _warp(x, _inverse_affine(_translate_x_params(x, magnitude)))


def translate_y(x: Tensor, magnitude: Tensor) -> Tensor:
    """Move the content down by trunc(magnitude) pixels (up if negative)."""
    return _warp(x, _inverse_affine(_translate_y_params(x, magnitude)))


def rotate(x: Tensor, magnitude: Tensor) -> Tensor:
    """Rotate counter-clockwise by ``magnitude`` degrees about the centre, same size."""
    return _warp(x, _inverse_affine(_rotate_params(x, magnitude)))


def flip(x: Tensor, magnitude: Tensor) -> Tensor:
    """Horizontal mirror (AdaAug's Flip); ``magnitude`` is ignored."""
    return x.flip(-1)


# ---------------------------------------------------------------------------- colour


def _black(x: Tensor) -> Tensor:
    return x.new_zeros(x.shape[0], 1, 1, 1)


def _mean_grey(x: Tensor) -> Tensor:
    """Each image's mean luma (B, 1, 1, 1): the luma of its channel means (the luma is linear)."""
    _check_channels(x)
    means = x.mean(dim=(-2, -1))  # (B, C)
    if x.shape[1] == 3:
        means = means[:, 0:1].mul(_LUMA[0]).add_(means[:, 1:2], alpha=_LUMA[1]).add_(means[:, 2:3], alpha=_LUMA[2])
    return means.view(-1, 1, 1, 1)


def brightness(x: Tensor, magnitude: Tensor) -> Tensor:
    """Multiply by 1 + m and clamp (blend with black)."""
    return x.mul(_per_sample(1.0 + magnitude, x)).clamp_(0.0, 1.0)


def color(x: Tensor, magnitude: Tensor) -> Tensor:
    """Saturation: blend with the greyscale image by 1 + m (grey images unchanged)."""
    _check_channels(x)
    if x.shape[1] == 1:
        return x
    return _blend(x, _grey(x), 1.0 + magnitude)


def contrast(x: Tensor, magnitude: Tensor) -> Tensor:
    """Blend with the image's mean grey level by 1 + m."""
    return _blend(x, _mean_grey(x), 1.0 + magnitude)


def sharpness(x: Tensor, magnitude: Tensor) -> Tensor:
    """Blend with a smoothed image by 1 + m (PIL's SMOOTH kernel; border pixels kept).

    SMOOTH is [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13: 9/13 of the 3x3 mean plus 4/13 of the
    centre, so the blend inside the frame is x (f + 4 (1 - f) / 13) + mean3x3 9 (1 - f) / 13.
    """
    height, width = x.shape[-2:]
    if height <= 2 or width <= 2:
        return x
    f = _per_sample(1.0 + magnitude, x)
    out = x.clone()
    inner = out[..., 1:-1, 1:-1]
    inner.mul_(f + (1.0 - f) * (4.0 / 13.0))
    inner.add_(F.avg_pool2d(x, 3, stride=1).mul_((1.0 - f) * (9.0 / 13.0)))
    return out.clamp_(0.0, 1.0)


def posterize(x: Tensor, magnitude: Tensor) -> Tensor:
    """Keep the top trunc(m) bits of each uint8 level (m clamped to [0, 8])."""
    bits = torch.trunc(magnitude.to(x.device)).clamp(0, 8).to(torch.int32)
    shift = (8 - bits).view(-1, 1, 1, 1)
    mask = torch.bitwise_left_shift(torch.bitwise_right_shift(torch.full_like(shift, 255), shift), shift)
    return _from_levels(_to_levels(x).bitwise_and_(mask.to(torch.uint8)), x)


def solarize(x: Tensor, magnitude: Tensor) -> Tensor:
    """Invert pixels >= threshold m (m > 1 leaves the image unchanged)."""
    return torch.where(x >= _per_sample(magnitude, x), 1.0 - x, x)


def autocontrast(x: Tensor, magnitude: Tensor | None = None) -> Tensor:
    """Stretch each channel of each image to [0, 1] (constant channels unchanged)."""
    low = x.amin(dim=(-2, -1), keepdim=True)
    high = x.amax(dim=(-2, -1), keepdim=True)
    flat = high == low
    low = torch.where(flat, torch.zeros_like(low), low)
    scale = torch.where(flat, torch.ones_like(high), high - low)
    return x.sub(low).div_(scale).clamp_(0.0, 1.0)


def equalize(x: Tensor, magnitude: Tensor | None = None) -> Tensor:
    """Histogram equalisation per image and channel, PIL's lookup table, on uint8 levels.

    All B*C histograms come from one ``index_add_`` of the levels offset by 256 per image
    and channel (int32 indices: a quarter of int64's memory), and the output is one
    ``index_select`` of those indices from the B*C lookup tables. The tables follow
    torchvision's ``equalize_image`` (PIL's rule): with step = (pixels not in the highest
    occupied bin) // 255, lut[k] = (cdf[k-1] + step//2) // step, and a channel with
    step == 0 keeps its levels.
    """
    batch, channels = x.shape[:2]
    rows = batch * channels
    index = _to_levels(x, torch.int32).view(rows, -1)
    index.add_(torch.arange(0, rows * 256, 256, dtype=torch.int32, device=x.device).view(rows, 1))
    flat = index.view(-1)
    hist = torch.zeros(rows * 256, dtype=torch.int32, device=x.device)
    hist.index_add_(0, flat, torch.ones((), dtype=torch.int32, device=x.device).expand(flat.shape[0]))
    hist = hist.view(rows, 256).to(torch.int64)
    cdf = hist.cumsum(dim=-1)
    last_bin = cdf.argmax(dim=-1, keepdim=True)  # first index reaching the total
    step = (index.shape[-1] - hist.gather(-1, last_bin)).div(255, rounding_mode="floor")
    lut = (cdf[..., :-1] + step // 2).div(step.clamp(min=1), rounding_mode="floor").clamp(0, 255)
    lut = torch.cat((torch.zeros_like(lut[..., :1]), lut), dim=-1)
    identity = torch.arange(256, device=x.device).expand_as(lut)
    lut = torch.where(step > 0, lut, identity).to(x.dtype).div_(255.0)
    return lut.view(-1).index_select(0, flat).view_as(x)


def invert(x: Tensor, magnitude: Tensor | None = None) -> Tensor:
    """1 - x."""
    return 1.0 - x


def identity(x: Tensor, magnitude: Tensor | None = None) -> Tensor:
    """Returns ``x`` itself (no copy)."""
    return x


def cutout(x: Tensor, magnitude: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Fill a square of side m * width pixels with :data:`CUTOUT_FILL`, centre uniform.

    Each image gets its own centre, uniform over the image; the square is clipped at the
    border (DeVries & Taylor's Cutout). AdaAug's code instead shifts squares that cross the
    left or top edge inwards but clips them at the right or bottom, so patches near the
    top-left are larger; augbench does not copy that asymmetry. m <= 0 changes nothing.
    """
    batch, channels, height, width = x.shape
    centre = draw_uniform((batch, 2), device=x.device, generator=generator).to(x.dtype)
    half = _per_sample(magnitude, x).view(-1, 1) * (0.5 * width)  # (B, 1)
    cols = torch.arange(width, device=x.device, dtype=x.dtype) + 0.5
    rows = torch.arange(height, device=x.device, dtype=x.dtype) + 0.5
    in_cols = (cols - centre[:, :1] * width).abs() < half  # (B, W)
    in_rows = (rows - centre[:, 1:] * height).abs() < half  # (B, H)
    inside = (in_rows.unsqueeze(-1) & in_cols.unsqueeze(-2)).unsqueeze(1)  # (B, 1, H, W)
    fill = _cutout_fill(x.dtype, x.device)
    fill = fill.view(1, 3, 1, 1) if channels == 3 else fill.mean().view(1, 1, 1, 1)
    return torch.where(inside, fill, x)


_FILL_CACHE: dict[tuple[torch.dtype, str], Tensor] = {}


def _cutout_fill(dtype: torch.dtype, device: torch.device) -> Tensor:
    """:data:`CUTOUT_FILL` on ``device``, copied there once (every copy from the host syncs the device)."""
    key = (dtype, str(device))
    if key not in _FILL_CACHE:
        _FILL_CACHE[key] = torch.tensor(CUTOUT_FILL, dtype=dtype, device=device)
    return _FILL_CACHE[key]


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class OpSpec:
    """One registered op and what policies need to know about its magnitude.

    ``signed``: the op is symmetric around magnitude 0 (a shear, a shift, a rotation, a
    factor 1 + m); policies flip the sign of such magnitudes with probability 1/2.
    ``random``: the op draws its own randomness and takes a ``generator``.
    ``affine``: for the nearest-neighbour affine ops, their per-image parameters (x, m) ->
    (B, 7): `apply_ops` warps all images drawing any of them in one resample.
    ``blend``: for the ops that blend an RGB image with a degenerate one by 1 + m (Brightness:
    black, Color: its grey image, Contrast: its mean grey), that image (1 channel, broadcast):
    `apply_ops` blends all images drawing any of them at once.
    """

    name: str
    fn: Callable[..., Tensor]
    unit: str
    uses_magnitude: bool = True
    signed: bool = False
    random: bool = False
    affine: Callable[[Tensor, Tensor], Tensor] | None = None
    blend: Callable[[Tensor], Tensor] | None = None

    def __call__(self, x: Tensor, magnitude: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.random:
            return self.fn(x, magnitude, generator=generator)
        return self.fn(x, magnitude)


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec("Identity", identity, "none", uses_magnitude=False),
        OpSpec("ShearX", shear_x, "shear coefficient (tan of angle)", signed=True, affine=_shear_x_params),
        OpSpec("ShearY", shear_y, "shear coefficient (tan of angle)", signed=True, affine=_shear_y_params),
        OpSpec("TranslateX", translate_x, "pixels (truncated)", signed=True, affine=_translate_x_params),
        OpSpec("TranslateY", translate_y, "pixels (truncated)", signed=True, affine=_translate_y_params),
        OpSpec("Rotate", rotate, "degrees", signed=True, affine=_rotate_params),
        OpSpec("Brightness", brightness, "factor - 1", signed=True, blend=_black),
        OpSpec("Color", color, "factor - 1", signed=True, blend=_grey),
        OpSpec("Contrast", contrast, "factor - 1", signed=True, blend=_mean_grey),
        OpSpec("Sharpness", sharpness, "factor - 1", signed=True),
        OpSpec("Posterize", posterize, "bits kept (truncated)"),
        OpSpec("Solarize", solarize, "threshold in [0, 1]"),
        OpSpec("AutoContrast", autocontrast, "none", uses_magnitude=False),
        OpSpec("Equalize", equalize, "none", uses_magnitude=False),
        OpSpec("Invert", invert, "none", uses_magnitude=False),
        OpSpec("Cutout", cutout, "fraction of width", random=True),
        OpSpec("Flip", flip, "none", uses_magnitude=False),
    )
}


def get_op(name: str) -> OpSpec:
    """The registered op called ``name``; ConfigError naming the valid ones otherwise."""
    try:
        return OPS[name]
    except KeyError:
        raise ConfigError(f"unknown image op {name!r}; valid: {', '.join(OPS)}") from None


def group_sizes(op_index: Tensor, n_ops: int) -> list[list[int]]:
    """Images per op of every slot of ``op_index`` (B, k): k lists of n_ops + 1 counts, the
    first counting the skipped images (index < 0), read back to the host in ONE transfer.

    The sizes of the groups :func:`apply_ops` cuts the batch into live on the device; a policy
    of k op slots asks for all k at once here, so a batch costs one device sync, not k. The
    counts come from a fixed-size ``scatter_add_`` (``bincount`` on CUDA reads the input's
    maximum and minimum back first: two more syncs).
    """
    if op_index.dim() != 2:
        raise DataError(f"op_index must be (B, k), got {tuple(op_index.shape)}")
    slots, bins = op_index.shape[1], n_ops + 2  # per slot: skipped, the n_ops ops, out of range
    index = op_index.to(torch.int64).clamp(-1, n_ops) + 1
    flat = (index + torch.arange(slots, device=index.device) * bins).flatten()
    counts = torch.zeros(slots * bins, dtype=torch.int64, device=index.device)
    rows = counts.scatter_add_(0, flat, torch.ones_like(flat)).view(slots, bins).tolist()
    if any(row[-1] for row in rows):
        raise ConfigError(f"op_index has values >= {n_ops}; valid: -1 (skip) to {n_ops - 1}")
    return [row[:-1] for row in rows]


def apply_ops(
    x: Tensor,
    op_index: Tensor,
    magnitude: Tensor,
    names: Sequence[str],
    *,
    generator: torch.Generator | None = None,
    sizes: Sequence[int] | None = None,
    inplace: bool = False,
) -> Tensor:
    """Apply op ``names[op_index[i]]`` with ``magnitude[i]`` to image i, for all i at once.

    The batch is grouped by op (one stable argsort) and each op runs once on its sub-batch
    (index_select / index_copy_): the Python loop is over the distinct ops, never over
    samples. The group sizes are the one host sync; a caller applying several op slots
    passes each slot's ``sizes`` from one :func:`group_sizes` call instead. ``op_index[i] <
    0`` leaves image i unchanged, which is how a policy's "not applied" draws are expressed;
    when no image is changed, ``x`` itself is returned. ``inplace``: the results are written
    into ``x`` instead of a copy of it (for a caller that owns ``x``, e.g. the output of a
    previous slot; ignored where autograd needs ``x``). Differentiable w.r.t. ``x`` wherever
    the ops are.
    """
    specs = [get_op(name) for name in names]
    batch = x.shape[0]
    if op_index.shape != (batch,) or magnitude.shape != (batch,):
        raise DataError(
            f"op_index and magnitude must have shape ({batch},), "
            f"got {tuple(op_index.shape)} and {tuple(magnitude.shape)}"
        )
    index = op_index.to(device=x.device, dtype=torch.int64).clamp(min=-1)
    magnitude = magnitude.to(x.device)
    counts = list(sizes) if sizes is not None else group_sizes(index.unsqueeze(1), len(specs))[0]
    if len(counts) != len(specs) + 1 or sum(counts) != batch:
        raise DataError(f"sizes must be {len(specs) + 1} counts summing to {batch}, got {counts}")
    groups = torch.argsort(index, stable=True).split(counts) if counts[0] < batch else ()
    # images drawing Identity are left as they are, like skipped ones
    changed = [(spec, rows) for spec, rows in zip(specs, groups[1:]) if rows.numel() and spec.fn is not identity]
    if not changed:
        return x
    if changed[0][1].numel() == batch:  # the whole batch draws this op: no gather needed
        return changed[0][0](x, magnitude, generator)
    out = x if inplace and not _needs_grad(x) else x.clone()
    affine = [(spec, rows) for spec, rows in changed if spec.affine is not None]
    if len(affine) > 1:  # every affine op's images in one resample: a per-image matrix each
        rows = torch.cat([r for _, r in affine])
        params = torch.cat([spec.affine(x, magnitude.index_select(0, r)) for spec, r in affine])  # type: ignore[misc]
        out.index_copy_(0, rows, _warp(x.index_select(0, rows), _inverse_affine(params)))
        changed = [(spec, rows) for spec, rows in changed if spec.affine is None]
    blends = [(spec, rows) for spec, rows in changed if spec.blend is not None]
    if len(blends) > 1 and x.shape[1] == 3:  # every blend op's images at once, each with its own other image
        rows = torch.cat([r for _, r in blends])
        sub = x.index_select(0, rows)
        parts = sub.split([r.numel() for _, r in blends])
        others = torch.cat([spec.blend(part).expand(part.shape[0], 1, *x.shape[-2:])  # type: ignore[misc]
                            for (spec, _), part in zip(blends, parts)])
        out.index_copy_(0, rows, _blend(sub, others, 1.0 + magnitude.index_select(0, rows)))
        changed = [(spec, rows) for spec, rows in changed if spec.blend is None]
    for spec, rows in changed:
        out.index_copy_(0, rows, spec(x.index_select(0, rows), magnitude.index_select(0, rows), generator))
    return out


def _needs_grad(*tensors: Tensor) -> bool:
    """Whether autograd records operations on any of ``tensors`` here (then nothing of theirs is overwritten)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
