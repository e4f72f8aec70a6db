"""Phantom renderer: determinism, output contract, and that each finding shows where the report says.

Findings are checked by rendering the same truth with and without the finding from the same seed:
the nuisance (pose, exposure, noise) is then identical and the difference is the finding alone.
Image left = patient right on PA/AP.
"""

import numpy as np
import pytest

from components.synth.phantom import burn_in_text, render_view
from components.synth.truth import DEVICE_POSITIONS, Finding, StudyTruth

SIZE = 256
# Lung field rows (fraction of image height) per zone: apex ~0.13 to costophrenic angles ~0.79.
ZONE_Y = {"upper": (0.13, 0.35), "middle": (0.35, 0.57), "lower": (0.57, 0.80)}


def truth(*findings, views=("PA",)):
    return StudyTruth(subject_id=1, study_id=2, findings=list(findings), negatives=[], views=list(views),
                      style="full", comparison=False)


def render(*findings, view="PA", seed=0, size=SIZE):
    return render_view(truth(*findings), view, size, np.random.default_rng(seed))


def diff(finding, view="PA", seed=0, base=()):
    """Image change caused by `finding` alone (same seed, same other findings)."""
    return render(*base, finding, view=view, seed=seed) - render(*base, view=view, seed=seed)


def coords(img):
    """Per-pixel (x, y) in image-height units: x from the image centre (> 0 = image right), y from the top."""
    h, w = img.shape
    return np.meshgrid((np.arange(w) + 0.5 - w / 2) / h, (np.arange(h) + 0.5) / h)


def right_fraction(d):
    x, _ = coords(d)
    m = np.abs(d)
    return float((m * (x > 0)).sum() / m.sum())


def centroid(d):
    x, y = coords(d)
    m = np.abs(d)
    return float((m * x).sum() / m.sum()), float((m * y).sum() / m.sum())


# --- output contract -------------------------------------------------------------------------------

@pytest.mark.parametrize("view", ["PA", "AP", "LATERAL"])
def test_shape_dtype_range(view):
    for seed in range(4):
        img = render(view=view, seed=seed)
        assert img.dtype == np.float32 and img.ndim == 2
        assert img.shape[0] == SIZE and round(0.82 * SIZE) <= img.shape[1] <= SIZE
        assert img.min() >= 0.0 and img.max() <= 1.0
        assert img.std() > 0.1  # real contrast, not a flat field


def test_aspect_varies_with_seed():
    widths = {render(seed=s).shape[1] for s in range(8)}
    assert len(widths) > 3


def test_deterministic_and_seed_dependent():
    f = [Finding("Pleural Effusion", laterality="left", severity="moderate"),
         Finding("Support Devices", device="pacemaker", position="leads in the right atrium and right ventricle")]
    a, b = render(*f, view="AP", seed=7), render(*f, view="AP", seed=7)
    assert np.array_equal(a, b)
    c = render(*f, view="AP", seed=8)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_unknown_view_rejected():
    with pytest.raises(ValueError):
        render(view="OBLIQUE")


def test_nuisance_draws_do_not_depend_on_findings():
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    render_view(truth(), "PA", SIZE, r1)
    render_view(truth(Finding("Consolidation", laterality="left", zone="lower"),
                      Finding("Pneumothorax", laterality="right", severity="large")), "PA", SIZE, r2)
    assert r1.bit_generator.state == r2.bit_generator.state


def test_normal_frontal_anatomy():
    img = render(seed=1)
    x, y = coords(img)
    lungs = img[(np.abs(np.abs(x) - 0.2) < 0.04) & (np.abs(y - 0.4) < 0.05)].mean()
    spine = img[(np.abs(x) < 0.015) & (np.abs(y - 0.4) < 0.05)].mean()
    abdomen = img[(np.abs(x) < 0.2) & (y > 0.9)].mean()
    outside = img[:, :3].mean()
    assert lungs < 0.45 < spine and lungs < abdomen and outside < 0.15


# --- findings land on the named side and zone ------------------------------------------------------

LOCAL = [
    (Finding("Consolidation", laterality="right", zone="upper"), "right", "upper"),
    (Finding("Pneumonia", laterality="left", zone="lower"), "left", "lower"),
    (Finding("Lung Opacity", laterality="left", zone="middle"), "left", "middle"),
    (Finding("Atelectasis", laterality="right", zone="lower", severity="moderate"), "right", "lower"),
    (Finding("Lung Lesion", laterality="left", zone="upper", size_cm=3.0), "left", "upper"),
    (Finding("Lung Lesion", laterality="right", zone="middle", size_cm=1.0), "right", "middle"),
    (Finding("Pleural Other", laterality="right", zone="lower"), "right", "lower"),
    (Finding("Fracture", laterality="left", rib=4, zone="upper"), "left", "upper"),
    (Finding("Fracture", laterality="right", rib=7, zone="middle"), "right", "middle"),
]


