"""Synthetic chest radiograph phantom, rendered from a StudyTruth.

The image is an additive attenuation map A (air 0, soft tissue ~0.55, bone and metal higher)
displayed as 1 - exp(-k A), so 1.0 is most attenuating (MONOCHROME2). Geometry lives in "body"
coordinates in units of the image height: x = 0 on the midline, x < 0 on the IMAGE LEFT (= the
PATIENT'S RIGHT on PA/AP), y = 0 at the top. Nuisance rotation and shift transform the pixel grid,
so anatomy, findings and devices move together.

Zones are thirds of the lung field height, from the apex (q = 0) to the costophrenic angles
(q = 1). Smooth content (vessels, hazy opacities, fluid) is rendered at half resolution and
upsampled; edges, ribs, pleural lines and devices at full resolution.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from components.synth.phantom_devices import draw_devices
from components.synth.truth import Finding, StudyTruth

VIEWS = ("PA", "AP", "LATERAL")
THORAX_CM = 35.0  # outer rib-cage width, in cm, that lesion sizes and tube tips are scaled to
_LOW = 2  # downsampling factor of the smooth layer
_ZONES = {"upper": (0.0, 1 / 3), "middle": (1 / 3, 2 / 3), "lower": (2 / 3, 1.0)}
_SEV = {"mild": 0.55, "small": 0.55, "moderate": 0.8, "severe": 1.0, "large": 1.0}
_CTR = {"mild": 0.55, "moderate": 0.60, "severe": 0.68}
_AIR = 0.34  # attenuation an aerated lung removes from the soft-tissue background


def _ramp(d, w):
    """Soft step of width w: 0 where d << 0, 1 where d >> 0 (cheap antialiased edge)."""
    return np.clip(d * (1.0 / w) + 0.5, 0.0, 1.0)


def _bump(v, c, hw):
    """1 at v == c falling to 0 at |v - c| >= hw (parabolic)."""
    return np.clip(1.0 - ((v - c) * (1.0 / hw)) ** 2, 0.0, 1.0)


def _sel(cond, a, b):
    """np.where for two scalars, kept in float32 (np.where on Python floats returns float64)."""
    return np.where(cond, np.float32(a), np.float32(b))


def _blob(x, y, cx, cy, sx, sy):
    return np.exp(-0.5 * (((x - cx) * (1.0 / sx)) ** 2 + ((y - cy) * (1.0 / sy)) ** 2))


def _weight(f: Finding) -> float:
    return 0.6 if f.certainty == "uncertain" else 1.0  # hedged findings are drawn fainter


def _frng(seed: int, f: Finding) -> np.random.Generator:
    # Per-finding stream: adding or removing one finding never moves another.
    return np.random.default_rng([seed, zlib.crc32(repr(f).encode())])


@dataclass(frozen=True)
class _Geom:
    tw: float  # outer rib-cage half-width
    ti: float  # lung (inner thoracic) half-width
    y_apex: float
    y_cp: float  # costophrenic angles
    dome_r: float  # right (image-left) hemidiaphragm dome
    dome_l: float
    y_car: float  # carina
    med: float  # lower mediastinal half-width (medial lung border)
    med_widen: float  # extra upper mediastinal half-width
    ctr: float  # cardiothoracic ratio as projected
    cm: float  # one centimetre in image-height units
    ap: bool

    @staticmethod
    def sx(side: str | None) -> float:
        return 1.0 if side == "left" else -1.0  # patient right is displayed on the image left

    def q_to_y(self, q):
        return self.y_apex + q * (self.y_cp - self.y_apex)


def _geometry(view: str, habitus: float, insp: float, findings: list[Finding]) -> _Geom:
    tw, ap = 0.36 * habitus, view == "AP"
    lift = 0.035 if ap else 0.0  # supine AP: poorer inspiration, higher diaphragm
    y_apex = 0.13 - (0.015 if ap else 0.0)
    g = _Geom(tw=tw, ti=0.93 * tw, y_apex=y_apex, y_cp=0.79 + insp - lift, dome_r=0.68 + insp - lift,
              dome_l=0.705 + insp - lift, y_car=y_apex + 0.2, med=0.055, med_widen=0.0,
              ctr=0.45 * (1.12 if ap else 1.0), cm=2 * tw / THORAX_CM, ap=ap)
    for f in findings:  # these findings change the anatomy itself rather than adding density
        if f.observation == "Cardiomegaly":
            ctr = _CTR.get(f.severity, 0.6) * (1.12 if ap else 1.0)
            g = replace(g, ctr=max(g.ctr, g.ctr + _weight(f) * (ctr - g.ctr)))
        elif f.observation == "Enlarged Cardiomediastinum":
            g = replace(g, med_widen=max(g.med_widen, _weight(f) * (0.035 if f.severity == "mild" else 0.055)))
    return g


@lru_cache(maxsize=16)
def _pixel_grid(h: int, w: int, step: int, height: int, width: int):
    """Normalised pixel-centre coordinates of a (h, w) grid covering a height x width image."""
    xs = ((np.arange(w, dtype=np.float32) + 0.5) * step - width / 2) / height
    ys = ((np.arange(h, dtype=np.float32) + 0.5) * step) / height
    return xs[None, :], ys[:, None]


class _Frame:
    """Nuisance pose (rotation about the image centre, shift): pixels <-> body coordinates."""

    def __init__(self, height, width, rot_deg, dx, dy):
        self.h, self.w, self.dx, self.dy = height, width, dx, dy
        self.c, self.s = math.cos(math.radians(rot_deg)), math.sin(math.radians(rot_deg))

    def grid(self, step: int, rows=slice(None), cols=slice(None)):
        xs, ys = _pixel_grid(-(-self.h // step), -(-self.w // step), step, self.h, self.w)
        xs, yc = xs[:, cols], ys[rows] - 0.5
        return self.c * xs + self.s * yc - self.dx, self.c * yc - self.s * xs + (0.5 - self.dy)

    def to_pixel(self, pts, step: int = 1):
        out = []
        for xb, yb in pts:
            a, b = xb + self.dx, yb - 0.5 + self.dy
            xn, yn = self.c * a - self.s * b, self.s * a + self.c * b + 0.5
            out.append(((xn * self.h + self.w / 2) / step - 0.5, yn * self.h / step - 0.5))
        return out


def _up2(a: np.ndarray, shape) -> np.ndarray:
    """Bilinear x2 upsampling of a (channels, h, w) stack, pixel centres aligned, cropped to shape."""
    def rows(v):  # new samples sit a quarter step either side of each old one
        quarter = 0.25 * (v[:, 1:] - v[:, :-1])
        out = np.empty((v.shape[0], 2 * v.shape[1], v.shape[2]), np.float32)
        out[:, 0], out[:, -1] = v[:, 0], v[:, -1]
        out[:, 1:-1:2], out[:, 2:-1:2] = v[:, :-1] + quarter, v[:, 1:] - quarter
        return out
    return rows(rows(a.transpose(0, 2, 1)).transpose(0, 2, 1))[:, : shape[0], : shape[1]]


def _lung(x, y, g: _Geom, scale: float = 1.0, anchor=(0.0, 0.0)):
    """Signed distance inside both lung fields (> 0 inside), q (0 apex .. 1 costophrenic) and the
    horizontal distance to the chest wall. scale < 1 gives a lung shrunk toward `anchor`."""
    if scale != 1.0:
        x, y = anchor[0] + (x - anchor[0]) / scale, anchor[1] + (y - anchor[1]) / scale
    t = np.abs(x)
    q = (y - g.y_apex) * (1.0 / (g.y_cp - g.y_apex))
    apex_c = 0.5 * g.ti
    # Elliptical arcs from the rounded apex to the full-width medial and lateral borders.
    qm, qo = 1.0 - np.clip(q * (1 / 0.3), 0, 1), 1.0 - np.clip(q * (1 / 0.5), 0, 1)
    med = g.med + (apex_c - g.med) * (1.0 - np.sqrt(1.0 - qm * qm))
    out = apex_c + (g.ti - apex_c) * np.sqrt(1.0 - qo * qo)
    upper = _bump(y, g.y_apex + 0.12, 0.14)  # upper mediastinum (widened in ECM)
    knob = _bump(y, g.y_car - 0.035, 0.03) * (x > 0)  # aortic knob on the patient's left
    med = np.maximum(med, g.med + (0.012 + g.med_widen) * upper + 0.022 * knob)
    dome = _sel(x < 0, g.dome_r, g.dome_l)
    t_dc = 0.5 * (g.med + g.ti)
    u = np.maximum(t - t_dc, 0.0) * (1.0 / (g.ti - t_dc))
    y_dia = dome + (g.y_cp - dome) * u * u  # flat medially, where the heart sits on it
    wall = out - t
    inside = np.minimum(np.minimum(t - med, wall), np.minimum(y_dia - y, y - g.y_apex))
    return inside, q, wall


def _zone_mask(q, zone):
    lo, hi = _ZONES.get(zone or "middle", _ZONES["middle"])
    return _ramp(q - lo, 0.06) * _ramp(hi - q, 0.06)


def _side_mask(x, lat):
    if lat in ("left", "right"):
        return ((x > 0) if lat == "left" else (x < 0)).astype(np.float32)
    return np.ones_like(x)


def _sides(lat):
    return ("right", "left") if lat in (None, "bilateral") else (lat,)


def _zone_point(rng, g: _Geom, side, zone, across=(0.25, 0.8)):
    """A random point inside the named lung zone, in body coordinates."""
    lo, hi = _ZONES.get(zone or "middle", _ZONES["middle"])
    q = min(rng.uniform(lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo)), 0.78)  # above the dome
    qo = 1.0 - min(q / 0.5, 1.0)
    t_out = 0.5 * g.ti * (1.0 + math.sqrt(1.0 - qo * qo))
    t = g.med + 0.02 + rng.uniform(*across) * (t_out - g.med - 0.02)
    return g.sx(side) * t, g.q_to_y(q)


def _vessels_low(frame: _Frame, g: _Geom, jit: np.ndarray, shape) -> np.ndarray:
    """Pulmonary vessels: a branching tree per hilum, tapering toward the periphery (PIL lines)."""
    img = Image.new("L", (shape[1], shape[0]), 0)
    d = ImageDraw.Draw(img)
    base = np.radians(np.linspace(-120, 105, jit.shape[1]))  # 0 = lateral, negative = toward apex
    lw = max(1.0, 0.004 * frame.h / _LOW)
    for si, side in enumerate(("right", "left")):
        sx, hx, hy = g.sx(side), g.med + 0.03, g.y_car + 0.07
        for k in range(jit.shape[1]):
            ends = {}
            for j in range(15):  # heap-ordered binary tree, depth 4
                depth = int(math.log2(j + 1))
                if j == 0:
                    x0, y0, ang = hx, hy + 0.04 * jit[si, k, j, 1], base[k] + 0.2 * jit[si, k, j, 0]
                else:
                    x0, y0, pa = ends[(j - 1) // 2]
                    ang = pa + (0.45 if j % 2 else -0.45) + 0.3 * jit[si, k, j, 0]
                length = 0.07 * 0.7 ** depth * (1.0 + 0.3 * jit[si, k, j, 1])
                x1, y1 = x0 + length * math.cos(ang), y0 + length * math.sin(ang)
                ends[j] = (x1, y1, ang)
                d.line(frame.to_pixel([(sx * x0, y0), (sx * x1, y1)], _LOW), fill=int(255 * 0.75 ** depth),
                       width=max(1, round(lw * 0.7 ** depth)))
    v = ndimage.gaussian_filter(np.asarray(img, dtype=np.float32), 0.6) * (1.0 / 255.0)
    return v


def _patchy(frng, shape, sigma):
    """Smooth random texture in [0, 1] so airspace disease looks patchy rather than a perfect blob."""
    n = ndimage.gaussian_filter(frng.standard_normal(shape).astype(np.float32), sigma)
    return np.clip(0.5 + n * (0.5 / (n.std() + 1e-6)), 0.0, 1.0)


def _opacity_low(x, y, q, wall, g: _Geom, findings, seed):
    """Fraction of lung air replaced by fluid or cells (0..1), at low resolution."""
    o = np.zeros_like(x)
    sig = 0.01 * x.shape[0]
    for f in findings:
        frng, w, obs = _frng(seed, f), _weight(f), f.observation
        if obs in ("Consolidation", "Pneumonia", "Lung Opacity"):
            dens, spread, n = {"Consolidation": (1.0, 0.03, 6), "Pneumonia": (0.8, 0.03, 6),
                               "Lung Opacity": (0.55, 0.045, 4)}[obs]
            for side in _sides(f.laterality):
                patch = np.zeros_like(x)
                for _ in range(n):
                    cx, cy = _zone_point(frng, g, side, f.zone)
                    patch += _blob(x, y, cx, cy, spread * frng.uniform(0.8, 1.4), spread * frng.uniform(0.7, 1.2))
                texture = 0.5 + 0.7 * _patchy(frng, x.shape, sig) if obs != "Lung Opacity" else 1.0
                o += dens * w * np.clip(patch * texture, 0, 1) * _zone_mask(q, f.zone) * _side_mask(x, side)
        elif obs == "Atelectasis":  # plate-like band, slightly oblique
            for side in _sides(f.laterality):
                cx, cy = _zone_point(frng, g, side, f.zone, (0.35, 0.6))
                ang = frng.uniform(-0.3, 0.3)
                c, s = math.cos(ang), math.sin(ang)
                thick = 0.006 if f.severity == "mild" else 0.011
                o += 0.9 * w * _blob((x - cx) * c + (y - cy) * s, (y - cy) * c - (x - cx) * s, 0, 0, 0.075, thick) \
                    * _side_mask(x, side)
        elif obs == "Edema":  # perihilar bat-wing haze, both lungs
            sev = _SEV.get(f.severity, 0.8)
            for side in ("right", "left"):
                o += 0.8 * w * sev * _blob(x, y, g.sx(side) * (g.med + 0.05), g.y_car + 0.09, 0.06 + 0.04 * sev, 0.1)
        elif obs == "Pleural Effusion":  # dependent fluid whose meniscus rises laterally
            q_top, rise = {"small": (0.93, 0.07), "moderate": (0.72, 0.12), "large": (0.5, 0.15)}.get(
                f.severity, (0.72, 0.12))
            u = np.clip((np.abs(x) - g.med) * (1 / (g.ti - g.med)), 0, 1)
            fluid = np.clip((q - (q_top - rise * u * u)) * (1 / 0.06), 0, 1)
            o += (0.7 + 0.3 * w) * fluid * _side_mask(x, f.laterality)
        elif obs == "Pleural Other":  # pleural thickening along the lateral chest wall
            o += 0.85 * w * _ramp(0.012 - wall, 0.006) * _zone_mask(q, f.zone or "lower") * _side_mask(x, f.laterality)
    return np.clip(o, 0.0, 1.0)


def _ribs(x, y, g: _Geom, fracture: Finding | None, body):
    """Posterior ribs as arcs dropping laterally plus faint anterior ribs (low resolution).

    Posterior rib k occupies phase p in [k-1, k-0.6); a fracture breaks rib `fracture.rib`."""
    t = np.abs(x)
    u = t * (1.0 / g.tw)
    w1, span = g.y_apex - 0.03, g.dome_r + 0.06 - g.y_apex
    s = np.clip((y - (0.12 * u * u - 0.035) * u - w1) * (1 / span), 0.0, None)
    p = 10.0 * s * (1.2 - 0.2 * s)  # posterior rib 10 at the dome; spacing widens inferiorly
    extent = _ramp(g.tw - t, 0.01) * _ramp(t - 0.03, 0.01) * body
    post = 0.065 * extent * np.clip(11.5 - p, 0, 1) * _sel(p < 10.5, 1.0, 0.4)  # fainter below the dome
    if fracture is not None and fracture.rib:  # lucent line and a stepped-off lateral fragment
        t_b = g.med + 0.6 * (g.ti - g.med)
        near = (np.abs(p - (fracture.rib - 0.8)) < 0.5) & ((x > 0) if fracture.laterality == "left" else (x < 0))
        p = p + _sel(near & (t > t_b), 0.22, 0.0)
        post = post * (1.0 - (near & (np.abs(t - t_b) < 0.007)))
    f = p - np.floor(p)
    pa = 6.5 * (y + 0.45 * u * u - g.y_apex - 0.02) * (1 / span)  # anterior ribs slope down medially
    fa = pa - np.floor(pa)
    ant = 0.03 * extent * _ramp(u - 0.2, 0.1) * _ramp(y - g.y_apex, 0.03) * ((pa > 0.5) & (pa < 6.7) & (fa < 0.3))
    return post * np.sqrt(np.clip(np.sin(f * (math.pi / 0.4)), 0, None)) * (f < 0.4) + ant


def _frontal(frame: _Frame, g: _Geom, pos, jit, seed, shape):
    x, y = frame.grid(_LOW)  # smooth fields are built at half resolution, edges sharpened after
    t, e = np.abs(x), 1.5 * _LOW / frame.h
    # Trunk: elliptical cross-section (thicker centrally), narrowing to the neck above the shoulders.
    s = np.clip((y - (g.y_apex - 0.12)) * (1 / 0.13), 0, 1)
    half = 0.09 + (g.tw + 0.08 - 0.09) * s * s * (3 - 2 * s)
    base = 0.55 * np.sqrt(np.clip(1.0 - (x / half) ** 2, 0.0, 1.0))
    base += 0.1 * _ramp(0.03 - t, e) * _sel(np.cos(y * (2 * math.pi / 0.045)) > -0.4, 1.0, 0.75)  # spine
    base -= 0.1 * _ramp(0.011 - t, e) * _ramp(g.y_car - y, e)  # tracheal air column
    base -= 0.18 * _blob(x, y, 0.12, g.dome_l + 0.045, 0.035, 0.018)  # gastric bubble under the left dome
    # Clavicles (projected higher in AP) and scapulae (over the lungs in AP, lateral to them in PA).
    u = t * (1 / g.tw)
    yc = g.y_apex + (0.015 if g.ap else 0.05) - 0.11 * u + 0.04 * u * u
    reach = np.minimum(1.05 * g.tw, half - 0.02)  # clavicles end at the shoulders
    base += 0.15 * np.sqrt(_bump(y, yc, 0.012)) * _ramp(t - 0.025, e) * _ramp(reach - t, e)
    border = g.ti * ((0.55 if g.ap else 0.98) + 0.45 * (y - g.y_apex) / 0.35)
    base += 0.07 * _ramp(t - border, 0.01) * _ramp(g.tw + 0.05 - t, 0.02) * _bump(y, g.y_apex + 0.15, 0.2)
    inside, q, wall = _lung(x, y, g)
    lung = _ramp(inside, e)
    # Heart: two half-ellipses, 38% of its width right of midline, the left one lower (apex down-left).
    width, grow = g.ctr * 2 * g.ti, 1 + 0.8 * (g.ctr - 0.45)
    ax = _sel(x > 0, 0.62 * width, 0.38 * width)
    hy = _sel(x > 0, g.dome_l - 0.075 + 0.01 * grow, g.dome_r - 0.085)  # widest low, near the diaphragm
    hb = _sel(y < hy, 0.16 * grow, 0.1 * grow)  # tapering up into the mediastinum
    dy = ((y - hy) / hb) ** 2
    heart = (1.0 - (x / ax) ** 2 - dy * _sel(y < hy, 1.0, 0.0) - dy * dy * _sel(y < hy, 0.0, 1.0)) * 0.05  # flat base
    opac = _opacity_low(x, y, q, wall, g, pos, seed)
    # Less air where the lung is thin: near the chest wall and over the posterior recesses at the base.
    air = _AIR * (0.75 + 0.25 * _ramp(wall, 0.08)) * (1 - 0.3 * np.clip(q - 0.55, 0, 1)) * (1 - opac)
    marks = 0.13 * _vessels_low(frame, g, jit, x.shape) * lung * (1 - opac) * (1 - _ramp(heart, e))
    ptx, chans = [f for f in pos if f.observation == "Pneumothorax"], []
    for f in ptx:  # the lung collapses toward the hilum and base: gas apically and laterally
        k = {"small": 0.93, "moderate": 0.86, "large": 0.74}.get(f.severity, 0.86)
        collapsed, _, _ = _lung(x, y, g, k, (g.sx(f.laterality) * (g.med + 0.03), g.dome_r))
        side = _weight(f) * _side_mask(x, f.laterality) * _ramp(t - g.med - 0.04, 0.02)
        marks *= 1.0 - lung * (1 - _ramp(collapsed, e)) * side  # no lung markings beyond the pleural line
        chans += [collapsed, side]
    fracture = next((f for f in pos if f.observation == "Fracture"), None)
    base += marks + _ribs(x, y, g, fracture, _ramp(half - 0.01 - t, 0.01))
    up = _up2(np.stack([base, inside, heart, air] + chans), shape)
    e = 1.5 / frame.h
    base, lung, heart, air = up[0], _ramp(up[1], e), _ramp(up[2], e), up[3]
    gas = np.zeros(shape, np.float32)
    for i in range(len(ptx)):
        c, side = _ramp(up[4 + 2 * i], 0.7 * e), up[5 + 2 * i]
        gas = np.maximum(gas, lung * (1 - c) * side)
        base += 1.0 * c * (1 - c) * side * lung  # visceral pleural line
    for f in pos:
        if f.observation == "Lung Lesion":  # sharp-edged nodule/mass, drawn at full res in its box
            frng = _frng(seed, f)
            cx, cy = _zone_point(frng, g, f.laterality, f.zone, (0.35, 0.7))
            r = 0.5 * (f.size_cm or 1.5) * g.cm
            (pc, pr), = frame.to_pixel([(cx, cy)])
            m = int(r * frame.h) + 4
            rows, cols = slice(max(0, int(pr) - m), int(pr) + m + 1), slice(max(0, int(pc) - m), int(pc) + m + 1)
            xb, yb = frame.grid(1, rows, cols)
            lob = 1 + 0.04 * np.cos(3 * np.arctan2(yb - cy, xb - cx) + frng.uniform(0, 6))
            air[rows, cols] *= 1.0 - 0.9 * _weight(f) * _ramp(r * lob - np.hypot(xb - cx, yb - cy), 1.5 * e)
    a = base - air * lung * (1 - 0.95 * heart) * (1 + 0.25 * gas)
    dev = draw_devices(frame, g, pos)
    return a if dev is None else a + 1.2 * dev


def _lateral(frame: _Frame, g: _Geom, pos, jit, shape):
    """Left lateral view: anterior on the image left, spine on the image right."""
    x, y = frame.grid(_LOW)
    e = 1.5 * _LOW / frame.h
    s = np.clip((y - (g.y_apex - 0.1)) * (1 / 0.12), 0, 1)
    half = 0.27 + (0.95 * g.tw - 0.27) * s * s * (3 - 2 * s)
    body = np.sqrt(np.clip(1.0 - (x / half) ** 2, 0.0, 1.0))
    base = body * (0.6 + 0.2 * _ramp(g.y_apex + 0.08 - y, 0.16))  # shoulders and arms over the apices
    x_sp = 0.25 - 0.06 * (1 - s)  # the cervical spine sits further forward in the neck
    base += 0.2 * _ramp(0.035 - np.abs(x - x_sp), e) * _sel(np.cos(y * (2 * math.pi / 0.05)) > -0.4, 1.0, 0.7)
    base += 0.15 * _ramp(0.008 - np.abs(x + 0.27 - 0.1 * (y - 0.25)), e) * _bump(y, g.y_car + 0.06, 0.17)  # sternum
    base -= 0.1 * _ramp(0.012 - np.abs(x + 0.06 - 0.15 * y), e) * _ramp(g.y_car - y, e)  # trachea
    # Lungs between sternum and spine: rounded apex, diaphragm sloping down to the posterior sulcus.
    cx, aw, y_mid = -0.02, 0.24, g.y_apex + 0.22
    r = np.clip((y_mid - y) * (1 / (y_mid - g.y_apex - 0.01)), 0, 1)
    bow = 0.03 * ((y - g.y_car - 0.05) * (1 / 0.3)) ** 2  # anterior and posterior borders bow inward
    across = aw * np.sqrt(np.clip(1.0 - r * r, 0.0, 1.0)) - bow - np.abs(x - cx - 0.04 * (y - 0.45))
    xd = (x + 0.06) * (1 / 0.28)
    y_dia = g.dome_r - 0.02 + _sel(xd > 0, 0.1, 0.04) * xd * xd
    inside = np.minimum(np.minimum(across, y_dia - y), y - g.y_apex)
    grow = 1 + 1.2 * (g.ctr - 0.45)
    heart = (1.0 - ((x + 0.12) * (1 / (0.14 * grow))) ** 2 - ((y - g.dome_r + 0.08) * (1 / (0.12 * grow))) ** 2) * 0.05
    fluid = np.zeros_like(x)
    for f in pos:
        if f.observation == "Pleural Effusion":  # fills the posterior costophrenic sulcus first
            depth = {"small": 0.03, "moderate": 0.09, "large": 0.18}.get(f.severity, 0.09)
            fluid = np.maximum(fluid, _weight(f) * _ramp(y - (y_dia - depth - 0.15 * np.clip(x, 0, None)), 0.03))
    vessels = 0.1 * _vessels_low(frame, replace(g, med=-0.03), jit, x.shape) * (1 - fluid)
    up = _up2(np.stack([base, inside, heart, _AIR * (1 - fluid), vessels]), shape)
    e = 1.5 / frame.h
    lung, heart = _ramp(up[1], e), _ramp(up[2], e)
    return up[0] - up[3] * lung * (1 - 0.9 * heart) + up[4] * lung * (1 - heart)


def render_view(truth: StudyTruth, view: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Return a float32 image in [0, 1], shape (size, width) with width = round(size * aspect),
    aspect drawn from rng in [0.82, 1.0]; 1.0 = most attenuating (bone/devices bright), as displayed
    on a MONOCHROME2 screen. view is "PA", "AP" or "LATERAL"."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    # Nuisance: always the same draws in the same order, whatever the findings or view, so a render
    # with and without a finding (same seed) differs only by that finding.
    aspect = rng.uniform(0.82, 1.0)
    habitus = rng.uniform(0.9, 1.06)
    rot = rng.uniform(-3.0, 3.0)
    dx, dy = rng.uniform(-0.02, 0.02, 2)
    insp = rng.uniform(-0.03, 0.03)
    gamma = rng.uniform(0.8, 1.25)
    k = rng.uniform(1.6, 2.2)
    sigma = rng.uniform(0.008, 0.025)
    heel = rng.uniform(-0.08, 0.08)
    jit = rng.uniform(-1.0, 1.0, (2, 7, 15, 2))  # vessel tree branching
    seed = int(rng.integers(2**32))
    width = int(round(size * aspect))
    noise = rng.random((size, width), dtype=np.float32)  # uniform: cheaper than normal, looks the same

    pos = [f for f in truth.findings if f.certainty in ("positive", "uncertain")]
    g = _geometry(view, habitus, insp, pos)
    frame = _Frame(size, width, rot, dx, dy)
    if view == "LATERAL":
        a = _lateral(frame, g, pos, jit, (size, width))
    else:
        a = _frontal(frame, g, pos, jit, seed, (size, width))
    ramp = (1.0 + heel * (np.linspace(-0.5, 0.5, size, dtype=np.float32)[:, None])) / (1.0 - math.exp(-k * 1.1))
    img = np.clip((1.0 - np.exp(-k * np.maximum(a, 0.0))) * ramp, 0.0, 1.0) ** gamma  # exposure, contrast
    img += (sigma * math.sqrt(12)) * np.sqrt(img + 0.02) * (noise - 0.5)  # quantum noise grows with signal
    return np.clip(img, 0.0, 1.0).astype(np.float32, copy=False)


def burn_in_text(image: np.ndarray, text: str) -> np.ndarray:
    """Return a copy with `text` burned into the top-left corner in bright pixels (burned-in annotation trap),
    using PIL ImageDraw with its default font, scaled sensibly to the image size."""
    out = np.array(image, dtype=np.float32, copy=True)
    h, w = out.shape[:2]
    try:
        font = ImageFont.load_default(size=max(8, round(0.035 * h)))
    except (TypeError, ValueError, OSError, ImportError):  # Pillow without FreeType: fixed bitmap font
        font = ImageFont.load_default()
    mask = Image.new("L", (w, h), 0)
    margin = max(2, round(0.02 * h))
    ImageDraw.Draw(mask).multiline_text((margin, margin), text, fill=255, font=font)
    m = np.asarray(mask, dtype=np.float32) * (1.0 / 255.0)
    if out.ndim == 3:
        m = m[..., None]
    return np.maximum(out, m * max(float(out.max(initial=0.0)), 0.95))
