"""Support devices of the phantom: tubes, lines, pacemaker, wires drawn where the report puts them.

`frame` maps body coordinates to pixels (phantom._Frame) and `g` is the body geometry of this image
(phantom._Geom: carina height, diaphragm domes, chest wall, centimetre scale).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def draw_devices(frame, g, findings) -> np.ndarray | None:
    """Support devices rasterised with PIL into an attenuation layer (1.0 = metal)."""
    devs = [f for f in findings if f.observation == "Support Devices" and f.device]
    if not devs:
        return None
    img = Image.new("L", (frame.w, frame.h), 0)
    d = ImageDraw.Draw(img)
    px = frame.to_pixel
    lw = lambda cm: max(1, round(cm * g.cm * frame.h))  # noqa: E731 - line width from centimetres
    svc = -(g.med - 0.012)  # superior vena cava, right of the midline

    def box(x0, y0, x1, y1):
        (a, b), (c, e) = px([(x0, y0), (x1, y1)])
        return [min(a, c), min(b, e), max(a, c), max(b, e)]

    for f in devs:
        name, pos = f.device, f.position or ""
        sx = g.sx("right" if name.startswith("right") else "left")
        if name == "endotracheal tube":
            tip = g.y_car - (float(pos.split()[0]) if pos[:1].isdigit() else 4.0) * g.cm
            d.line(px([(0.0, -0.02), (0.0, tip)]), fill=110, width=lw(0.8))
            d.line(px([(0.002, -0.02), (0.002, tip)]), fill=255, width=lw(0.15))  # radiopaque stripe
        elif name == "nasogastric tube":  # esophagus, across the left hemidiaphragm into the stomach
            pts = [(0.008, -0.02), (0.012, g.y_car), (0.022, g.dome_l - 0.05)]
            pts += [(0.045, g.dome_l + 0.035), (0.1, g.dome_l + 0.07), (0.15, g.dome_l + 0.05)] \
                if "stomach" in pos else []
            d.line(px(pts), fill=230, width=lw(0.35), joint="curve")
        elif "PICC" in name:  # arm -> axillary/subclavian -> brachiocephalic -> SVC
            tip, ysc = g.y_car + (0.09 if "cavoatrial" in pos else 0.045), g.y_apex + 0.05
            pts = [(sx * 0.6, ysc + 0.09), (sx * (g.tw + 0.02), ysc + 0.02), (sx * 0.65 * g.tw, ysc),
                   (sx * 0.07, ysc + 0.02), (svc, ysc + 0.06), (svc, tip)]
            d.line(px(pts), fill=230, width=lw(0.25), joint="curve")
        elif "jugular" in name:
            tip = g.y_car + (0.09 if "cavoatrial" in pos else 0.03)
            pts = [(sx * 0.065, -0.02), (sx * 0.05, g.y_apex), (0.5 * (svc + sx * 0.04), g.y_apex + 0.07),
                   (svc, g.y_car - 0.03), (svc, tip)]
            d.line(px(pts), fill=230, width=lw(0.35), joint="curve")
        elif name == "pacemaker":  # generator in the patient's left upper chest (image right)
            gx, gy, hw, hh = 0.6 * g.ti, g.y_apex + 0.1, 2.4 * g.cm, 1.8 * g.cm
            d.rounded_rectangle(box(gx - hw, gy - hh, gx + hw, gy + hh), radius=max(1, round(hh * frame.h / 2)),
                                fill=255)
            hy = g.dome_l - 0.1
            for end in [(svc - 0.02, hy - 0.01), (0.06, g.dome_l - 0.03)]:  # right atrium, right ventricle
                pts = [(gx - hw, gy), (0.08, g.y_apex + 0.06), (svc, g.y_car - 0.01), (svc - 0.005, hy - 0.07), end]
                d.line(px(pts), fill=240, width=lw(0.2), joint="curve")
        elif name == "sternotomy wires":
            for yw in np.linspace(g.y_car - 0.07, g.y_car + 0.21, 6):
                d.ellipse(box(-0.8 * g.cm, yw - 0.3 * g.cm, 0.8 * g.cm, yw + 0.3 * g.cm), outline=255,
                          width=lw(0.2))
        elif "chest tube" in name:  # enters the lower lateral wall, curves up to the apex
            pts = [(sx * (g.tw + 0.08), g.q_to_y(0.85)), (sx * 0.92 * g.ti, g.q_to_y(0.72)),
                   (sx * 0.8 * g.ti, g.q_to_y(0.35)), (sx * 0.55 * g.ti, g.q_to_y(0.06))]
            d.line(px(pts), fill=170, width=lw(1.0), joint="curve")
            d.line(px(pts), fill=235, width=lw(0.15), joint="curve")  # radiopaque stripe
    return np.asarray(img, dtype=np.float32) * (1.0 / 255.0)