@pytest.mark.parametrize("finding,side,zone", LOCAL, ids=lambda v: getattr(v, "observation", v))
@pytest.mark.parametrize("seed", [0, 5])
def test_local_finding_side_and_zone(finding, side, zone, seed):
    d = diff(finding, seed=seed)
    assert np.abs(d).sum() > 5.0, "finding not visible"
    frac = right_fraction(d)
    assert (frac > 0.9) if side == "left" else (frac < 0.1), f"patient {side} on the wrong image side"
    _, cy = centroid(d)
    lo, hi = ZONE_Y[zone]
    assert lo - 0.02 < cy < hi + 0.02, f"centroid y={cy:.2f} outside the {zone} zone"


@pytest.mark.parametrize("obs", ["Consolidation", "Lung Opacity"])
def test_bilateral_opacity_on_both_sides(obs):
    d = diff(Finding(obs, laterality="bilateral", zone="lower"))
    assert 0.3 < right_fraction(d) < 0.7
    assert ZONE_Y["lower"][0] - 0.02 < centroid(d)[1]


def test_uncertain_finding_is_fainter():
    sure = np.abs(diff(Finding("Consolidation", laterality="left", zone="middle"))).sum()
    hedged = np.abs(diff(Finding("Consolidation", certainty="uncertain", laterality="left", zone="middle"))).sum()
    assert 0.2 * sure < hedged < 0.85 * sure


def test_edema_is_bilateral_and_perihilar():
    d = diff(Finding("Edema", laterality="bilateral", severity="severe"))
    assert d.min() > -0.1 and 0.35 < right_fraction(d) < 0.65
    cx, cy = centroid(d)
    assert abs(cx) < 0.05 and 0.3 < cy < 0.55
    mild = diff(Finding("Edema", laterality="bilateral", severity="mild"))
    assert np.abs(mild).sum() < np.abs(d).sum()


@pytest.mark.parametrize("side", ["left", "right"])
def test_effusion_blunts_the_named_costophrenic_angle(side):
    d = diff(Finding("Pleural Effusion", laterality=side, severity="moderate"), seed=2)
    x, y = coords(d)
    sx = 1 if side == "left" else -1
    corner = (sx * x > 0.18) & (sx * x < 0.3) & (y > 0.62) & (y < 0.75)
    other = (-sx * x > 0.18) & (-sx * x < 0.3) & (y > 0.62) & (y < 0.75)
    assert d[corner].mean() > 0.15 and abs(d[other].mean()) < 0.01
    assert d[y < 0.4].max() < 0.05  # nothing in the upper chest
    # Meniscus: the fluid top is higher laterally than medially.
    def top(band):
        cols = np.where(band[0])[0]
        return np.where(d[:, cols].mean(1) > 0.05)[0].min() / d.shape[0]
    medial = top((sx * x > 0.14) & (sx * x < 0.17))
    lateral = top((sx * x > 0.25) & (sx * x < 0.28))
    assert lateral < medial - 0.02


def test_effusion_height_scales_with_size():
    mass = [np.abs(diff(Finding("Pleural Effusion", laterality="right", severity=s))).sum()
            for s in ("small", "moderate", "large")]
    assert mass[0] < mass[1] < mass[2]
    bil = diff(Finding("Pleural Effusion", laterality="bilateral", severity="moderate"))
    assert 0.35 < right_fraction(bil) < 0.65


@pytest.mark.parametrize("side", ["left", "right"])
def test_pneumothorax_darkens_the_apical_lateral_band(side):
    d = diff(Finding("Pneumothorax", laterality=side, severity="moderate"), seed=4)
    x, y = coords(d)
    sx = 1 if side == "left" else -1
    dark = np.clip(-d, 0, None)
    assert dark.sum() > 3.0
    frac = (dark * (sx * x > 0)).sum() / dark.sum()
    assert frac > 0.95
    cx, cy = (dark * x).sum() / dark.sum(), (dark * y).sum() / dark.sum()
    assert sx * cx > 0.15 and cy < 0.5  # lateral and apical
    # The visceral pleural line: a thin bright edge on the same side.
    assert (d * (sx * x > 0) > 0.05).sum() > 20
    small = np.clip(-diff(Finding("Pneumothorax", laterality=side, severity="small"), seed=4), 0, None).sum()
    large = np.clip(-diff(Finding("Pneumothorax", laterality=side, severity="large"), seed=4), 0, None).sum()
    assert small < dark.sum() < large


def test_cardiomegaly_widens_the_heart_toward_patient_left():
    widths = []
    for sev in ("mild", "moderate", "severe"):
        d = diff(Finding("Cardiomegaly", severity=sev), seed=6)
        _, y = coords(d)
        band = d[(y[:, 0] > 0.55) & (y[:, 0] < 0.62)]  # rows at the widest part of the heart
        widths.append(int((band.mean(0) > 0.05).sum()))
        assert right_fraction(d) > 0.55  # grows mostly to the patient's left
    assert 0 < widths[0] < widths[1] < widths[2]


