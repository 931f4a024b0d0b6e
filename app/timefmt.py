"""Times and time regions as the app shows them (0:42.5, 1:02:03.0; '2.0-12.0 s')."""


def fmt_time(t: float) -> str:
    t = max(0.0, float(t))
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h >= 1 else f"{int(m)}:{s:04.1f}"


def fmt_regions(regions) -> str:
    if not regions:
        return "nothing"
    return ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in regions)