def test_enlarged_cardiomediastinum_widens_the_upper_mediastinum():
    d = diff(Finding("Enlarged Cardiomediastinum", severity="moderate"))
    cx, cy = centroid(d)
    assert abs(cx) < 0.04 and cy < 0.45 and d.max() > 0.2
    x, _ = coords(d)
    assert (np.abs(d) * (np.abs(x) < 0.15)).sum() / np.abs(d).sum() > 0.9


def test_negative_labels_render_nothing():
    t = truth()
    t.negatives = ["Pneumothorax", "Pleural Effusion"]
    assert np.array_equal(render_view(t, "PA", SIZE, np.random.default_rng(0)), render())


# --- devices ----------------------------------------------------------------------------------------

def device(name, position=None):
    return Finding("Support Devices", device=name, position=position or DEVICE_POSITIONS[name][0])


def bright(d, thr=0.15):
    x, y = coords(d)
    m = d > thr
    return x[m], y[m]


@pytest.mark.parametrize("name", list(DEVICE_POSITIONS))
def test_every_device_is_visible(name):
    d = diff(device(name))
    assert (d > 0.15).sum() > 30, name


def test_endotracheal_tube_midline_with_tip_above_carina():
    tips = {}
    for pos in ("1 cm above the carina", "5 cm above the carina"):
        bx, by = bright(diff(device("endotracheal tube", pos), seed=1))
        assert np.abs(bx).max() < 0.05 and by.min() < 0.05  # midline, from the top of the image
        tips[pos] = by.max()
    assert tips["5 cm above the carina"] < tips["1 cm above the carina"] - 0.03
    assert 0.15 < tips["5 cm above the carina"] < 0.4


def test_nasogastric_tube_reaches_stomach_on_patient_left():
    bx, by = bright(diff(device("nasogastric tube", "tip in the stomach")))
    below = by > 0.72
    assert below.any() and bx[below].max() > 0.08
    ex, ey = bright(diff(device("nasogastric tube", "tip in the distal esophagus")))
    assert ey.max() < by.max() and np.abs(ex).max() < 0.05


def test_pacemaker_generator_in_patient_left_upper_chest():
    d = diff(device("pacemaker"))
    x, y = coords(d)
    gen = (d > 0.3) & (x > 0.1) & (y < 0.35)
    assert gen.sum() > 150  # a solid generator, not just a wire
    assert (d > 0.15)[(y > 0.45) & (np.abs(x) < 0.12)].any()  # leads reach the heart


@pytest.mark.parametrize("side", ["left", "right"])
def test_lines_and_tubes_come_from_the_named_side(side):
    sx = 1 if side == "left" else -1
    px, _ = bright(diff(device(f"{side} PICC")))
    assert (sx * px).max() > 0.3  # from the arm
    jx, jy = bright(diff(device(f"{side} internal jugular central line")))
    assert (sx * jx[jy < 0.08]).min() > 0.0  # enters the neck on the named side
    cx, cy = bright(diff(device(f"{side} chest tube")))
    assert (sx * cx).min() > 0.1 and cy.min() < 0.25 and cy.max() > 0.55  # lateral wall to apex


def test_sternotomy_wires_in_midline():
    bx, by = bright(diff(device("sternotomy wires")))
    assert np.abs(bx).max() < 0.05 and by.max() - by.min() > 0.2


# --- lateral and burned-in text -------------------------------------------------------------------

def test_lateral_view_differs_and_shows_effusion_posteriorly():
    lat, pa = render(view="LATERAL"), render(view="PA")
    assert lat.shape == pa.shape and not np.allclose(lat, pa)
    x, y = coords(lat)
    spine, lung = lat[(x > 0.22) & (x < 0.28) & (np.abs(y - 0.5) < 0.1)], lat[(np.abs(x) < 0.05) & (np.abs(y - 0.4) < 0.05)]
    assert spine.mean() > lung.mean() + 0.1  # spine posterior (image right), aerated lung in the middle
    d = diff(Finding("Pleural Effusion", laterality="left", severity="large"), view="LATERAL")
    cx, cy = centroid(d)
    assert cy > 0.6 and cx > 0.0  # posterior costophrenic sulcus (posterior = image right)


def test_burn_in_text_only_touches_top_left():
    img = render(seed=3)
    out = burn_in_text(img, "JOHN DOE 12/03/1961")
    assert out.dtype == np.float32 and out.shape == img.shape and out is not img
    changed = np.argwhere(out != img)
    assert len(changed) > 50
    assert changed[:, 0].max() < 0.15 * img.shape[0] and changed[:, 1].max() < 0.8 * img.shape[1]
    assert (out >= img).all() and out.max() > 0.9
    assert np.array_equal(img, render(seed=3))  # input left untouched


def test_burn_in_text_scales_with_image():
    small, large = np.zeros((128, 128), np.float32), np.zeros((1024, 1024), np.float32)
    rows = [np.argwhere(burn_in_text(im, "ACC 123") > 0.5)[:, 0] for im in (small, large)]
    assert np.ptp(rows[1]) > 4 * np.ptp(rows[0]) > 0
